"""Confidence intervals, paired significance tests and Holm's multiple-comparison correction."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

# Differences this close to each other (relative to their size) count as one constant value:
# rounding noise must not turn "every user gained exactly 0.1" into a huge t statistic.
_CONSTANT_RTOL = 1e-12


def bootstrap_ci(
    values: npt.ArrayLike, *, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (NaN entries dropped).

    Resamples with :func:`scipy.stats.bootstrap` (percentile method), seeded, so the same
    values, ``resamples`` and ``seed`` give the same interval. Degenerate inputs answer
    without a warning: no values (or ``resamples <= 0``) give ``(nan, nan)``; one value, or
    values that are all equal, give ``(x, x)``.

    Args:
        values: per-user metric values; NaN entries are ignored.
        resamples: number of bootstrap resamples.
        level: confidence level of the two-sided interval.
        seed: seed of the resampling generator.

    Returns:
        The lower and upper ends of the interval.

    Example:
        >>> lo, hi = bootstrap_ci(np.array([0.0, 1.0] * 50), resamples=200)
        >>> lo < 0.5 < hi
        True
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if len(x) == 0 or resamples <= 0:
        return float("nan"), float("nan")
    if len(x) == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    result = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=resamples,
        batch=256,  # bounds memory for large user counts
        vectorized=True,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def paired_test(a: npt.ArrayLike, b: npt.ArrayLike) -> dict[str, float]:
    """Paired comparison of two per-user arrays over the same users (NaN pairs dropped).

    Args:
        a: per-user values of the model.
        b: per-user values of the baseline, aligned with ``a``.

    Returns:
        ``diff`` (mean of ``a - b``), ``n`` (pairs kept), and the two-sided p-values
        ``p_ttest`` (paired t-test) and ``p_wilcoxon`` (Wilcoxon signed-rank, zero differences
        dropped). Both p-values are NaN with fewer than two pairs or when every difference is
        zero. When every difference is the same non-zero value the t-test is undefined (zero
        variance) and ``p_ttest`` is NaN, while the Wilcoxon test still answers.

    Raises:
        ValueError: when ``a`` and ``b`` differ in shape.

    Example:
        >>> r = paired_test(np.arange(10.0) + 1, np.arange(10.0))
        >>> r["diff"], bool(np.isnan(r["p_ttest"])), r["p_wilcoxon"] < 0.01
        (1.0, True, True)
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    out: dict[str, float] = {
        "diff": float(d.mean()) if len(d) else float("nan"),
        "n": int(len(d)),
        "p_ttest": float("nan"),
        "p_wilcoxon": float("nan"),
    }
    if len(d) < 2 or np.all(d == 0):
        return out
    constant = np.ptp(d) <= _CONSTANT_RTOL * np.abs(d).max()
    if not constant:
        out["p_ttest"] = float(stats.ttest_rel(a[keep], b[keep]).pvalue)
    out["p_wilcoxon"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return out


def holm(pvalues: npt.ArrayLike) -> np.ndarray:
    """Holm's step-down adjustment of p-values for multiple comparisons.

    With the ``m`` finite p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted
    value of the ``i``-th is ``max_{j <= i} min(1, (m - j + 1) * p_(j))``. Rejecting where the
    adjusted value is below ``alpha`` controls the family-wise error rate at ``alpha``. NaN
    entries (tests that could not be run) stay NaN and do not count in ``m``.

    Args:
        pvalues: p-values of any shape.

    Returns:
        The adjusted p-values, same shape as the input, as floats.

    Raises:
        ValueError: when a p-value is outside ``[0, 1]``.

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005]).round(4).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.ravel()
    if np.any((flat < 0) | (flat > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    out = np.full(flat.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(flat))
    m = len(finite)
    if m:
        order = finite[np.argsort(flat[finite], kind="stable")]
        scaled = flat[order] * (m - np.arange(m))
        out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out.reshape(p.shape)
