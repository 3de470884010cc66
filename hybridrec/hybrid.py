"""``two-stage``: any registered recommender generates candidates, any reranker orders them.

The shape of the hybrid pipeline (retrieval -> rerank): the candidate source returns the top
``n_candidates`` unseen items for a request, and the reranker scores exactly those. This
recommender has no full scoring: the benchmark evaluates it on its own candidate lists, and says
so in its results (``candidates: "top-20 of embedding"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hybridrec.checks import check_int
from hybridrec.data.dataset import Dataset
from hybridrec.errors import ModelFileError
from hybridrec.recommender import Recommender, Request

CANDIDATES_FOLDER = "candidates"
RERANKER_FOLDER = "reranker"


class TwoStageRecommender(Recommender):
    """Candidates from one recommender, reranked by a reranker (registry name ``two-stage``).

    It ranks only its ``n_candidates`` candidates, so ``k`` above that returns at most
    ``n_candidates`` items. When the candidate source cannot use a request (no history, and
    text it does not read), its candidates are its popularity fallback; the recommendations
    say so in ``notes``.

    Args:
        candidates: registry name of the candidate source (any recommender, ``ease`` included).
        n_candidates: candidates per request.
        reranker: registry name of the reranker (:func:`hybridrec.registry.available_rerankers`).
        candidates_params: parameters of the candidate source.
        reranker_params: parameters of the reranker.

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("two-stage", candidates="ease", n_candidates=50)
    """

    name: ClassVar[str] = "two-stage"

    def __init__(
        self,
        candidates: str = "embedding",
        n_candidates: int = 20,
        reranker: str = "similarity",
        candidates_params: Mapping[str, Any] | None = None,
        reranker_params: Mapping[str, Any] | None = None,
    ) -> None:
        from hybridrec.registry import get, get_reranker

        super().__init__()
        self.candidates = candidates
        self.n_candidates = check_int("n_candidates", n_candidates, minimum=1)
        self.reranker = reranker
        self.candidates_params = dict(candidates_params or {})
        self.reranker_params = dict(reranker_params or {})
        source_cls, reranker_cls = get(candidates), get_reranker(reranker)
        # what the pipeline reads: what either stage reads
        self.uses = frozenset(source_cls.uses) | frozenset(reranker_cls.uses)
        self.source_: Recommender | None = None
        self.reranker_: Recommender | None = None

    @property
    def candidate_source(self) -> str:
        return f"top-{self.n_candidates} of {self.candidates}"

    @property
    def candidate_count(self) -> int:
        return self.n_candidates

    def _fit(self, train: Dataset) -> None:
        from hybridrec.registry import create, create_reranker

        self.source_ = create(self.candidates, **self.candidates_params).fit(train)
        self.reranker_ = create_reranker(self.reranker, **self.reranker_params).fit(train)

    def _candidates(self, requests: Sequence[Request], exclude_seen: bool) -> list[np.ndarray]:
        assert self.source_ is not None
        lists = self.source_.recommend_batch(
            [r.user for r in requests],
            self.n_candidates,
            exclude_seen=exclude_seen,
            on_unused="ignore",
        )
        return [self._item_codes([x.item_id for x in recs]) for recs in lists]

    def _request_notes(self, request: Request) -> tuple[str, ...]:
        assert self.source_ is not None
        if request.user is not None and self.source_._is_cold(self.source_._resolve(request.user)):
            return (
                f"candidates: {self.candidates} had nothing it can read in this request and gave "
                "its popularity fallback",
            )
        return ()

    def _score_candidates(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        assert self.reranker_ is not None and self.item_ids_ is not None
        # what the pipeline cannot read was reported at its level; a stage may read less
        return self.reranker_.score_candidates(
            [r.user for r in requests],
            [list(self.item_ids_[c]) for c in candidates],
            on_unused="ignore",
        )

    def _save_extra(self, folder: Path) -> None:
        assert self.source_ is not None and self.reranker_ is not None
        self.source_.save(folder / CANDIDATES_FOLDER)
        self.reranker_.save(folder / RERANKER_FOLDER)

    def _load_extra(self, folder: Path, manifest: dict[str, Any]) -> None:
        from hybridrec.registry import load

        self.source_ = load(folder / CANDIDATES_FOLDER)
        self.reranker_ = load(folder / RERANKER_FOLDER)
        for part, name in ((self.source_, self.candidates), (self.reranker_, self.reranker)):
            if part.name != name or list(part.item_ids_) != list(self.item_ids_):
                raise ModelFileError(f"{folder}: the saved {name!r} stage does not match")
