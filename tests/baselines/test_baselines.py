"""Baselines against hand-computed values and an independent EASE computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hybridrec as hr
from hybridrec.baselines.ease import CatalogueTooLargeError


def _ds(rows: list[tuple]) -> hr.Dataset:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return hr.Dataset.from_frames(frame)


@pytest.fixture
def tiny() -> hr.Dataset:
    # u0: i0 i1 | u1: i0 i1 i2 | u2: i2
    return _ds(
        [
            ("u0", "i0", 5, 1),
            ("u0", "i1", 2, 2),
            ("u1", "i0", 4, 3),
            ("u1", "i1", 4, 4),
            ("u1", "i2", 5, 5),
            ("u2", "i2", 3, 6),
        ]
    )


def test_popularity_counts_and_liked_only(tiny: hr.Dataset) -> None:
    rec = hr.create("popularity").fit(tiny)
    assert rec.counts_.tolist() == [2, 2, 2]
    liked = hr.create("popularity", liked_only=True).fit(tiny)
    assert liked.counts_.tolist() == [2, 1, 1]  # i1 liked once (u1), i2 once (u1)
    assert liked.recommend(hr.UserContext(), k=1)[0].item_id == "i0"


def test_itemknn_similarity_by_hand(tiny: hr.Dataset) -> None:
    # |U_i| = 2 for every item; co(0,1)=2, co(0,2)=1, co(1,2)=1
    # shrink 0: sim(0,1) = 2/(√2·√2) = 1, sim(0,2) = sim(1,2) = 1/2
    rec = hr.create("itemknn", neighbours=2, shrink=0.0).fit(tiny)
    expected = np.array([[0, 1, 0.5], [1, 0, 0.5], [0.5, 0.5, 0]])
    assert np.allclose(rec.similarity_.toarray(), expected)
    # shrink 1: 2/(2+1) and 1/(2+1)
    shrunk = hr.create("itemknn", neighbours=2, shrink=1.0).fit(tiny)
    assert np.isclose(shrunk.similarity_[0, 1], 2 / 3)
    assert np.isclose(shrunk.similarity_[0, 2], 1 / 3)
    # u2 has seen i2: score(i0) = sim(2,0) = 0.5 = score(i1); the tie goes to the lower code
    recs = rec.recommend("u2", k=2)
    assert [r.item_id for r in recs] == ["i0", "i1"]
    assert [r.score for r in recs] == pytest.approx([0.5, 0.5])


def test_itemknn_keeps_only_the_nearest_neighbours(tiny: hr.Dataset) -> None:
    rec = hr.create("itemknn", neighbours=1, shrink=0.0).fit(tiny)
    sim = rec.similarity_.toarray()
    assert (sim > 0).sum(axis=1).tolist() == [1, 1, 1]
    assert sim[0, 1] == pytest.approx(1.0) and sim[1, 0] == pytest.approx(1.0)


def test_ease_equals_per_column_ridge_regression() -> None:
    # EASE's constraint diag(B) = 0 makes column j a ridge regression of X_j on the other
    # columns: B[-j, j] = (X_-jᵀ X_-j + λI)⁻¹ X_-jᵀ X_j. Computed here independently.
    rng = np.random.default_rng(0)
    x = (rng.random((40, 8)) < 0.35).astype(float)
    x[0, :] = 1  # every item has at least one interaction
    users, items = np.nonzero(x)
    ds = _ds(
        [(f"u{u}", f"i{i}", 5.0, k) for k, (u, i) in enumerate(zip(users, items, strict=True))]
    )
    lam = 3.0
    rec = hr.create("ease", l2=lam).fit(ds)
    b = np.zeros((8, 8))
    b[np.ix_(rec.items_, rec.items_)] = rec.weights_
    # the dataset orders items by first appearance; map back to the column order of x
    order = [int(i[1:]) for i in ds.item_ids]
    ref = np.zeros((8, 8))
    for j in range(8):
        others = [c for c in range(8) if c != j]
        xo = x[:, others]
        ref[others, j] = np.linalg.solve(xo.T @ xo + lam * np.eye(7), xo.T @ x[:, j])
    ref = ref[np.ix_(order, order)]
    assert np.allclose(b, ref, atol=1e-4)


def test_ease_refuses_a_catalogue_above_its_limit(tiny: hr.Dataset) -> None:
    with pytest.raises(CatalogueTooLargeError, match="3 x 3 matrix.*max_items=2"):
        hr.create("ease", max_items=2).fit(tiny)


def test_random_is_reproducible_per_seed(tiny: hr.Dataset) -> None:
    a = hr.create("random", seed=1).fit(tiny).recommend("u0", k=3, exclude_seen=False)
    b = hr.create("random", seed=1).fit(tiny).recommend("u0", k=3, exclude_seen=False)
    assert a == b
    orders = {
        tuple(
            r.item_id
            for r in hr.create("random", seed=s).fit(tiny).recommend("u0", k=3, exclude_seen=False)
        )
        for s in range(20)
    }
    assert len(orders) > 1


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        hr.create("itemknn", neighbours=0)
    with pytest.raises(ValueError):
        hr.create("ease", l2=0)


def test_fit_on_no_interactions_is_an_error(tiny: hr.Dataset) -> None:
    empty = tiny.with_interactions(tiny.interactions.iloc[:0])
    with pytest.raises(ValueError, match="no interactions"):
        hr.create("popularity").fit(empty)
