"""Position-bias control for listwise ranking: permutation averaging and order sensitivity.

A language model that picks one item of a list prefers some positions (small models often the
first, whatever it is). Scoring the same candidates under several orders and fusing the scores
per *item* cancels much of that bias; how much the ranking changes between orders (a rank
correlation) measures how sensitive the model is to the order at all.

Scores are arranged as a matrix ``per_order`` of shape ``(orders, items)`` in the *items'*
order (column ``j`` is always candidate ``j``, whatever position it was shown at).

Example:
    >>> per_order = np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    >>> fuse(per_order, "mean").tolist()
    [2.0, 2.5, 1.5]
    >>> fuse(per_order, "borda").tolist()  # points: best 2, then 1, then 0; averaged
    [1.0, 1.5, 0.5]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FUSIONS",
    "OrderSensitivity",
    "PermutedScores",
    "all_orders",
    "borda_points",
    "fuse",
    "order_sensitivity",
    "permuted_scores",
    "seeded_orders",
]

#: how the scores of several orders are fused
FUSIONS = ("mean", "borda")
#: the most items for which ``orders="all"`` is accepted (8! = 40320 orders)
MAX_ALL_ITEMS = 8


def seeded_orders(n: int, n_orders: int, seed: int = 0, *, identity: bool = True) -> np.ndarray:
    """``n_orders`` distinct orders of ``n`` items, seeded, as an ``(orders, n)`` int array.

    The first is the given order when ``identity``; the others are seeded random shuffles. When
    fewer than ``n_orders`` orders exist (``n!``), all of them are returned.

    Example:
        >>> seeded_orders(3, 2, seed=0)[0].tolist()
        [0, 1, 2]
        >>> len(seeded_orders(2, 5))
        2
    """
    if n < 0 or n_orders < 1:
        raise ValueError(f"need n >= 0 and n_orders >= 1, got n={n}, n_orders={n_orders}")
    if n <= MAX_ALL_ITEMS and math.factorial(n) <= n_orders:
        return all_orders(n)
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    out: list[np.ndarray] = []
    if identity:
        out.append(np.arange(n))
        seen.add(tuple(range(n)))
    while len(out) < n_orders:
        order = rng.permutation(n)
        if tuple(order) not in seen:
            seen.add(tuple(order))
            out.append(order)
    return np.stack(out).astype(np.int64)


def all_orders(n: int) -> np.ndarray:
    """Every order of ``n`` items (``n!`` rows, identity first); at most 8 items.

    Example:
        >>> all_orders(3).shape
        (6, 3)
    """
    if n > MAX_ALL_ITEMS:
        raise ValueError(
            f"all orders of {n} items are {math.factorial(n)}; at most "
            f"{MAX_ALL_ITEMS} items (use seeded_orders)"
        )
    rows = list(itertools.permutations(range(n)))
    return np.array(rows, dtype=np.int64).reshape(len(rows), n)


def borda_points(per_order: np.ndarray) -> np.ndarray:
    """Borda points of each row: ``n - 1`` for the best item down to 0, ties averaged.

    Example:
        >>> borda_points(np.array([[0.1, 0.9, 0.5], [2.0, 2.0, 1.0]])).tolist()
        [[0.0, 2.0, 1.0], [1.5, 1.5, 0.0]]
    """
    from scipy.stats import rankdata

    scores = np.atleast_2d(np.asarray(per_order, dtype=np.float64))
    if scores.shape[1] == 0:
        return scores.copy()
    return rankdata(scores, method="average", axis=1) - 1.0


def fuse(per_order: np.ndarray, method: str = "mean") -> np.ndarray:
    """Fuse an ``(orders, items)`` score matrix into one score per item.

    ``"mean"``: the mean score; ``"borda"``: the mean Borda points (:func:`borda_points`),
    which ignores the scale of each order's scores.
    """
    if method not in FUSIONS:
        raise ValueError(f"unknown fusion {method!r}; known: {', '.join(FUSIONS)}")
    scores = np.atleast_2d(np.asarray(per_order, dtype=np.float64))
    if method == "borda":
        scores = borda_points(scores)
    return scores.mean(axis=0)


@dataclass(frozen=True)
class OrderSensitivity:
    """How much a ranking changes with the order the items are shown in.

    Attributes:
        method: ``"kendall"`` (tau-b) or ``"spearman"``.
        mean: the mean rank correlation over all pairs of orders (1: order does not matter;
            near 0: the ranking is unrelated across orders). NaN when every pair is undefined
            (constant scores).
        minimum: the lowest pairwise correlation.
        pairwise: the ``(orders, orders)`` correlation matrix.
    """

    method: str
    mean: float
    minimum: float
    pairwise: np.ndarray


def order_sensitivity(per_order: np.ndarray, method: str = "kendall") -> OrderSensitivity:
    """Rank correlation between the rankings of the same items under different orders.

    Example:
        >>> s = order_sensitivity(np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]]))
        >>> round(s.mean, 3), round(s.minimum, 3)
        (-0.333, -1.0)
    """
    from scipy.stats import kendalltau, spearmanr

    if method not in ("kendall", "spearman"):
        raise ValueError(f"unknown method {method!r}; known: kendall, spearman")
    scores = np.atleast_2d(np.asarray(per_order, dtype=np.float64))
    k, n = scores.shape
    if k < 2 or n < 2:
        raise ValueError(f"need at least 2 orders of at least 2 items, got {k} x {n}")
    pairwise = np.eye(k)
    for a, b in itertools.combinations(range(k), 2):
        if np.ptp(scores[a]) == 0 or np.ptp(scores[b]) == 0:
            value = float("nan")
        elif method == "kendall":
            value = float(kendalltau(scores[a], scores[b]).statistic)
        else:
            value = float(spearmanr(scores[a], scores[b]).statistic)
        pairwise[a, b] = pairwise[b, a] = value
    upper = pairwise[np.triu_indices(k, 1)]
    if np.isnan(upper).all():
        return OrderSensitivity(method, float("nan"), float("nan"), pairwise)
    return OrderSensitivity(method, float(np.nanmean(upper)), float(np.nanmin(upper)), pairwise)


@dataclass(frozen=True)
class PermutedScores:
    """Scores of candidates shown in several orders, fused.

    Attributes:
        scores: one fused score per candidate, in the candidates' order.
        per_order: ``(orders, candidates)`` raw scores, column ``j`` = candidate ``j``.
        orders: ``(orders, candidates)``: row ``r`` lists the candidates shown at positions
            0, 1, ... in order ``r``.
        fusion: ``"mean"`` or ``"borda"``.
    """

    scores: np.ndarray
    per_order: np.ndarray
    orders: np.ndarray
    fusion: str

    def sensitivity(self, method: str = "kendall") -> OrderSensitivity:
        """:func:`order_sensitivity` of :attr:`per_order`."""
        return order_sensitivity(self.per_order, method)


def permuted_scores(
    score_order: Callable[[Sequence[int]], np.ndarray],
    n: int,
    orders: int | str | np.ndarray = 4,
    *,
    seed: int = 0,
    fusion: str = "mean",
) -> PermutedScores:
    """Score ``n`` candidates under several orders and fuse the scores per candidate.

    Args:
        score_order: given an order (candidate indices by position), the scores of the
            candidates *as shown*, position by position.
        n: how many candidates.
        orders: a count of seeded orders (:func:`seeded_orders`, the given order first),
            ``"all"`` (:func:`all_orders`, small lists), or an explicit ``(k, n)`` array.
        seed: seeds the shuffles.
        fusion: ``"mean"`` or ``"borda"`` (:func:`fuse`).

    Example:
        >>> first_wins = lambda order: np.array([1.0] + [0.0] * (len(order) - 1))
        >>> permuted_scores(first_wins, 3, "all").scores.tolist()  # the bias cancels out
        [0.3333333333333333, 0.3333333333333333, 0.3333333333333333]
    """
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; known: {', '.join(FUSIONS)}")
    if isinstance(orders, str):
        if orders != "all":
            raise ValueError(f"orders must be a count, 'all' or an array, got {orders!r}")
        table = all_orders(n)
    elif isinstance(orders, int | np.integer):
        table = seeded_orders(n, int(orders), seed)
    else:
        table = np.asarray(orders, dtype=np.int64)
        if (
            table.ndim != 2
            or table.shape[1] != n
            or any(sorted(r) != list(range(n)) for r in table.tolist())
        ):
            raise ValueError(f"orders must be permutations of range({n}), one per row")
    per_order = np.zeros((len(table), n), dtype=np.float64)
    for row, order in enumerate(table):
        shown = np.asarray(score_order([int(i) for i in order]), dtype=np.float64)
        if shown.shape != (n,):
            raise ValueError(f"score_order returned shape {shown.shape}, expected ({n},)")
        per_order[row, order] = shown
    return PermutedScores(fuse(per_order, fusion) if n else np.zeros(0), per_order, table, fusion)
