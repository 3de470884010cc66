"""Trending items: popularity where each interaction's weight halves every ``half_life_days``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hybridrec import Dataset, Recommender

DAY = 86_400


class TrendingRecommender(Recommender):
    """Time-decayed popularity, measured from the last timestamp in the training data.

    Args:
        half_life_days: an interaction this many days older than the newest counts half.
        liked_only: count only liked interactions.

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("trending", half_life_days=30.0)
    """

    name = "trending"
    personalised = False
    cold_start_popularity = False
    full_scoring = True
    uses = frozenset()

    def __init__(self, half_life_days: float = 180.0, liked_only: bool = False) -> None:
        super().__init__()
        if half_life_days <= 0:
            raise ValueError("half_life_days must be positive")
        self.half_life_days = half_life_days
        self.liked_only = liked_only
        self.weights_: np.ndarray | None = None

    def _fit(self, train: Dataset) -> None:
        inter = train.interactions
        if self.liked_only:
            inter = inter[train.liked_mask]
        age_days = (inter["timestamp"].max() - inter["timestamp"].to_numpy()) / DAY
        decay = np.power(0.5, age_days / self.half_life_days)
        self.weights_ = np.bincount(
            inter["item"].to_numpy(), weights=decay, minlength=train.n_items
        ).astype(np.float64)

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.weights_, (len(users), len(self.weights_))).copy()

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = arrays["weights"]
