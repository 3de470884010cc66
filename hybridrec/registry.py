"""Registry of recommenders and rerankers: the built-ins plus plugins.

Recommenders come from :data:`BUILTINS` and the ``hybridrec.recommenders`` entry-point group;
rerankers (:class:`~hybridrec.reranker.Reranker`) from :data:`BUILTIN_RERANKERS` and the
``hybridrec.rerankers`` group. Plugins are discovered with :func:`importlib.metadata.entry_points`
on first use and imported only when created. A plugin whose name clashes with another is refused;
a plugin that fails to import raises an error naming it (never silently skipped).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from hybridrec.errors import HybridrecError, MissingDependencyError

ENTRY_POINT_GROUP = "hybridrec.recommenders"
RERANKER_GROUP = "hybridrec.rerankers"

#: name -> "module:attribute"; imported lazily
BUILTINS: dict[str, str] = {
    "random": "hybridrec.baselines.random:RandomRecommender",
    "popularity": "hybridrec.baselines.popularity:PopularityRecommender",
    "itemknn": "hybridrec.baselines.itemknn:ItemKNNRecommender",
    "ease": "hybridrec.baselines.ease:EASERecommender",
    "embedding": "hybridrec.retrieval.retriever:EmbeddingRetriever",
    "two-stage": "hybridrec.hybrid:TwoStageRecommender",
    "rerank": "hybridrec.rerank.pipeline:RerankRecommender",
    "prompt": "hybridrec.coldstart.recommender:PromptRecommender",
    "fused": "hybridrec.fused:FusedRecommender",
}

#: reranker name -> "module:attribute"; imported lazily
BUILTIN_RERANKERS: dict[str, str] = {
    "similarity": "hybridrec.rerank.similarity:SimilarityReranker",
    "lm": "hybridrec.rerank.lm:LMReranker",
}

#: top-level import name -> the pip requirement that provides it
_INSTALL_HINTS = {
    "torch": "torch==2.13.0 (CPU) or a CUDA build",
    "transformers": "transformers",
    "peft": "peft",
    "faiss": "faiss-cpu (or faiss-gpu)",
    "sentence_transformers": "sentence-transformers",
    "langchain_core": "langchain-core",
    "matplotlib": "matplotlib",
}


class RegistryError(HybridrecError, LookupError):
    """Unknown name, duplicate name, or a plugin that cannot be loaded."""


@dataclass(frozen=True)
class Entry:
    """One registered recommender: its name, ``module:attribute`` target and where it comes from."""

    name: str
    target: str
    source: str  # "builtin" or "plugin:<distribution>"


_lock = threading.Lock()
_entries: dict[str, dict[str, Entry]] = {}
_KINDS = {
    "recommender": (BUILTINS, ENTRY_POINT_GROUP),
    "reranker": (BUILTIN_RERANKERS, RERANKER_GROUP),
}


def _discover(kind: str) -> dict[str, Entry]:
    builtins, group = _KINDS[kind]
    entries = {name: Entry(name, target, "builtin") for name, target in builtins.items()}
    seen_plugins: dict[tuple[str, str], str] = {}
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "unknown distribution"
        if (ep.name, ep.value) in seen_plugins:  # the same distribution seen on two paths
            continue
        seen_plugins[(ep.name, ep.value)] = dist_name
        if ep.name in entries:
            other = entries[ep.name]
            raise RegistryError(
                f"{kind} name {ep.name!r} from plugin {dist_name} ({ep.value}) is already "
                f"registered by {other.source} ({other.target}); uninstall one of them"
            )
        entries[ep.name] = Entry(ep.name, ep.value, f"plugin:{dist_name}")
    return entries


def entries(kind: str = "recommender") -> dict[str, Entry]:
    """All registered recommenders (or ``kind="reranker"``: rerankers) by name."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, not {kind!r}")
    with _lock:
        if kind not in _entries:
            _entries[kind] = _discover(kind)
        return dict(_entries[kind])


def refresh() -> None:
    """Forget discovered plugins, so the next call scans the entry points again."""
    with _lock:
        _entries.clear()


def available() -> list[str]:
    """Names of all registered recommenders, sorted."""
    return sorted(entries())


def available_rerankers() -> list[str]:
    """Names of all registered rerankers, sorted."""
    return sorted(entries("reranker"))


def get_reranker(name: str) -> type:
    """The reranker class registered under ``name`` (errors as :func:`get`)."""
    return get(name, kind="reranker")


def get(name: str, *, kind: str = "recommender") -> type:
    """The recommender (or ``kind="reranker"``: reranker) class registered under ``name``.

    Raises:
        RegistryError: unknown name (the message lists the known ones) or a plugin that fails.
        MissingDependencyError: the recommender needs a package that is not installed.
    """
    known = entries(kind)
    if not isinstance(name, str) or name not in known:
        raise RegistryError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")
    entry = known[name]
    module_name, _, attr = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
        obj: Any = module
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except ModuleNotFoundError as err:
        missing = (err.name or "").split(".")[0]
        if missing and missing != "hybridrec" and not module_name.startswith(missing):
            hint = _INSTALL_HINTS.get(missing, missing)
            raise MissingDependencyError(
                f"{kind} {name!r} needs the package {missing!r}; install it with "
                f"`pip install {hint}`"
            ) from err
        raise RegistryError(
            f"{kind} {name!r} ({entry.source}) failed to import: {err}"
        ) from err
    except Exception as err:  # a broken plugin must be loud, never skipped
        raise RegistryError(
            f"{kind} {name!r} ({entry.source}, {entry.target}) failed to load: "
            f"{type(err).__name__}: {err}"
        ) from err
    return obj


def create(name: str, **params: Any) -> Any:
    """Create a recommender by registry name with keyword parameters.

    Example:
        >>> import hybridrec as hr
        >>> hr.create("itemknn", neighbours=50)
        ItemKNNRecommender(neighbours=50, shrink=10.0)
    """
    return _create(name, "recommender", params)


def create_reranker(name: str, **params: Any) -> Any:
    """Create a reranker by registry name with keyword parameters.

    Example:
        >>> import hybridrec as hr
        >>> hr.create_reranker("similarity")
        SimilarityReranker(model='all-minilm-l6-v2', recency_half_life=5.0, text_weight=0.5, \
batch_size=64, cache=True, device=None, show_progress=None)
    """
    return _create(name, "reranker", params)


def _create(name: str, kind: str, params: dict[str, Any]) -> Any:
    cls = get(name, kind=kind)
    try:
        return cls(**params)
    except TypeError as err:
        raise TypeError(f"bad parameters for {kind} {name!r}: {err}") from err


def load(path: Any) -> Any:
    """Load any saved recommender or reranker from its folder, dispatching on its manifest."""
    from hybridrec.persistence import read_manifest, reading

    with reading(path):  # one saved version throughout, even while another process saves
        manifest = read_manifest(path, verify=False)
        kind = manifest.get("kind", "recommender")
        if kind not in _KINDS:
            from hybridrec.errors import ModelFileError

            raise ModelFileError(f"{path}: unknown model kind {kind!r} in the manifest")
        cls = get(str(manifest.get("recommender", "")), kind=kind)
        return cls.load(path)
