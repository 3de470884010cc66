"""Most popular items first: the baseline that is surprisingly hard to beat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from hybridrec.data.dataset import Dataset
from hybridrec.recommender import Recommender, Request


class PopularityRecommender(Recommender):
    """Ranks items by how many training users interacted with (or liked) them.

    Args:
        liked_only: count only liked interactions (rating >= the dataset's like threshold).

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("popularity", liked_only=True)
    """

    name = "popularity"
    personalised = False
    cold_start_popularity = False
    full_scoring = True
    uses = frozenset()

    def __init__(self, liked_only: bool = False) -> None:
        super().__init__()
        if not isinstance(liked_only, bool):
            raise TypeError(f"liked_only must be True or False, not {liked_only!r}")
        self.liked_only = liked_only
        self.counts_: np.ndarray | None = None

    def _fit(self, train: Dataset) -> None:
        matrix = train.matrix("liked" if self.liked_only else "binary")
        self.counts_ = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float32)

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(users), len(self.counts_))).copy()

    def _score_candidates(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        assert self.counts_ is not None
        return [self.counts_[np.asarray(c, np.int64)] for c in candidates]

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts_ = arrays["counts"]
