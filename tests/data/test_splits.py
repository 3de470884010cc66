"""Splits: sizes, determinism and no leakage from a user's future."""

from __future__ import annotations

import logging
from pathlib import Path

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


# --------------------------------------------------------------------------- without timestamps
HETREC = Path(__file__).resolve().parent / "fixtures" / "hetrec" / "user_artists.dat"


def _lastfm() -> hr.Dataset:
    """HetRec Last.fm user_artists.dat: no time column, rows sorted by user then artist id."""
    return hr.load_dataset(
        HETREC, format="csv", sep="\t", columns={"user_id": "userID", "item_id": "artistID"}
    )


def test_data_without_timestamps_is_marked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ds = _lastfm()
    assert "user_artists.dat: no timestamp column ('timestamp')" in caplog.text
    assert ds.has_timestamps is False and not ds.is_explicit
    info = ds.info()
    assert info["timestamps"] is False
    assert info["first_timestamp"] is None and info["last_timestamp"] is None
    assert ds.with_interactions(ds.interactions.iloc[:3]).has_timestamps is False
    assert hr.load_dataset("ml-latest-small").has_timestamps  # real times stay real


def test_time_splits_without_timestamps_hold_out_at_random(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ds = _lastfm()
    highest = ds.interactions.groupby("user")["item"].max()  # what "by row order" held out
    with caplog.at_level(logging.WARNING):
        loo = hr.split(ds, "leave-one-out")
    assert loo.notes == "no timestamps: random hold-out (seed 0), not by time"
    assert "random hold-out" in caplog.text
    assert loo.params == {"min_interactions": 3, "hold_out": "random", "seed": 0}
    assert loo.test.n_interactions == 3 and loo.valid.n_interactions == 3
    held = [loo.test.interactions.set_index("user")["item"], highest]
    assert not held[0].equals(held[1])  # not the highest artist id of every user
    # seeded: the same seed gives the same split, another seed another one
    again = hr.split(ds, "leave-one-out")
    pd.testing.assert_frame_equal(loo.test.interactions, again.test.interactions)
    tests = {
        tuple(hr.split(ds, "leave-one-out", seed=s).test.interactions["item"]) for s in range(8)
    }
    assert len(tests) > 1
    # no interaction is lost or duplicated
    parts = pd.concat([loo.train.interactions, loo.valid.interactions, loo.test.interactions])
    assert len(parts.drop_duplicates(["user", "item"])) == ds.n_interactions
    assert loo.train.has_timestamps is False

    temporal = hr.split(ds, "temporal", test_frac=0.2, valid_frac=0.2, seed=3)
    assert temporal.notes == "no timestamps: random hold-out (seed 3), not by time"
    assert temporal.params["hold_out"] == "random" and "test_from" not in temporal.params


def test_time_splits_without_timestamps_can_refuse() -> None:
    ds = _lastfm()
    for protocol in ("leave-one-out", "temporal"):
        with pytest.raises(hr.DataError, match="has no timestamps"):
            hr.split(ds, protocol, on_missing_time="error")
    for data in (ds, hr.load_dataset("ml-latest-small")):  # with or without timestamps
        for protocol in ("leave-one-out", "temporal", "cold-start"):
            with pytest.raises(ValueError, match="on_missing_time must be one of random, error"):
                hr.split(data, protocol, on_missing_time="ignore")
    # cold start draws users at random anyway: the option is accepted there too
    assert hr.split(ds, "cold-start", on_missing_time="error", test_frac=0.3).notes == ""


def test_splits_with_timestamps_have_no_notes(ds: hr.Dataset) -> None:
    for protocol in ("leave-one-out", "temporal", "cold-start"):
        s = hr.split(ds, protocol, on_missing_time="error")
        assert s.notes == "" and "hold_out" not in s.params
