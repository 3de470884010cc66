"""Uniformly random recommendations: the floor every model must clear."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hybridrec.checks import check_int
from hybridrec.data.dataset import Dataset
from hybridrec.recommender import Recommender


class RandomRecommender(Recommender):
    """Random order of the catalogue, reproducible per (seed, user).

    The same user always gets the same order for a given seed, so single and batch requests
    agree. Users unknown at training time share one order.

    Args:
        seed: random seed.

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("random", seed=1)
    """

    name = "random"
    personalised = False
    cold_start_popularity = False
    full_scoring = True
    uses = frozenset()

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = check_int("seed", seed, minimum=0)

    def _fit(self, train: Dataset) -> None:
        pass

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        n_items = len(self.item_ids_)
        out = np.empty((len(users), n_items), dtype=np.float64)
        for row, user in enumerate(users):
            out[row] = np.random.default_rng([self.seed, int(user) + 1]).random(n_items)
        return out
