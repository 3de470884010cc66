"""Ranking metrics: accuracy (NDCG, HR, recall, precision, MRR, AUC) and beyond accuracy.

Every function is vectorised with numpy/scipy; where a loop is needed it runs over blocks of
users, never over items.

Input conventions (shared by the whole evaluation package):

* ``ranked``: an integer array of item codes, shape ``(n_users, K)``, best first. Rows with fewer
  than ``K`` items are padded with ``-1`` at the end; a ``-1`` slot is an empty position (never
  relevant, never counted as a recommended item). An item may appear at most once in a row's top
  ``k`` (a duplicate is an error).
* ``relevant``: a ``scipy.sparse`` matrix (csr preferred, dense arrays are accepted too) of shape
  ``(n_users, n_items)``; a nonzero entry means relevant (binary relevance; the value is ignored,
  explicit zeros are not relevant). Row ``i`` of ``relevant`` belongs to row ``i`` of ``ranked``.
* Item codes are ``0 .. n_items - 1``.

Missing values and aggregation:

* A user with no relevant items gets ``NaN`` from every accuracy metric (HR, recall, precision,
  NDCG, MRR), and ``NaN`` from :func:`auc_per_user` when the user has no positive or no negative
  (candidate) item. Beyond-accuracy per-user metrics are ``NaN`` for an empty list (and
  :func:`intra_list_diversity` for a list of fewer than two items).
* Aggregates skip these users: :func:`mean_metric` is a ``nanmean`` and returns ``NaN`` only when
  every value is ``NaN`` (or there are none). Report the number of users that counted beside it.

Ties:

* Metrics on ranked lists take the list order as given; breaking score ties is the recommender's
  job (``ranked`` already encodes it).
* AUC counts a tie between a positive and a negative as 1/2 (Mann-Whitney U with average ranks).

Definitions (``hits@k`` = relevant items among the first ``k`` positions, ``R`` = number of
relevant items of the user):

* ``HR@k`` = 1 if ``hits@k > 0`` else 0.
* ``Recall@k`` = ``hits@k / R`` (the standard definition, as in trec_eval; not ``/ min(k, R)``).
* ``P@k`` = ``hits@k / k``; the denominator is ``k`` even when the list is shorter.
* ``NDCG@k`` = DCG / IDCG with binary gains and discount ``1 / log2(rank + 1)``; the ideal DCG
  places ``min(k, R)`` relevant items at the top.
* ``MRR@k`` = ``1 / rank`` of the first relevant item within the top ``k``, 0 if none.
* ``novelty`` of item ``i`` = ``-log2((pop_i + 1) / (n_users + 1))``.
* ``gini_index``: the Gini coefficient of per-item exposure counts over the whole catalogue.

Example:
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> ranked = np.array([[3, 1, 2], [0, 2, -1]])
    >>> relevant = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]]))
    >>> hit_rate_at_k(ranked, relevant, 2)
    array([ 1., nan])
    >>> mean_metric(hit_rate_at_k(ranked, relevant, 2))
    1.0
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.stats import rankdata

from hybridrec.errors import DataError

__all__ = [
    "auc_per_user",
    "average_popularity",
    "catalogue_coverage",
    "gini_index",
    "global_auc",
    "hit_rate_at_k",
    "intra_list_diversity",
    "mean_metric",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "recall_at_k",
]

# Upper bound on the number of cells handled at once by the blocked computations (AUC ranks,
# diversity similarity blocks); keeps temporary memory to a few tens of MB.
_BLOCK_CELLS = 1 << 22
# Upper bound on the number of distinct items whose similarity block is materialised at once.
_DIVERSITY_BLOCK_ITEMS = 2048


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_k(k: object, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise DataError(f"must be a positive integer, got {k!r}", field=name)
    if k < 1:
        raise DataError(f"must be >= 1, got {k}", field=name)
    return int(k)


def _as_ranked(ranked: npt.ArrayLike, k: int | None, n_items: int) -> np.ndarray:
    """Validate ``ranked`` and return its first ``k`` columns (all if ``k`` is None) as int64."""
    arr = np.asarray(ranked)
    if arr.ndim != 2:
        raise DataError(f"must be a 2-D array (n_users, K), got shape {arr.shape}", field="ranked")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"must hold integer item codes, got dtype {arr.dtype}", field="ranked")
    top = arr[:, :k].astype(np.int64, copy=False)
    if top.size:
        bad = (top < -1) | (top >= n_items)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(
                f"item code {top[row, col]} at row {row}, position {col} is outside "
                f"0..{n_items - 1} (-1 is the only padding value)",
                field="ranked",
            )
        srt = np.sort(top, axis=1)
        dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
        if dup.any():
            row, col = np.argwhere(dup)[0]
            raise DataError(
                f"item {srt[row, col + 1]} appears more than once in row {row}",
                field="ranked",
            )
    return top


def _as_csr(matrix: object, field: str) -> sp.csr_matrix:
    if sp.issparse(matrix):
        out = sp.csr_matrix(matrix)
    else:
        dense = np.asarray(matrix)
        if dense.ndim != 2:
            raise DataError(f"must be 2-D, got shape {dense.shape}", field=field)
        out = sp.csr_matrix(dense)
    return out


def _as_relevant(relevant: object, n_users: int) -> sp.csr_matrix:
    rel = _as_csr(relevant, "relevant")
    if rel.shape[0] != n_users:
        raise DataError(
            f"has {rel.shape[0]} rows but ranked/scores has {n_users} (one row per user)",
            field="relevant",
        )
    return rel


def _hits(ranked: npt.ArrayLike, relevant: object, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean hit matrix of the top ``k`` (n_users, min(k, K)) and relevant counts per user."""
    rel_shape = relevant.shape if sp.issparse(relevant) else np.shape(relevant)
    if len(rel_shape) != 2:
        raise DataError(f"must be 2-D (n_users, n_items), got shape {rel_shape}", field="relevant")
    n_items = int(rel_shape[1])
    top = _as_ranked(ranked, k, n_items)
    n_users = top.shape[0]
    rel = _as_relevant(relevant, n_users)
    rows, cols = rel.nonzero()  # excludes explicit zeros
    n_rel = np.bincount(rows, minlength=n_users)
    rel_keys = rows.astype(np.int64) * n_items + cols.astype(np.int64)
    top_keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + top
    hits = np.isin(top_keys, rel_keys) & (top >= 0)
    return hits, n_rel


def _per_relevant_user(numer: np.ndarray, denom: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """``numer / denom`` as float, NaN where the user has no relevant item."""
    out = np.full(numer.shape, np.nan)
    ok = n_rel > 0
    out[ok] = np.asarray(numer, dtype=float)[ok] / np.asarray(denom, dtype=float)[ok]
    return out


def _mean_over_list(per_item: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Mean of ``per_item[item]`` over each row's non-padding items; NaN for an empty row."""
    valid = top >= 0
    vals = np.where(valid, per_item[np.where(valid, top, 0)], 0.0)
    count = valid.sum(axis=1)
    out = np.full(top.shape[0], np.nan)
    ok = count > 0
    out[ok] = vals.sum(axis=1)[ok] / count[ok]
    return out


def _as_popularity(popularity: npt.ArrayLike) -> np.ndarray:
    pop = np.asarray(popularity, dtype=float)
    if pop.ndim != 1:
        raise DataError(f"must be 1-D (n_items,), got shape {pop.shape}", field="popularity")
    if pop.size and (not np.all(np.isfinite(pop)) or pop.min() < 0):
        raise DataError("must hold finite, non-negative counts", field="popularity")
    return pop


def _check_n_items(n_items: object) -> int:
    if isinstance(n_items, bool) or not isinstance(n_items, int | np.integer) or n_items < 1:
        raise DataError(f"must be a positive integer, got {n_items!r}", field="n_items")
    return int(n_items)


# --------------------------------------------------------------------------------------------
# aggregation


def mean_metric(values: npt.ArrayLike) -> float:
    """Average per-user metric values, skipping NaN (users the metric is undefined for).

    Args:
        values: Per-user values, as returned by the per-user metric functions.

    Returns:
        The mean of the non-NaN values, or NaN when there is none.

    Example:
        >>> mean_metric([1.0, float("nan"), 0.0])
        0.5
        >>> import math; math.isnan(mean_metric([float("nan")]))
        True
    """
    arr = np.asarray(values, dtype=float).ravel()
    ok = ~np.isnan(arr)
    if not ok.any():
        return float("nan")
    return float(arr[ok].mean())


# --------------------------------------------------------------------------------------------
# accuracy on ranked lists


def hit_rate_at_k(ranked: npt.ArrayLike, relevant: object, k: int) -> np.ndarray:
    """Hit rate (success) at ``k``: 1 if any relevant item is in the top ``k``, else 0.

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        relevant: Sparse ``(n_users, n_items)``, nonzero = relevant.
        k: Cut-off (>= 1).

    Returns:
        Float array ``(n_users,)`` of 0/1; NaN for users with no relevant item.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> rel = sp.csr_matrix(np.array([[0, 0, 1], [1, 0, 0]]))
        >>> hit_rate_at_k(np.array([[0, 2], [2, 1]]), rel, 2)
        array([1., 0.])
    """
    k = _check_k(k)
    hits, n_rel = _hits(ranked, relevant, k)
    return _per_relevant_user(hits.any(axis=1), np.ones(len(n_rel)), n_rel)


def recall_at_k(ranked: npt.ArrayLike, relevant: object, k: int) -> np.ndarray:
    """Recall at ``k``: relevant items in the top ``k`` divided by all relevant items.

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        relevant: Sparse ``(n_users, n_items)``, nonzero = relevant.
        k: Cut-off (>= 1).

    Returns:
        Float array ``(n_users,)``; NaN for users with no relevant item.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> rel = sp.csr_matrix(np.array([[1, 0, 1, 1]]))
        >>> recall_at_k(np.array([[0, 1, 2]]), rel, 2)  # 1 of 3 relevant in top 2
        array([0.33333333])
    """
    k = _check_k(k)
    hits, n_rel = _hits(ranked, relevant, k)
    return _per_relevant_user(hits.sum(axis=1), n_rel, n_rel)


def precision_at_k(ranked: npt.ArrayLike, relevant: object, k: int) -> np.ndarray:
    """Precision at ``k``: relevant items in the top ``k`` divided by ``k``.

    The denominator is always ``k``, also for lists shorter than ``k`` (as in trec_eval).

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        relevant: Sparse ``(n_users, n_items)``, nonzero = relevant.
        k: Cut-off (>= 1).

    Returns:
        Float array ``(n_users,)``; NaN for users with no relevant item.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> rel = sp.csr_matrix(np.array([[1, 0, 1, 1]]))
        >>> precision_at_k(np.array([[0, 1, -1]]), rel, 4)  # 1 hit / 4
        array([0.25])
    """
    k = _check_k(k)
    hits, n_rel = _hits(ranked, relevant, k)
    return _per_relevant_user(hits.sum(axis=1), np.full(len(n_rel), k), n_rel)


def ndcg_at_k(ranked: npt.ArrayLike, relevant: object, k: int) -> np.ndarray:
    """Normalised discounted cumulative gain at ``k`` with binary gains.

    ``DCG = sum_{rank r <= k, item relevant} 1 / log2(r + 1)``; the ideal DCG puts
    ``min(k, n_relevant)`` relevant items at ranks ``1, 2, ...``.

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        relevant: Sparse ``(n_users, n_items)``, nonzero = relevant.
        k: Cut-off (>= 1).

    Returns:
        Float array ``(n_users,)`` in ``[0, 1]``; NaN for users with no relevant item.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> rel = sp.csr_matrix(np.array([[0, 1, 0]]))
        >>> ndcg_at_k(np.array([[0, 1, 2]]), rel, 3)  # 1 / log2(3)
        array([0.63092975])
    """
    k = _check_k(k)
    hits, n_rel = _hits(ranked, relevant, k)
    length = max(min(k, int(n_rel.max(initial=0))), hits.shape[1])
    disc = 1.0 / np.log2(np.arange(2, length + 2, dtype=float))
    dcg = hits @ disc[: hits.shape[1]]
    ideal_cum = np.concatenate([[0.0], np.cumsum(disc)])
    idcg = ideal_cum[np.minimum(n_rel, k)]
    return _per_relevant_user(dcg, np.where(n_rel > 0, idcg, 1.0), n_rel)


def mrr_at_k(ranked: npt.ArrayLike, relevant: object, k: int | None = None) -> np.ndarray:
    """Reciprocal rank of the first relevant item within the top ``k`` (0 if none).

    Averaging it with :func:`mean_metric` gives MRR@k.

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        relevant: Sparse ``(n_users, n_items)``, nonzero = relevant.
        k: Cut-off (>= 1); ``None`` uses the whole list.

    Returns:
        Float array ``(n_users,)``; NaN for users with no relevant item.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> rel = sp.csr_matrix(np.array([[0, 0, 1], [0, 0, 1]]))
        >>> mrr_at_k(np.array([[0, 2, 1], [0, 1, 2]]), rel)
        array([0.5       , 0.33333333])
        >>> mrr_at_k(np.array([[0, 2, 1], [0, 1, 2]]), rel, k=2)
        array([0.5, 0. ])
    """
    if k is not None:
        k = _check_k(k)
    hits, n_rel = _hits(ranked, relevant, k)
    rr = np.zeros(hits.shape[0])
    if hits.shape[1]:
        found = hits.any(axis=1)
        first = hits.argmax(axis=1)
        rr[found] = 1.0 / (first[found] + 1.0)
    return _per_relevant_user(rr, np.ones(len(rr)), n_rel)


# --------------------------------------------------------------------------------------------
# AUC


def _as_bool_block(matrix: object, rows: slice) -> np.ndarray:
    part = matrix[rows]
    if sp.issparse(part):
        part = part.toarray()
    return np.asarray(part) != 0


def auc_per_user(
    scores: npt.ArrayLike,
    relevant: object,
    candidates: object | None = None,
) -> np.ndarray:
    """Per-user ROC AUC of relevant vs non-relevant items, from full score rows.

    AUC is the probability that a random relevant item scores above a random non-relevant item,
    counting ties as 1/2 (Mann-Whitney U with average ranks). Only items in ``candidates`` count,
    so pass a mask to exclude, for example, items the user has already seen; relevant items
    outside the mask are ignored.

    Args:
        scores: Dense scores ``(n_users, n_items)`` (array or nested list); higher = better.
            ``-inf`` is allowed; NaN is not allowed among candidates.
        relevant: Sparse (or dense) ``(n_users, n_items)``, nonzero = relevant.
        candidates: Optional boolean mask (dense or sparse) ``(n_users, n_items)``; nonzero =
            the item takes part. ``None`` = every item.

    Returns:
        Float array ``(n_users,)``; NaN for users with no positive or no negative candidate.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> scores = np.array([[0.9, 0.5, 0.5, 0.1]])
        >>> rel = sp.csr_matrix(np.array([[0, 1, 0, 0]]))
        >>> auc_per_user(scores, rel)  # beats item 3, ties item 2, loses to item 0: 1.5 / 3
        array([0.5])
        >>> auc_per_user(scores, rel, candidates=np.array([[0, 1, 1, 1]]))  # 1.5 / 2
        array([0.75])
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim != 2:
        raise DataError(f"must be 2-D (n_users, n_items), got shape {s.shape}", field="scores")
    n_users, n_items = s.shape
    rel = _as_relevant(relevant, n_users)
    if rel.shape != s.shape:
        raise DataError(f"has shape {rel.shape} but scores has {s.shape}", field="relevant")
    if candidates is not None:
        cand_shape = candidates.shape if sp.issparse(candidates) else np.shape(candidates)
        if tuple(cand_shape) != s.shape:
            raise DataError(
                f"has shape {tuple(cand_shape)} but scores has {s.shape}", field="candidates"
            )
        if not sp.issparse(candidates):
            candidates = np.asarray(candidates)

    out = np.full(n_users, np.nan)
    block = max(1, _BLOCK_CELLS // max(n_items, 1))
    for start in range(0, n_users, block):
        rows = slice(start, min(start + block, n_users))
        sb = s[rows]
        if candidates is None:
            cand = np.ones(sb.shape, dtype=bool)
        else:
            cand = _as_bool_block(candidates, rows)
        nan_cand = np.isnan(sb) & cand
        if nan_cand.any():
            row, col = np.argwhere(nan_cand)[0]
            raise DataError(f"NaN score for user row {start + row}, item {col}", field="scores")
        pos = _as_bool_block(rel, rows) & cand
        n_pos = pos.sum(axis=1)
        n_neg = cand.sum(axis=1) - n_pos
        ranks = rankdata(np.where(cand, sb, np.nan), axis=1, nan_policy="omit")
        rank_sum = np.where(pos, ranks, 0.0).sum(axis=1)
        ok = (n_pos > 0) & (n_neg > 0)
        u = rank_sum[ok] - n_pos[ok] * (n_pos[ok] + 1) / 2.0
        res = np.full(sb.shape[0], np.nan)
        res[ok] = u / (n_pos[ok].astype(float) * n_neg[ok])
        out[rows] = res
    return out


def global_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """ROC AUC over a flat list of scored (user, item) pairs (the pair-wise protocol).

    Ties between a positive and a negative count 1/2.

    Args:
        scores: 1-D scores, one per pair; higher = more likely positive. No NaN.
        labels: 1-D labels of the same length; nonzero = positive.

    Returns:
        The AUC, or NaN when there is no positive or no negative.

    Example:
        >>> global_auc([0.8, 0.4, 0.4, 0.1], [1, 1, 0, 0])  # (1 + 1 + 0.5 + 1) / 4
        0.875
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1 or s.shape != y.shape:
        raise DataError(
            f"scores and labels must be 1-D of equal length, got {s.shape} and {y.shape}",
            field="scores",
        )
    if np.isnan(s).any():
        raise DataError(f"NaN score at position {int(np.argmax(np.isnan(s)))}", field="scores")
    pos = y != 0
    n_pos = int(pos.sum())
    n_neg = int(pos.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (float(n_pos) * n_neg))


# --------------------------------------------------------------------------------------------
# beyond accuracy


def _embedding_similarity(item_embeddings: npt.ArrayLike) -> tuple[int, Callable]:
    emb = np.asarray(item_embeddings, dtype=float)
    if emb.ndim != 2:
        raise DataError(f"must be 2-D (n_items, d), got shape {emb.shape}", field="item_embeddings")
    norms = np.linalg.norm(emb, axis=1)
    unit = np.divide(emb, norms[:, None], out=np.zeros_like(emb), where=norms[:, None] > 0)

    def block(items: np.ndarray) -> np.ndarray:
        sub = unit[items]
        return sub @ sub.T

    return emb.shape[0], block


def _cooccurrence_similarity(cooccurrence: object) -> tuple[int, Callable]:
    x = _as_csr(cooccurrence, "cooccurrence").astype(float)
    item_rows = sp.csr_matrix(x.T)
    norms = np.sqrt(np.asarray(item_rows.multiply(item_rows).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit = sp.csr_matrix(sp.diags(inv) @ item_rows)

    def block(items: np.ndarray) -> np.ndarray:
        sub = unit[items]
        return np.asarray((sub @ sub.T).toarray())

    return x.shape[1], block


def intra_list_diversity(
    ranked: npt.ArrayLike,
    k: int,
    *,
    item_embeddings: npt.ArrayLike | None = None,
    cooccurrence: object | None = None,
) -> np.ndarray:
    """Mean pairwise dissimilarity ``1 - cos(i, j)`` among each user's top-``k`` items.

    Give exactly one similarity source:

    * ``item_embeddings`` ``(n_items, d)``: cosine of the embedding vectors (the result lies in
      ``[0, 2]``; in ``[0, 1]`` for non-negative embeddings).
    * ``cooccurrence``: a sparse user-item interaction matrix ``(n_users_train, n_items)``;
      similarity is the cosine between item columns, values used as given (pass a binary
      matrix for plain co-occurrence).

    An item with a zero vector (or no interactions) has similarity 0 to every item, so
    dissimilarity 1.

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        k: Cut-off (>= 1).
        item_embeddings: Item vectors, row = item code.
        cooccurrence: Sparse user-item interaction matrix, column = item code.

    Returns:
        Float array ``(n_users,)``; NaN for lists with fewer than two items.

    Example:
        >>> import numpy as np
        >>> emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
        >>> intra_list_diversity(np.array([[0, 1], [0, 2], [0, -1]]), 2, item_embeddings=emb)
        array([ 1.,  0., nan])
    """
    k = _check_k(k)
    if (item_embeddings is None) == (cooccurrence is None):
        raise DataError(
            "give exactly one of item_embeddings or cooccurrence", field="intra_list_diversity"
        )
    if item_embeddings is not None:
        n_items, similarity = _embedding_similarity(item_embeddings)
    else:
        n_items, similarity = _cooccurrence_similarity(cooccurrence)
    top = _as_ranked(ranked, k, n_items)
    n_users, width = top.shape
    out = np.full(n_users, np.nan)
    if width < 2:
        return out
    first, second = np.triu_indices(width, 1)
    block = max(1, _DIVERSITY_BLOCK_ITEMS // width)
    for start in range(0, n_users, block):
        tb = top[start : start + block]
        valid = tb >= 0
        items, local = np.unique(tb[valid], return_inverse=True)
        if items.size < 2:
            continue
        loc = np.zeros(tb.shape, dtype=np.int64)
        loc[valid] = local.ravel()
        sim = np.clip(similarity(items), -1.0, 1.0)
        pair_sim = sim[loc[:, first], loc[:, second]]
        pair_ok = valid[:, first] & valid[:, second]
        n_pairs = pair_ok.sum(axis=1)
        total = np.where(pair_ok, 1.0 - pair_sim, 0.0).sum(axis=1)
        has = n_pairs > 0
        res = np.full(tb.shape[0], np.nan)
        res[has] = total[has] / n_pairs[has]
        out[start : start + block] = res
    return out


def catalogue_coverage(ranked: npt.ArrayLike, k: int, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's top ``k``.

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        k: Cut-off (>= 1).
        n_items: Catalogue size.

    Returns:
        ``|union of top-k items| / n_items`` in ``[0, 1]``.

    Example:
        >>> import numpy as np
        >>> catalogue_coverage(np.array([[0, 1], [1, -1]]), 2, n_items=4)
        0.5
    """
    k = _check_k(k)
    n_items = _check_n_items(n_items)
    top = _as_ranked(ranked, k, n_items)
    return float(np.unique(top[top >= 0]).size / n_items)


def novelty(ranked: npt.ArrayLike, k: int, popularity: npt.ArrayLike, n_users: int) -> np.ndarray:
    """Mean self-information of the top-``k`` items.

    Item ``i`` has self-information ``-log2((pop_i + 1) / (n_users + 1))``, where ``pop_i`` is
    the number of training users who interacted with ``i`` (add-one smoothing keeps unseen
    items finite: they score ``log2(n_users + 1)``). ``pop_i`` should not exceed ``n_users``
    (count distinct users), otherwise the value can go negative.

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        k: Cut-off (>= 1).
        popularity: Training interaction counts per item, shape ``(n_items,)``.
        n_users: Number of training users the counts are taken over.

    Returns:
        Float array ``(n_users_ranked,)`` in bits; NaN for empty lists.

    Example:
        >>> import numpy as np
        >>> novelty(np.array([[0, 1]]), 2, popularity=[3, 1], n_users=3)  # (0 + 1) / 2
        array([0.5])
    """
    k = _check_k(k)
    pop = _as_popularity(popularity)
    if isinstance(n_users, bool) or not isinstance(n_users, int | np.integer) or n_users < 0:
        raise DataError(f"must be a non-negative integer, got {n_users!r}", field="n_users")
    top = _as_ranked(ranked, k, pop.size)
    info = -np.log2((pop + 1.0) / (float(n_users) + 1.0))
    return _mean_over_list(info, top)


def gini_index(ranked: npt.ArrayLike, k: int, n_items: int) -> float:
    """Gini coefficient of item exposure in the top-``k`` lists, over the whole catalogue.

    With ``x_1 <= ... <= x_n`` the sorted counts of how often each of the ``n = n_items`` items
    appears in any top ``k`` (zero counts included),
    ``G = sum_i (2 i - n - 1) x_i / (n * sum_i x_i)``. 0 means perfectly equal exposure; the
    maximum ``(n - 1) / n`` means every recommendation is the same single item.

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        k: Cut-off (>= 1).
        n_items: Catalogue size.

    Returns:
        The Gini index; NaN when there is no recommendation at all.

    Example:
        >>> import numpy as np
        >>> gini_index(np.array([[0, 1], [1, 0]]), 2, n_items=2)
        0.0
        >>> gini_index(np.array([[0], [0]]), 1, n_items=4)  # (3 * 2) / (4 * 2)
        0.75
    """
    k = _check_k(k)
    n_items = _check_n_items(n_items)
    top = _as_ranked(ranked, k, n_items)
    counts = np.sort(np.bincount(top[top >= 0], minlength=n_items)).astype(float)
    total = counts.sum()
    if total == 0:
        return float("nan")
    weights = 2.0 * np.arange(1, n_items + 1) - n_items - 1
    return float(weights @ counts / (n_items * total))


def average_popularity(ranked: npt.ArrayLike, k: int, popularity: npt.ArrayLike) -> np.ndarray:
    """Mean training popularity of each user's top-``k`` items.

    Args:
        ranked: Item codes ``(n_users, K)``, best first, ``-1`` padded.
        k: Cut-off (>= 1).
        popularity: Training interaction counts per item, shape ``(n_items,)``.

    Returns:
        Float array ``(n_users,)``; NaN for empty lists.

    Example:
        >>> import numpy as np
        >>> average_popularity(np.array([[0, 2], [1, -1]]), 2, popularity=[10, 4, 2])
        array([6., 4.])
    """
    k = _check_k(k)
    pop = _as_popularity(popularity)
    top = _as_ranked(ranked, k, pop.size)
    return _mean_over_list(pop, top)
