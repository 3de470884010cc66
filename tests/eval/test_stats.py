"""Tests of hybridrec.eval.stats and the pair-wise bootstrap: hand-computed values, edge cases."""

from __future__ import annotations

import ast
import doctest
import inspect
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from hybridrec.eval import stats
from hybridrec.eval.bench import _pairwise_bootstrap, _summarise
from hybridrec.eval.metrics import global_auc
from hybridrec.eval.protocols import Evaluation
from hybridrec.eval.stats import bootstrap_ci, holm, paired_test


def test_doctests() -> None:
    assert doctest.testmod(stats).failed == 0


# --- holm ---------------------------------------------------------------------------------


def test_holm_hand_computed() -> None:
    # sorted: 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04;
    # running maximum: 0.02, 0.03, 0.06, 0.06; back in input order:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_is_monotone() -> None:
    # 0.5 * 2 = 1.0, then max(1.0, 0.6 * 1) = 1.0
    np.testing.assert_allclose(holm([0.6, 0.5]), [1.0, 1.0])
    # 0.3 * 3 = 0.9, 0.4 * 2 = 0.8 -> 0.9, 0.45 * 1 -> 0.9
    np.testing.assert_allclose(holm([0.45, 0.3, 0.4]), [0.9, 0.9, 0.9])


def test_holm_ties_get_the_same_value_whatever_their_order() -> None:
    # 0.01 * 3 = 0.03, 0.01 * 2 = 0.02 -> 0.03, 0.2 * 1 -> 0.2
    np.testing.assert_allclose(holm([0.01, 0.2, 0.01]), [0.03, 0.2, 0.03])


def test_holm_ignores_nan_and_counts_only_finite_tests() -> None:
    # m = 2: 0.01 * 2 = 0.02, 0.02 * 1 -> 0.02
    out = holm([np.nan, 0.02, 0.01, np.nan])
    assert np.isnan(out[0]) and np.isnan(out[3])
    np.testing.assert_allclose(out[1:3], [0.02, 0.02])
    assert np.isnan(holm([np.nan])).all()
    assert holm([]).shape == (0,)


def test_holm_keeps_the_shape() -> None:
    out = holm(np.array([[0.01, 0.5], [np.nan, 0.02]]))  # m = 3: 0.03, 0.04, 0.5
    np.testing.assert_allclose(out, [[0.03, 0.5], [np.nan, 0.04]])


def test_holm_matches_a_loop_over_the_definition() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.random(rng.integers(1, 30)) ** 3
        m = len(p)
        order = np.argsort(p, kind="stable")
        expected = np.empty(m)
        running = 0.0
        for j, i in enumerate(order):
            running = max(running, min(1.0, (m - j) * p[i]))
            expected[i] = running
        np.testing.assert_allclose(holm(p), expected)


def test_holm_rejects_values_outside_zero_one() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])


# --- bootstrap_ci -------------------------------------------------------------------------


def test_bootstrap_degenerate_inputs_answer_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi = bootstrap_ci(np.array([]))
        assert math.isnan(lo) and math.isnan(hi)
        lo, hi = bootstrap_ci(np.array([np.nan, np.nan]))
        assert math.isnan(lo) and math.isnan(hi)
        assert bootstrap_ci(np.array([0.25])) == (0.25, 0.25)
        assert bootstrap_ci(np.array([0.5, np.nan, 0.5, 0.5])) == (0.5, 0.5)
        assert bootstrap_ci(np.zeros(1000)) == (0.0, 0.0)
        lo, hi = bootstrap_ci(np.array([0.0, 1.0]), resamples=0)  # no interval asked for
        assert math.isnan(lo) and math.isnan(hi)


def test_bootstrap_is_deterministic_by_seed() -> None:
    x = np.random.default_rng(0).random(300)
    assert bootstrap_ci(x, resamples=500, seed=1) == bootstrap_ci(x, resamples=500, seed=1)
    assert bootstrap_ci(x, resamples=500, seed=1) != bootstrap_ci(x, resamples=500, seed=2)


def test_bootstrap_is_scipy_percentile_bootstrap() -> None:
    x = np.random.default_rng(0).random(200)
    expected = sps.bootstrap(
        (x,),
        np.mean,
        n_resamples=300,
        method="percentile",
        confidence_level=0.9,
        rng=np.random.default_rng(7),
    ).confidence_interval
    lo, hi = bootstrap_ci(np.append(x, np.nan), resamples=300, level=0.9, seed=7)
    assert lo == pytest.approx(expected.low) and hi == pytest.approx(expected.high)


def test_bootstrap_matches_the_normal_interval_on_many_users() -> None:
    x = np.random.default_rng(1).random(5000)
    lo, hi = bootstrap_ci(x, resamples=2000)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert lo < x.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)


# --- paired_test --------------------------------------------------------------------------


def test_paired_test_constant_nonzero_difference() -> None:
    """Every user gains 1: the t-test is undefined (NaN), the Wilcoxon test answers."""
    r = paired_test(np.arange(10.0) + 1, np.arange(10.0))
    assert r["diff"] == 1.0 and r["n"] == 10
    assert math.isnan(r["p_ttest"])
    assert r["p_wilcoxon"] == pytest.approx(2 / 2**10)  # exact: both all-positive outcomes


def test_paired_test_rounding_noise_is_still_a_constant_difference() -> None:
    base = np.array([0.3, 0.1, 0.7, 0.2])
    r = paired_test(base + 0.1, base)  # the differences differ in their last bits only
    assert math.isnan(r["p_ttest"])
    assert r["p_wilcoxon"] == pytest.approx(2 / 2**4)


def test_paired_test_ordinary_case_is_scipys() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(50), rng.random(50)
    r = paired_test(a, b)
    assert r["diff"] == pytest.approx((a - b).mean())
    assert r["p_ttest"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert r["p_wilcoxon"] == pytest.approx(sps.wilcoxon(a - b).pvalue)


def test_paired_test_degenerate_cases() -> None:
    same = paired_test(np.ones(5), np.ones(5))
    assert same["diff"] == 0.0 and math.isnan(same["p_ttest"]) and math.isnan(same["p_wilcoxon"])
    one = paired_test(np.array([1.0, np.nan]), np.array([0.0, 0.0]))  # the NaN pair is dropped
    assert one["n"] == 1 and math.isnan(one["p_ttest"]) and math.isnan(one["p_wilcoxon"])
    empty = paired_test(np.array([]), np.array([]))
    assert empty["n"] == 0 and math.isnan(empty["diff"])
    with pytest.raises(ValueError, match="differ in shape"):
        paired_test(np.ones(3), np.ones(4))


def test_no_statement_follows_a_return() -> None:
    """Unreachable code after a ``return`` once contradicted the live branch of paired_test."""
    tree = ast.parse(inspect.getsource(stats))
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for stmt in block[:-1]:
                assert not isinstance(stmt, ast.Return | ast.Raise), (
                    f"unreachable code after line {stmt.lineno}"
                )


# --- the pair-wise AUC bootstrap of the harness --------------------------------------------


def _pairs(n_users: int = 30, per_user: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    labels = np.tile([1, 0] * (per_user // 2), n_users)
    scores = labels + rng.normal(0, 0.8, len(labels))
    return scores, labels, users


def _old_user_groups_bootstrap(scores, labels, users, resamples, seed):
    """The previous implementation's resampling (user groups by flatnonzero) for the CI."""
    groups = [np.flatnonzero(users == u) for u in np.unique(users)]
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(resamples):
        idx = np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])
        if len(np.unique(labels[idx])) < 2:
            continue
        aucs.append(global_auc(scores[idx], labels[idx]))
    return tuple(np.quantile(aucs, [0.025, 0.975]))


def test_pairwise_bootstrap_identical_baseline_gives_p_one() -> None:
    pairs = _pairs()
    lo, hi, p = _pairwise_bootstrap(pairs, Evaluation(pairwise=pairs), 200, 0)
    assert lo <= global_auc(pairs[0], pairs[1]) <= hi
    assert p == 1.0  # every resampled difference is 0: (200 + 1) / (200 + 1) on both sides


def test_pairwise_bootstrap_clear_winner_gets_the_smallest_p() -> None:
    scores, labels, users = _pairs()
    perfect = labels.astype(float)  # AUC 1 on every resample
    worst = -perfect  # AUC 0 on every resample
    _, _, p = _pairwise_bootstrap(
        (perfect, labels, users), Evaluation(pairwise=(worst, labels, users)), 99, 0
    )
    # no difference <= 0 in 99 resamples: 2 * (0 + 1) / (99 + 1)
    assert p == pytest.approx(0.02)


def test_pairwise_bootstrap_ci_is_the_user_resampling_percentile_interval() -> None:
    pairs = _pairs(seed=1)
    lo, hi, p = _pairwise_bootstrap(pairs, None, 150, 4)
    assert (lo, hi) == pytest.approx(_old_user_groups_bootstrap(*pairs, 150, 4))
    assert math.isnan(p)  # no baseline
    assert _pairwise_bootstrap(pairs, None, 150, 4)[:2] == (lo, hi)  # deterministic


def test_pairwise_bootstrap_degenerate_inputs() -> None:
    scores, labels, users = _pairs()
    assert all(math.isnan(v) for v in _pairwise_bootstrap((scores, labels, users), None, 0, 0))
    ones = np.ones_like(labels)
    assert all(math.isnan(v) for v in _pairwise_bootstrap((scores, ones, users), None, 20, 0))
    empty = (np.array([]), np.array([], dtype=int), np.array([], dtype=int))
    assert all(math.isnan(v) for v in _pairwise_bootstrap(empty, None, 20, 0))
    other = Evaluation(pairwise=(scores[:-1], labels[:-1], users[:-1]))  # not the same pairs
    lo, hi, p = _pairwise_bootstrap((scores, labels, users), other, 20, 0)
    assert lo <= hi and math.isnan(p)


def test_summarise_reports_raw_p_values_and_the_pairwise_auc() -> None:
    rng = np.random.default_rng(0)
    base_values = rng.random(40)
    model = Evaluation(per_user={"ndcg@10": base_values + 0.2 + rng.normal(0, 0.05, 40)})
    base = Evaluation(per_user={"ndcg@10": base_values})
    metrics, versus = _summarise(model, base, 100, 0)
    assert metrics["ndcg@10"]["n"] == 40
    assert metrics["ndcg@10"]["ci_low"] < metrics["ndcg@10"]["mean"] < metrics["ndcg@10"]["ci_high"]
    assert versus["ndcg@10"]["diff"] == pytest.approx(0.2, abs=0.05)
    assert versus["ndcg@10"]["p_ttest"] < 1e-6

    scores, labels, users = _pairs()
    pair_model = Evaluation(pairwise=(scores, labels, users), scalars={})  # no scalar "auc"
    pair_base = Evaluation(pairwise=(-scores, labels, users))
    metrics, versus = _summarise(pair_model, pair_base, 50, 0)
    auc = global_auc(scores, labels)
    assert metrics["auc"]["mean"] == pytest.approx(auc) and metrics["auc"]["n"] == 30
    assert versus["auc"]["diff"] == pytest.approx(auc - global_auc(-scores, labels))
    assert 0 < versus["auc"]["p_bootstrap"] < 0.05
