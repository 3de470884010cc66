"""The ALS plugin: hybridrec's contract, bad settings, new users, persistence and learning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hybridrec_mf.als import ALSRecommender

import hybridrec as hr
from hybridrec.contract import RecommenderContract, synthetic_dataset
from hybridrec.errors import ModelFileError

SMALL = {"factors": 8, "iterations": 10, "regularization": 0.1, "show_progress": False}


class TestALSContract(RecommenderContract):
    def make(self) -> hr.Recommender:
        return hr.create("als", **SMALL)


class TestALSDefaultsContract(RecommenderContract):
    """The defaults (tuned on ml-latest-small) find the contract's right answers too."""

    def make(self) -> hr.Recommender:
        return hr.create("als", show_progress=False)


@pytest.fixture(scope="module")
def fitted() -> ALSRecommender:
    return hr.create("als", **SMALL).fit(synthetic_dataset())


def test_registered_as_a_plugin() -> None:
    from hybridrec.registry import entries

    assert entries()["als"].source == "plugin:hybridrec-mf"


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"factors": 0}, ValueError, "factors must be at least 1"),
        ({"factors": "8"}, TypeError, "factors must be an integer"),
        ({"regularization": -1.0}, ValueError, "regularization must be at least 0"),
        ({"alpha": 0}, ValueError, "alpha must be above 0"),
        ({"alpha": float("nan")}, ValueError, "alpha must be a finite number"),
        ({"iterations": 0}, ValueError, "iterations must be at least 1"),
        ({"values": "counts"}, ValueError, "values must be one of binary, liked, rating"),
        ({"seed": -1}, ValueError, "seed must be at least 0"),
        ({"use_gpu": "yes"}, TypeError, "use_gpu must be True, False or None"),
        ({"num_threads": 0}, ValueError, "num_threads must be at least 1"),
        ({"show_progress": 1}, TypeError, "show_progress must be True, False or None"),
    ],
)
def test_bad_settings_are_refused(params: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        hr.create("als", **params)


def test_gpu_asked_for_without_one_is_refused() -> None:
    import implicit.gpu

    if implicit.gpu.HAS_CUDA:
        pytest.skip("implicit's GPU build is installed")
    with pytest.raises(RuntimeError, match="no CUDA support"):
        hr.create("als", use_gpu=True, **SMALL).fit(synthetic_dataset())


def test_seeded_fits_are_identical() -> None:
    data = synthetic_dataset()
    a = hr.create("als", seed=3, **SMALL).fit(data)
    b = hr.create("als", seed=3, **SMALL).fit(data)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)


def test_every_catalogue_item_is_recommendable() -> None:
    data = synthetic_dataset()
    extra = pd.DataFrame({"item_id": ["never-seen"], "title": ["Nobody watched this"]})
    items = pd.concat([data.items, extra], ignore_index=True)
    inter = data.interactions.assign(
        user_id=data.user_ids[data.interactions["user"]],
        item_id=data.item_ids[data.interactions["item"]],
    )[["user_id", "item_id", "rating", "timestamp"]]
    ds = hr.Dataset.from_frames(inter, items)
    rec = hr.create("als", **SMALL).fit(ds)
    assert rec.item_factors_.shape == (21, 8)
    assert not rec.item_factors_[-1].any()  # no evidence: zero factors, score 0
    assert "never-seen" in {r.item_id for r in rec.recommend("probe-a", k=21)}


def test_an_unseen_history_gets_solved_factors(fitted: ALSRecommender) -> None:
    scifi = hr.UserContext(history=tuple(hr.Interaction(f"a{i}") for i in range(1, 6)))
    romance = hr.UserContext(history=tuple(hr.Interaction(f"b{i}") for i in range(1, 6)))
    assert fitted.recommend(scifi, k=1)[0].item_id.startswith("a")
    assert fitted.recommend(romance, k=1)[0].item_id.startswith("b")
    # a known user's own training history as a context gives their fitted vector's answer
    # up to the last half-iteration: the same top item
    own = hr.UserContext(history=tuple(hr.Interaction(f"a{i}") for i in range(1, 10)))
    assert fitted.recommend(own, k=1)[0].item_id == fitted.recommend("probe-a", k=1)[0].item_id


def test_save_load_keeps_factors(fitted: ALSRecommender, tmp_path: Path) -> None:
    again = hr.load(fitted.save(tmp_path / "als"))
    np.testing.assert_array_equal(again.item_factors_, fitted.item_factors_)
    ctx = hr.UserContext(history=(hr.Interaction("a2"), hr.Interaction("b5")))
    assert again.recommend(ctx, k=5) == fitted.recommend(ctx, k=5)


def test_a_model_of_another_catalogue_is_refused(fitted: ALSRecommender) -> None:
    other = hr.Dataset.from_frames(
        pd.DataFrame({"user_id": ["u"], "item_id": ["x"], "timestamp": [1]}), name="other"
    )
    with pytest.raises(ModelFileError, match="fitted on the catalogue of 'contract'"):
        fitted.check_catalogue(other)


def test_factors_that_do_not_fit_the_catalogue_are_refused(fitted: ALSRecommender) -> None:
    state = fitted._state()
    state["item_factors"] = state["item_factors"][:5]
    fresh = hr.create("als", **SMALL)
    fresh.item_ids_, fresh.user_ids_ = fitted.item_ids_, fitted.user_ids_
    with pytest.raises(ValueError, match="saved from another catalogue"):
        fresh._load_state(state)


def test_it_learns_on_real_data() -> None:
    """On ml-latest-small, ALS beats popularity on full-ranking hit rate of held-out items."""
    split = hr.split(hr.load_dataset("ml-latest-small"), "leave-one-out")
    test = split.test.interactions
    users, targets = test["user"].to_numpy(), test["item"].to_numpy()
    fit_on = split.train_and_valid

    def hit_rate(rec: hr.Recommender) -> float:
        items, _ = rec.recommend_codes(users, 50)
        return float((items == targets[:, None]).any(axis=1).mean())

    als = hit_rate(hr.create("als", factors=32, iterations=8, show_progress=False).fit(fit_on))
    popularity = hit_rate(hr.create("popularity").fit(fit_on))
    assert als > popularity + 0.05, (als, popularity)
