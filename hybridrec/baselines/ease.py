"""EASE (Steck 2019): a closed-form linear item-item model, strong on small catalogues."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from hybridrec.checks import check_float, check_int
from hybridrec.data.dataset import Dataset
from hybridrec.recommender import Recommender, Request

logger = logging.getLogger(__name__)


class CatalogueTooLargeError(ValueError):
    """EASE was asked to invert a Gram matrix larger than its configured limit."""


class EASERecommender(Recommender):
    """Embarrassingly shallow autoencoder: ``B = I - P diagMat(1 / diag(P))``, ``P = (XᵀX + λI)⁻¹``.

    Only items with training interactions enter the Gram matrix (others can never be
    predicted by EASE and score 0). The inverse costs O(n³) time and O(n²) memory in the number
    ``n`` of such items, so above ``max_items`` fitting refuses with
    :class:`CatalogueTooLargeError` instead of exhausting memory.

    Args:
        l2: the L2 regularisation λ added to the Gram matrix diagonal.
        max_items: largest item count EASE will invert (20,000 items need about 1.6 GB at peak).

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("ease", l2=500.0)
    """

    name = "ease"
    full_scoring = True

    def __init__(self, l2: float = 500.0, max_items: int = 20_000) -> None:
        super().__init__()
        self.l2 = check_float("l2", l2, minimum=0.0, exclusive=True)
        self.max_items = check_int("max_items", max_items, minimum=1)
        self.items_: np.ndarray | None = None
        self.weights_: np.ndarray | None = None

    def _fit(self, train: Dataset) -> None:
        x = train.matrix("binary").tocsc()
        active = np.flatnonzero(np.diff(x.indptr) > 0)
        n = len(active)
        if n > self.max_items:
            raise CatalogueTooLargeError(
                f"EASE would invert a {n} x {n} matrix ({n * n * 4 / 1e9:.1f} GB per copy), above "
                f"max_items={self.max_items}; raise max_items if the machine has the memory, "
                "or use itemknn"
            )
        xa = x[:, active]
        # float32: half the memory and time of float64; on ml-latest-small the weights differ
        # by at most 2e-7 (2e-6 relative), the regularised Gram matrix is well conditioned
        gram = (xa.T @ xa).toarray().astype(np.float32)
        gram[np.diag_indices(n)] += self.l2
        p = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        p /= -np.diag(p)[None, :]  # in place: B = -P / diag(P), then zero diagonal
        p[np.diag_indices(n)] = 0.0
        self.items_ = active.astype(np.int64)
        self.weights_ = p

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        scores = np.zeros((histories.shape[0], histories.shape[1]), dtype=np.float32)
        scores[:, self.items_] = histories[:, self.items_] @ self.weights_
        return scores

    def _score_candidates(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        # only the weight columns of the candidates: O(history x candidates) per request
        assert self.items_ is not None and self.weights_ is not None
        _, hist = self._request_arrays(requests)
        union = np.unique(np.concatenate([np.asarray(c, np.int64) for c in candidates]))
        local = np.searchsorted(self.items_, union)
        local = np.minimum(local, len(self.items_) - 1)
        active = self.items_[local] == union  # items outside the Gram matrix score 0
        block = np.zeros((len(requests), len(union)), np.float32)
        block[:, active] = hist[:, self.items_] @ self.weights_[:, local[active]]
        return [block[i, np.searchsorted(union, c)] for i, c in enumerate(candidates)]

    def _state(self) -> dict[str, np.ndarray]:
        return {"items": self.items_, "weights": self.weights_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.items_, self.weights_ = arrays["items"], arrays["weights"]
