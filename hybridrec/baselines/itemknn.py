"""Item-based k-nearest neighbours on the sparse interaction matrix (cosine with shrinkage)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from hybridrec.checks import check_float, check_int
from hybridrec.data.dataset import Dataset
from hybridrec.recommender import Recommender, Request

BLOCK = 1024  # items per block when building the similarity matrix (bounds memory)


class ItemKNNRecommender(Recommender):
    """Scores an item by its summed similarity to the items in the user's history.

    Similarity is the cosine between item columns of the binary user-item matrix,
    ``sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink)``, keeping only each item's
    ``neighbours`` most similar items. The matrix is built block by block, so memory stays
    bounded by ``BLOCK x n_items`` dense floats.

    Args:
        neighbours: neighbours kept per item.
        shrink: shrinkage added to the cosine denominator (damps similarities from few users).

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("itemknn", neighbours=100, shrink=10.0)
    """

    name = "itemknn"
    full_scoring = True

    def __init__(self, neighbours: int = 100, shrink: float = 10.0) -> None:
        super().__init__()
        self.neighbours = check_int("neighbours", neighbours, minimum=1)
        self.shrink = check_float("shrink", shrink, minimum=0.0)
        self.similarity_: sp.csr_matrix | None = None

    def _fit(self, train: Dataset) -> None:
        x = train.matrix("binary").tocsc()
        xt = x.T.tocsr()
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        n_items = x.shape[1]
        k = min(self.neighbours, n_items - 1) if n_items > 1 else 0
        rows, cols, vals = [], [], []
        for start in range(0, n_items, BLOCK):
            stop = min(start + BLOCK, n_items)
            co = (xt[start:stop] @ x).toarray()  # (block, n_items) co-occurrence counts
            denom = norms[start:stop, None] * norms[None, :] + self.shrink
            sim = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0  # no self-similarity
            if k == 0:
                continue
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            top_vals = np.take_along_axis(sim, top, 1)
            keep = top_vals > 0
            rows.append(np.repeat(np.arange(start, stop), k)[keep.ravel()])
            cols.append(top[keep])
            vals.append(top_vals[keep])
        if rows:
            r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        else:
            r = c = np.empty(0, np.int64)
            v = np.empty(0, np.float32)
        self.similarity_ = sp.csr_matrix((v.astype(np.float32), (r, c)), shape=(n_items, n_items))

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        return (histories @ self.similarity_).toarray()

    def _score_candidates(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        assert self.similarity_ is not None
        _, hist = self._request_arrays(requests)
        union = np.unique(np.concatenate([np.asarray(c, np.int64) for c in candidates]))
        block = (hist @ self.similarity_[:, union]).toarray()
        return [block[i, np.searchsorted(union, c)] for i, c in enumerate(candidates)]

    def _state(self) -> dict[str, np.ndarray]:
        s = self.similarity_
        return {"sim_data": s.data, "sim_indices": s.indices, "sim_indptr": s.indptr}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.item_ids_)
        self.similarity_ = sp.csr_matrix(
            (arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=(n, n)
        )
