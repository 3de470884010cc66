"""Retrieval stage: item texts -> sentence-transformers embeddings -> FAISS index -> candidates.

Import-light: the submodules import torch, sentence-transformers and faiss only when used.

* :mod:`hybridrec.retrieval.embedder`: :class:`~hybridrec.retrieval.embedder.Embedder` and its
  on-disk :class:`~hybridrec.retrieval.embedder.EmbeddingCache`.
* :mod:`hybridrec.retrieval.index`: :class:`~hybridrec.retrieval.index.VectorIndex`, a FAISS
  wrapper with stable ids, exact exclusion and checked persistence.
* :mod:`hybridrec.retrieval.retriever`:
  :class:`~hybridrec.retrieval.retriever.EmbeddingRetriever`, the ``embedding`` recommender.

Example:
    >>> from hybridrec.retrieval import EmbeddingRetriever  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["Embedder", "EmbeddingCache", "EmbeddingRetriever", "IndexParams", "VectorIndex"]

_WHERE = {
    "Embedder": "hybridrec.retrieval.embedder",
    "EmbeddingCache": "hybridrec.retrieval.embedder",
    "IndexParams": "hybridrec.retrieval.index",
    "VectorIndex": "hybridrec.retrieval.index",
    "EmbeddingRetriever": "hybridrec.retrieval.retriever",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
