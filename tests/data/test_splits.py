"""Splits: sizes, determinism and no leakage from a user's future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hybridrec as hr


@pytest.fixture
def ds() -> hr.Dataset:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        n = int(rng.integers(1, 15))
        items = rng.choice(60, size=n, replace=False)
        times = rng.integers(0, 1000, size=n)
        times[: n // 3] = times[0]  # some ties in time
        rows += [
            (u, int(i), float(rng.integers(1, 6)), int(t))
            for i, t in zip(items, times, strict=True)
        ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return hr.Dataset.from_frames(frame)


def _per_user(d: hr.Dataset, how: str) -> pd.Series:
    return d.interactions.groupby("user")["timestamp"].agg(how)


def test_leave_one_out_sizes_and_no_leakage(ds: hr.Dataset) -> None:
    s = hr.split(ds, "leave-one-out")
    counts = np.bincount(ds.interactions["user"], minlength=ds.n_users)
    eligible = int((counts >= 3).sum())
    assert s.test.n_interactions == s.valid.n_interactions == eligible
    total = s.train.n_interactions + s.valid.n_interactions + s.test.n_interactions
    assert total == ds.n_interactions
    train_max = _per_user(s.train, "max")
    valid_t = _per_user(s.valid, "max")
    test_t = _per_user(s.test, "max")
    users = valid_t.index
    assert (train_max.reindex(users) <= valid_t).all()
    assert (valid_t <= test_t.reindex(users)).all()
    # users with fewer than 3 interactions stay wholly in training
    short = np.flatnonzero((counts > 0) & (counts < 3))
    assert set(short) <= set(s.train.interactions["user"])
    assert not set(short) & set(s.test.interactions["user"])


def test_leave_one_out_is_deterministic_with_ties(ds: hr.Dataset) -> None:
    a, b = hr.split(ds, "leave-one-out"), hr.split(ds, "leave-one-out")
    pd.testing.assert_frame_equal(a.test.interactions, b.test.interactions)


def test_train_and_valid_merges(ds: hr.Dataset) -> None:
    s = hr.split(ds, "leave-one-out")
    assert s.train_and_valid.n_interactions == s.train.n_interactions + s.valid.n_interactions


def test_temporal_cuts_at_global_times(ds: hr.Dataset) -> None:
    s = hr.split(ds, "temporal", valid_frac=0.1, test_frac=0.2)
    assert s.train.interactions["timestamp"].max() < s.params["valid_from"]
    if s.valid.n_interactions:
        assert s.valid.interactions["timestamp"].min() >= s.params["valid_from"]
        assert s.valid.interactions["timestamp"].max() < s.params["test_from"]
    assert s.test.interactions["timestamp"].min() >= s.params["test_from"]
    train_users = set(s.train.interactions["user"])
    assert set(s.test.interactions["user"]) <= train_users


def test_cold_start_holds_users_out_entirely(ds: hr.Dataset) -> None:
    s = hr.split(ds, "cold-start", test_frac=0.25, valid_frac=0.1, seed=3)
    train_u = set(s.train.interactions["user"])
    test_u = set(s.test.interactions["user"])
    valid_u = set(s.valid.interactions["user"])
    assert test_u and not train_u & test_u and not valid_u & test_u and not train_u & valid_u
    assert len(test_u) == 10
    again = hr.split(ds, "cold-start", test_frac=0.25, valid_frac=0.1, seed=3)
    assert set(again.test.interactions["user"]) == test_u


def test_bad_protocol_and_fractions(ds: hr.Dataset) -> None:
    with pytest.raises(ValueError, match="unknown split protocol 'x'"):
        hr.split(ds, "x")
    with pytest.raises(ValueError):
        hr.split(ds, "temporal", test_frac=0.0)
    with pytest.raises(ValueError):
        hr.split(ds, "leave-one-out", min_interactions=2)
