"""``similarity``: reranks candidates by the cosine between the user and each candidate's text.

The simplest real reranker: the user is the unit vector the ``embedding`` retriever builds (the
recency-weighted liked history and/or the user's own words, see
:mod:`hybridrec.retrieval.retriever`), each candidate is the sentence-transformers embedding of
its text (the catalogue's stored vector for a catalogue item, its own text encoded for an
outside item), and the score is their cosine, with no popularity prior. A request with neither
history nor text scores every candidate 0, so the given order stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hybridrec.data.dataset import Dataset
from hybridrec.errors import ModelFileError
from hybridrec.models import DEFAULT_SENTENCE_TRANSFORMER
from hybridrec.recommender import Request
from hybridrec.reranker import Reranker

RETRIEVER_FOLDER = "retriever"


class SimilarityReranker(Reranker):
    """Cosine similarity of user and candidate text embeddings (registry name ``similarity``).

    Args:
        model: sentence-transformers model: alias, hub id or local folder.
        recency_half_life: as in the ``embedding`` retriever (interactions; None = no decay).
        text_weight: share of the user's own words when a request has history and text.
        batch_size: texts per encoder batch.
        cache: embedding cache (see :class:`~hybridrec.retrieval.retriever.EmbeddingRetriever`).
        device: encoder device; None = CUDA when available.
        show_progress: progress bar while embedding the catalogue; None = when a terminal.

    Example:
        >>> import hybridrec as hr
        >>> rr = hr.create_reranker("similarity", text_weight=0.7)
    """

    name: ClassVar[str] = "similarity"
    uses: ClassVar[frozenset[str]] = frozenset({"history", "ratings", "order", "text"})

    def __init__(
        self,
        model: str = DEFAULT_SENTENCE_TRANSFORMER,
        recency_half_life: float | None = 5.0,
        text_weight: float = 0.5,
        batch_size: int = 64,
        cache: bool | str = True,
        device: str | None = None,
        show_progress: bool | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.recency_half_life = recency_half_life
        self.text_weight = text_weight
        self.batch_size = batch_size
        self.cache = cache
        self.device = device
        self.show_progress = show_progress
        self.retriever_: Any = None
        self._retriever()  # validates the parameters now

    def _retriever(self) -> Any:
        from hybridrec.retrieval.retriever import EmbeddingRetriever

        return EmbeddingRetriever(
            model=self.model,
            index="flat",
            recency_half_life=self.recency_half_life,
            text_weight=self.text_weight,
            popularity_weight=0.0,
            batch_size=self.batch_size,
            cache=self.cache,
            device=self.device,
            show_progress=self.show_progress,
        )

    def _fit(self, train: Dataset) -> None:
        self.retriever_ = self._retriever().fit(train)

    def _score_texts(
        self, requests: Sequence[Request], texts: Sequence[list[str]], codes: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        ret = self.retriever_
        assert self.item_texts_ is not None
        users = ret._context_vectors(requests)[:, :-1]  # unit vectors; zero: nothing to go on
        # the catalogue's vector only for a catalogue item read with its catalogue text; an
        # outside item, or one given with a text of its own, is encoded
        stored = [
            np.asarray(
                [c >= 0 and t == self.item_texts_[c] for t, c in zip(ts, cs, strict=True)], bool
            )
            for ts, cs in zip(texts, codes, strict=True)
        ]
        outside = [
            t
            for ts, keep in zip(texts, stored, strict=True)
            for t, k in zip(ts, keep, strict=True)
            if not k
        ]
        encoded = iter(ret._encode_queries(outside) if outside else [])
        out = []
        for user, cs, known in zip(users, codes, stored, strict=True):
            vectors = np.empty((len(cs), ret.dim), np.float32)
            vectors[known] = ret.embeddings_[cs[known]]
            for pos in np.flatnonzero(~known):
                vectors[pos] = next(encoded)
            out.append((vectors @ user).astype(np.float64))
        return out

    def _save_extra(self, folder: Path) -> None:
        self.retriever_.save(folder / RETRIEVER_FOLDER)

    def _load_extra(self, folder: Path, manifest: dict[str, Any]) -> None:
        from hybridrec.retrieval.retriever import EmbeddingRetriever

        sub = folder / RETRIEVER_FOLDER
        self.retriever_ = EmbeddingRetriever.load(sub)
        if list(self.retriever_.item_ids_) != list(self.item_ids_):
            raise ModelFileError(f"{sub}: catalogue differs from the reranker's")
