"""Confidence intervals and paired significance tests over per-user metric arrays."""

from __future__ import annotations

import numpy as np
from scipy import stats


def bootstrap_ci(
    values: np.ndarray, *, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (NaN entries dropped).

    Example:
        >>> lo, hi = bootstrap_ci(np.array([0.0, 1.0] * 50), resamples=200)
        >>> lo < 0.5 < hi
        True
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return float("nan"), float("nan")
    if len(x) == 1 or resamples <= 0:
        return float(x.mean()), float(x.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # chunks bound memory for large user counts
        stop = min(start + 256, resamples)
        idx = rng.integers(0, len(x), size=(stop - start, len(x)))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired comparison of two per-user arrays over the same users (NaN pairs dropped).

    Returns the mean difference ``a - b``, the two-sided p-value of a paired t-test and of a
    Wilcoxon signed-rank test (both NaN when every difference is zero or there are fewer than
    two pairs; the t-test's NaN also when every difference is the same).

    Example:
        >>> r = paired_test(np.arange(10.0) + 1, np.arange(10.0))
        >>> r["diff"]
        1.0
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    out = {"diff": float(d.mean()) if len(d) else float("nan"), "n": int(len(d))}
    if len(d) < 2 or np.all(d == 0):
        out.update(p_ttest=float("nan"), p_wilcoxon=float("nan"))
        return out
    # a t-test is undefined when every difference is the same; Wilcoxon still answers
    constant = np.all(d == d[0])
    out["p_ttest"] = float("nan") if constant else float(stats.ttest_rel(a[keep], b[keep]).pvalue)
    out["p_wilcoxon"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return out
    if np.all(d == d[0]):  # constant non-zero difference: certainly different
        out.update(p_ttest=0.0, p_wilcoxon=0.0)
        return out
    out["p_ttest"] = float(stats.ttest_rel(a[keep], b[keep]).pvalue)
    out["p_wilcoxon"] = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return out
