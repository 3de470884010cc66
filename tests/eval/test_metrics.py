"""Tests of hybridrec.eval.metrics: hand-computed values plus cross-checks against references."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import scipy.sparse as sp

from hybridrec.eval import metrics as m
from hybridrec.eval.metrics import (
    auc_per_user,
    average_popularity,
    catalogue_coverage,
    gini_index,
    global_auc,
    hit_rate_at_k,
    intra_list_diversity,
    mean_metric,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
)

L3 = math.log2(3)
L5 = math.log2(5)
NAN = float("nan")


def _csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    """Binary csr matrix with row u relevant at the item codes rows[u]."""
    dense = np.zeros((len(rows), n_items), dtype=np.int8)
    for u, items in enumerate(rows):
        dense[u, items] = 1
    return sp.csr_matrix(dense)


# Five users, six items, lists of width 5.
RANKED = np.array(
    [
        [2, 0, 4, 1, -1],  # relevant {0, 1, 5}: hits at ranks 2 and 4
        [3, -1, -1, -1, -1],  # relevant {3}: hit at rank 1, list of one item
        [1, 2, 3, 4, 5],  # no relevant item -> NaN everywhere
        [-1, -1, -1, -1, -1],  # relevant {0}, empty list -> 0
        [5, 4, 3, -1, -1],  # relevant {0, 4}: hit at rank 2
    ]
)
RELEVANT = _csr([[0, 1, 5], [3], [], [0], [0, 4]], 6)


def _close(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, np.array(expected, dtype=float), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ accuracy


def test_hit_rate_hand_computed() -> None:
    _close(hit_rate_at_k(RANKED, RELEVANT, 3), [1, 1, NAN, 0, 1])
    _close(hit_rate_at_k(RANKED, RELEVANT, 1), [0, 1, NAN, 0, 0])


def test_recall_hand_computed() -> None:
    # user 0: 1 of 3 relevant in top 3, 2 of 3 in top 5; user 4: 1 of 2
    _close(recall_at_k(RANKED, RELEVANT, 3), [1 / 3, 1, NAN, 0, 1 / 2])
    _close(recall_at_k(RANKED, RELEVANT, 5), [2 / 3, 1, NAN, 0, 1 / 2])


def test_precision_denominator_is_k() -> None:
    # user 1 has a single-item list: 1 hit / k, even though only 1 position is filled
    _close(precision_at_k(RANKED, RELEVANT, 3), [1 / 3, 1 / 3, NAN, 0, 1 / 3])
    _close(precision_at_k(RANKED, RELEVANT, 5), [2 / 5, 1 / 5, NAN, 0, 1 / 5])
    # k beyond the list width still divides by k: user 0 has 2 hits / 10
    _close(precision_at_k(RANKED, RELEVANT, 10)[:1], [2 / 10])


def test_ndcg_hand_computed() -> None:
    # user 0, k=3: DCG = 1/log2(3) (rank 2); ideal over min(3, 3) = 3: 1 + 1/log2(3) + 1/log2(4)
    # user 4, k=3: DCG = 1/log2(3); ideal over min(3, 2) = 2: 1 + 1/log2(3)
    _close(
        ndcg_at_k(RANKED, RELEVANT, 3),
        [(1 / L3) / (1 + 1 / L3 + 1 / 2), 1, NAN, 0, (1 / L3) / (1 + 1 / L3)],
    )
    # user 0, k=5: DCG = 1/log2(3) + 1/log2(5) (ranks 2 and 4)
    _close(
        ndcg_at_k(RANKED, RELEVANT, 5)[:1],
        [(1 / L3 + 1 / L5) / (1 + 1 / L3 + 1 / 2)],
    )
    # k=1: only rank 1 counts; ideal DCG = 1 for everyone with a relevant item
    _close(ndcg_at_k(RANKED, RELEVANT, 1), [0, 1, NAN, 0, 0])


def test_ndcg_ideal_uses_k_beyond_list_width() -> None:
    # 3 relevant, list of width 1 holding one of them, k=3: ideal = 1 + 1/log2(3) + 1/2
    ranked = np.array([[0]])
    rel = _csr([[0, 1, 2]], 4)
    _close(ndcg_at_k(ranked, rel, 3), [1 / (1 + 1 / L3 + 1 / 2)])


def test_mrr_hand_computed() -> None:
    # first hits: user 0 rank 2, user 1 rank 1, user 4 rank 2
    _close(mrr_at_k(RANKED, RELEVANT), [1 / 2, 1, NAN, 0, 1 / 2])
    _close(mrr_at_k(RANKED, RELEVANT, k=1), [0, 1, NAN, 0, 0])
    ranked = np.array([[0, 1, 2, 3]])
    rel = _csr([[3]], 4)
    _close(mrr_at_k(ranked, rel), [1 / 4])
    _close(mrr_at_k(ranked, rel, k=3), [0])


def test_padding_is_never_relevant() -> None:
    # item code n_items - 1 is relevant for user 0; user 1's -1 padding must not hit it
    # (a flat key u * n_items - 1 would equal user 0's last item if padding were not masked)
    ranked = np.array([[0, -1], [-1, -1]])
    rel = _csr([[2], [2]], 3)
    _close(hit_rate_at_k(ranked, rel, 2), [0, 0])
    ranked = np.array([[-1, 1]])
    rel = _csr([[1]], 3)
    # padding in the middle still takes its position: the hit is at rank 2
    _close(mrr_at_k(ranked, rel), [1 / 2])


def test_explicit_zero_is_not_relevant() -> None:
    rel = sp.csr_matrix((np.array([0, 1]), np.array([0, 1]), np.array([0, 2])), shape=(1, 3))
    assert rel.nnz == 2  # an explicitly stored zero at item 0
    _close(recall_at_k(np.array([[0, 2]]), rel, 2), [0])
    _close(hit_rate_at_k(np.array([[0, 1]]), rel, 2), [1])


def test_dense_relevant_accepted() -> None:
    _close(recall_at_k(RANKED, RELEVANT.toarray(), 5), recall_at_k(RANKED, RELEVANT, 5))


def test_no_relevant_users_are_nan_and_skipped() -> None:
    hr = hit_rate_at_k(RANKED, RELEVANT, 3)
    assert np.isnan(hr[2])
    # mean over the 4 users with a relevant item: (1 + 1 + 0 + 1) / 4
    assert mean_metric(hr) == pytest.approx(3 / 4)
    empty = sp.csr_matrix((2, 6))
    assert np.isnan(mean_metric(ndcg_at_k(RANKED[:2], empty, 3)))


def test_mean_metric() -> None:
    assert mean_metric([1.0, NAN, 0.0, 0.5]) == pytest.approx(0.5)
    assert math.isnan(mean_metric([NAN, NAN]))
    assert math.isnan(mean_metric([]))
    assert isinstance(mean_metric(np.array([1, 2])), float)


@pytest.mark.parametrize(
    ("ranked", "k", "match"),
    [
        (np.array([[0, 6]]), 2, "outside"),
        (np.array([[0, -2]]), 2, "outside"),
        (np.array([[1, 1]]), 2, "more than once"),
        (np.array([[0.0, 1.0]]), 2, "integer"),
        (np.array([0, 1]), 2, "2-D"),
        (np.array([[0, 1]]), 0, ">= 1"),
        (np.array([[0, 1]]), 2.0, "positive integer"),
        (np.array([[0, 1]]), True, "positive integer"),
    ],
)
def test_bad_input_is_rejected(ranked: np.ndarray, k: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        recall_at_k(ranked, _csr([[0]], 6), k)


def test_duplicate_beyond_k_is_ignored_and_row_mismatch_rejected() -> None:
    _close(recall_at_k(np.array([[0, 1, 1]]), _csr([[0]], 3), 2), [1])
    with pytest.raises(ValueError, match="rows"):
        recall_at_k(np.array([[0, 1]]), _csr([[0], [1]], 3), 2)


# ------------------------------------------------------------------------------ ir_measures


def test_cross_check_against_ir_measures() -> None:
    ir_measures = pytest.importorskip("ir_measures")
    from ir_measures import RR, P, R, Success, nDCG

    rng = np.random.default_rng(7)
    n_users, n_items, width = 50, 40, 15
    ranked = np.full((n_users, width), -1)
    rel_rows = []
    for u in range(n_users):
        length = int(rng.integers(1, width + 1))
        ranked[u, :length] = rng.choice(n_items, size=length, replace=False)
        n_rel = int(rng.integers(0, 8))
        rel_rows.append(sorted(rng.choice(n_items, size=n_rel, replace=False).tolist()))
    relevant = _csr(rel_rows, n_items)

    qrels = [
        ir_measures.Qrel(f"q{u}", f"d{i}", 1) for u, items in enumerate(rel_rows) for i in items
    ]
    # strictly decreasing scores by rank, so tie-breaking inside the reference does not matter
    run = [
        ir_measures.ScoredDoc(f"q{u}", f"d{item}", float(width - pos))
        for u in range(n_users)
        for pos, item in enumerate(ranked[u])
        if item >= 0
    ]
    ks = (1, 5, 10, 20)  # 20 > list width
    ours = {}
    for k in ks:
        ours[nDCG @ k] = ndcg_at_k(ranked, relevant, k)
        ours[R @ k] = recall_at_k(ranked, relevant, k)
        ours[P @ k] = precision_at_k(ranked, relevant, k)
        ours[RR @ k] = mrr_at_k(ranked, relevant, k)
        ours[Success @ k] = hit_rate_at_k(ranked, relevant, k)
    ours[RR] = mrr_at_k(ranked, relevant)

    seen = 0
    for result in ir_measures.iter_calc(list(ours), qrels, run):
        u = int(result.query_id[1:])
        assert rel_rows[u], "the reference should skip users with no relevant item"
        assert ours[result.measure][u] == pytest.approx(result.value, abs=1e-9), (
            result.measure,
            u,
        )
        seen += 1
    n_with_rel = sum(1 for items in rel_rows if items)
    assert 0 < n_with_rel < n_users  # both kinds of user occur
    assert seen == n_with_rel * len(ours)
    for values in ours.values():
        no_rel = np.array([not items for items in rel_rows])
        assert np.isnan(values[no_rel]).all()
        assert not np.isnan(values[~no_rel]).any()


# ------------------------------------------------------------------------------ AUC


def test_auc_hand_computed_and_ties() -> None:
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.9, 0.5, 0.5, 0.1], [0.3, 0.3, 0.3, 0.3]])
    rel = _csr([[1], [0, 1], [0, 2]], 4)
    # user 0: positive item 1 beats item 3 (1), ties item 2 (1/2), loses to item 0 (0): 1.5 / 3
    # user 1: pairs (0,2)=1, (0,3)=1, (1,2)=1/2, (1,3)=1: 3.5 / 4
    # user 2: everything tied: 0.5
    _close(auc_per_user(scores, rel), [0.5, 0.875, 0.5])
    # nested lists are accepted
    _close(auc_per_user(scores.tolist(), rel), [0.5, 0.875, 0.5])


def test_auc_candidates_mask() -> None:
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.9, 0.5, 0.5, 0.1]])
    rel = _csr([[1], [0, 1]], 4)
    cand = np.array([[0, 1, 1, 1], [0, 1, 1, 1]], dtype=bool)
    # user 0: item 0 (a negative) excluded -> negatives {2, 3}: (1/2 + 1) / 2
    # user 1: item 0 (a positive, e.g. already seen) excluded -> positive {1} vs {2, 3}: 1.5 / 2
    _close(auc_per_user(scores, rel, cand), [0.75, 0.75])
    _close(auc_per_user(scores, rel, sp.csr_matrix(cand)), [0.75, 0.75])
    # excluded items may hold any score, NaN included
    scores_nan = scores.copy()
    scores_nan[:, 0] = np.nan
    _close(auc_per_user(scores_nan, rel, cand), [0.75, 0.75])


def test_auc_nan_without_positive_or_negative() -> None:
    scores = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    rel = _csr([[], [0, 1, 2], [0]], 3)
    cand = np.array([[1, 1, 1], [1, 1, 1], [0, 1, 1]], dtype=bool)
    # user 0: no positive; user 1: no negative; user 2: its only positive is masked out
    out = auc_per_user(scores, rel, cand)
    assert np.isnan(out).all()
    assert math.isnan(mean_metric(out))


def test_auc_infinite_scores_and_errors() -> None:
    scores = np.array([[-np.inf, 1.0, -np.inf]])
    # positive item 0 (-inf) vs item 1 (lose) and item 2 (tie): 0.5 / 2
    _close(auc_per_user(scores, _csr([[0]], 3)), [0.25])
    with pytest.raises(ValueError, match="NaN"):
        auc_per_user(np.array([[np.nan, 1.0]]), _csr([[0]], 2))
    with pytest.raises(ValueError, match="shape"):
        auc_per_user(np.ones((1, 3)), _csr([[0]], 2))
    with pytest.raises(ValueError, match="shape"):
        auc_per_user(np.ones((1, 2)), _csr([[0]], 2), candidates=np.ones((1, 3)))


def test_auc_matches_sklearn_with_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    roc_auc_score = pytest.importorskip("sklearn.metrics").roc_auc_score
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 25
    scores = rng.integers(0, 5, size=(n_users, n_items)).astype(float)  # many ties
    rel_dense = rng.random((n_users, n_items)) < 0.25
    rel_dense[0] = False  # a user without positives
    cand = rng.random((n_users, n_items)) < 0.8
    monkeypatch.setattr(m, "_BLOCK_CELLS", 3 * n_items)  # exercise the user blocks
    full = auc_per_user(scores, sp.csr_matrix(rel_dense))
    masked = auc_per_user(scores, sp.csr_matrix(rel_dense), cand)
    checked = 0
    for u in range(n_users):
        y = rel_dense[u]
        if 0 < y.sum() < n_items:
            assert full[u] == pytest.approx(roc_auc_score(y, scores[u]), abs=1e-12)
            checked += 1
        else:
            assert np.isnan(full[u])
        yc, sc = y[cand[u]], scores[u][cand[u]]
        if 0 < yc.sum() < yc.size:
            assert masked[u] == pytest.approx(roc_auc_score(yc, sc), abs=1e-12)
        else:
            assert np.isnan(masked[u])
    assert checked > 30


def test_global_auc() -> None:
    # positives 0.8, 0.4; negatives 0.4, 0.1: (1 + 1 + 1/2 + 1) / 4
    assert global_auc([0.8, 0.4, 0.4, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert global_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert math.isnan(global_auc([0.1, 0.2], [1, 1]))
    with pytest.raises(ValueError, match="equal length"):
        global_auc([0.1, 0.2], [1])
    roc_auc_score = pytest.importorskip("sklearn.metrics").roc_auc_score
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 10, size=500) / 10.0
    labels = rng.random(500) < 0.3
    assert global_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


# ------------------------------------------------------------------------------ beyond accuracy


def test_diversity_with_embeddings() -> None:
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    ranked = np.array(
        [
            [0, 1, -1],  # orthogonal -> 1
            [0, 3, -1],  # identical direction -> 0
            [0, 1, 2],  # pairs: 1, 1 - 1/sqrt(2), 1 - 1/sqrt(2)
            [2, -1, -1],  # one item -> NaN
            [4, 0, -1],  # zero vector: similarity 0 -> 1
        ]
    )
    _close(
        intra_list_diversity(ranked, 3, item_embeddings=emb),
        [1, 0, (3 - math.sqrt(2)) / 3, NAN, 1],
    )
    # k=2 truncates user 2 to items {0, 1}
    _close(intra_list_diversity(ranked, 2, item_embeddings=emb)[2:3], [1])
    # k=1: no pairs at all
    assert np.isnan(intra_list_diversity(ranked, 1, item_embeddings=emb)).all()


def test_diversity_with_cooccurrence() -> None:
    # item columns: c0 = (1,1,0), c1 = (1,0,1), c2 = (0,1,0), c3 = c0
    x = sp.csr_matrix(np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 0, 0]]))
    # cos(0,1) = 1/(sqrt2 sqrt2) = 1/2, cos(0,2) = 1/sqrt2, cos(1,2) = 0, cos(0,3) = 1
    ranked = np.array([[0, 1, 2], [0, 1, -1], [0, 3, -1]])
    _close(
        intra_list_diversity(ranked, 3, cooccurrence=x),
        [((1 - 1 / 2) + (1 - 1 / math.sqrt(2)) + 1) / 3, 1 / 2, 0],
    )


def test_diversity_blocks_match_naive(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    n_users, n_items, width = 60, 30, 6
    emb = rng.normal(size=(n_items, 4))
    ranked = np.stack([rng.choice(n_items, size=width, replace=False) for _ in range(n_users)])
    ranked[::7, 3:] = -1
    monkeypatch.setattr(m, "_DIVERSITY_BLOCK_ITEMS", 20)  # 3 users per block
    got = intra_list_diversity(ranked, 5, item_embeddings=emb)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for u in range(n_users):
        items = [i for i in ranked[u, :5] if i >= 0]
        dists = [1 - unit[a] @ unit[b] for j, a in enumerate(items) for b in items[j + 1 :]]
        assert got[u] == pytest.approx(np.mean(dists), abs=1e-12)


def test_diversity_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        intra_list_diversity(np.array([[0, 1]]), 2)
    with pytest.raises(ValueError, match="exactly one"):
        intra_list_diversity(
            np.array([[0, 1]]), 2, item_embeddings=np.eye(2), cooccurrence=sp.eye(2)
        )


def test_catalogue_coverage() -> None:
    ranked = np.array([[0, 1], [2, -1]])
    assert catalogue_coverage(ranked, 1, n_items=4) == pytest.approx(2 / 4)  # {0, 2}
    assert catalogue_coverage(ranked, 2, n_items=4) == pytest.approx(3 / 4)  # {0, 1, 2}
    assert catalogue_coverage(np.full((2, 2), -1), 2, n_items=4) == 0.0


def test_novelty_formula() -> None:
    # pop = [3, 1, 0], n_users = 3: -log2((pop + 1) / 4) = [0, 1, 2] bits
    pop = np.array([3, 1, 0])
    ranked = np.array([[0, 1, 2], [2, -1, -1], [-1, -1, -1]])
    _close(novelty(ranked, 3, pop, n_users=3), [(0 + 1 + 2) / 3, 2, NAN])
    _close(novelty(ranked, 2, pop, n_users=3), [(0 + 1) / 2, 2, NAN])
    with pytest.raises(ValueError, match="non-negative"):
        novelty(ranked, 2, np.array([-1, 0, 0]), n_users=3)


def test_average_popularity() -> None:
    pop = np.array([10, 4, 2])
    ranked = np.array([[0, 2, 1], [1, -1, -1], [-1, -1, -1]])
    _close(average_popularity(ranked, 2, pop), [(10 + 2) / 2, 4, NAN])
    _close(average_popularity(ranked, 3, pop), [(10 + 2 + 4) / 3, 4, NAN])


def test_gini_index() -> None:
    # uniform exposure: every item twice
    assert gini_index(np.array([[0, 1], [2, 3], [1, 0], [3, 2]]), 2, n_items=4) == 0.0
    # all exposure on one of 4 items: sorted counts (0, 0, 0, 2),
    # weights 2i - n - 1 = (-3, -1, 1, 3)
    # G = 3 * 2 / (4 * 2) = 3/4 = (n - 1) / n
    assert gini_index(np.array([[0], [0]]), 1, n_items=4) == pytest.approx(0.75)
    # counts item3=3, item2=2, item1=1, item0=0 -> sorted (0, 1, 2, 3):
    # G = (-3*0 - 1*1 + 1*2 + 3*3) / (4 * 6) = 10 / 24
    ranked = np.array([[3, 2, 1], [3, 2, -1], [3, -1, -1]])
    assert gini_index(ranked, 3, n_items=4) == pytest.approx(10 / 24)
    assert math.isnan(gini_index(np.full((2, 2), -1), 2, n_items=4))


def test_gini_matches_mean_absolute_difference() -> None:
    rng = np.random.default_rng(2)
    n_items = 30
    popular = np.arange(n_items, 0, -1.0) ** 2  # skewed exposure
    popular /= popular.sum()
    rows = [rng.choice(n_items, size=5, replace=False, p=popular) for _ in range(40)]
    ranked = np.stack(rows)
    ranked[::4, 3:] = -1
    x = np.bincount(ranked[ranked >= 0], minlength=n_items).astype(float)
    expected = np.abs(x[:, None] - x[None, :]).sum() / (2 * n_items**2 * x.mean())
    assert gini_index(ranked, 5, n_items) == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------------------ docstrings


def test_docstring_examples() -> None:
    result = doctest.testmod(m, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10
    assert result.failed == 0
