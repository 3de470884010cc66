"""sasrec passes hybridrec's contract, learns a sequential pattern, and handles odd input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hybridrec as hr
from hybridrec.contract import RecommenderContract, synthetic_dataset
from hybridrec.errors import ModelFileError, UnknownIdError
from hybridrec.types import Interaction, UserContext

FAST = {"hidden": 32, "max_len": 8, "patience": 5, "epochs": 150, "lr": 1e-2, "batch_size": 32}
N_CYCLE = 12
#: the contract's fit: a smaller learning rate and more patience than the defaults (tuned for
#: ml-latest-small), so the 32-user data is learnt the same way for every seed (8 of 8 checked)
CONTRACT = {"lr": 1e-3, "patience": 10, "epochs": 100}


def sequential_contract_dataset() -> hr.Dataset:
    """The contract's dataset with each group user's items in a rotated order (user ``u``
    starts at item ``u % 10``); the probes keep items 1..9 in order.

    In the contract's own data every user watches items 0..9 in the same order, so item 0 is
    never anyone's *next* item and item 9 never precedes one: a next-item model has no signal
    for the probe's answer. Rotating the orders keeps every set (and popularity) unchanged.
    """
    base = synthetic_dataset()
    rows, t = [], 1_000_000
    for group, n_users in (("a", 20), ("b", 10)):
        for u in range(n_users):
            for i in range(10):
                t += 1
                rows.append((f"{group}-user{u}", f"{group}{(i + u) % 10}", 5.0, t))
        for i in range(1, 10):
            t += 1
            rows.append((f"probe-{group}", f"{group}{i}", 5.0, t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return hr.Dataset.from_frames(frame, base.items, name="contract")


class TestSASRecContract(RecommenderContract):
    _cache: tuple | None = None

    def make(self) -> hr.Recommender:
        return hr.create("sasrec", **CONTRACT)

    def fitted(self) -> tuple:
        # one default fit for the whole class (each contract test would otherwise refit)
        if TestSASRecContract._cache is None:
            data = sequential_contract_dataset()
            rec = self.make()
            assert rec.fit(data) is rec
            TestSASRecContract._cache = (rec, data)
        return TestSASRecContract._cache


def cycle_dataset(extra_items: tuple[str, ...] = ()) -> hr.Dataset:
    """Users walk a cycle of items ``i0 -> i1 -> ... -> i11 -> i0`` from a random start;
    ``extra_items`` are catalogue items nobody interacted with. User ``solo`` has one item."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        start, length = int(rng.integers(N_CYCLE)), int(rng.integers(4, 9))
        for step in range(length):
            rows.append((f"u{u}", f"i{(start + step) % N_CYCLE}", 4.0, 1000 * u + step))
    rows.append(("solo", "i3", 4.0, 10**6))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(N_CYCLE)] + list(extra_items)})
    return hr.Dataset.from_frames(frame, items, name="cycle")


@pytest.fixture(scope="module")
def cycle() -> tuple[hr.Recommender, hr.Dataset]:
    # without early stopping: the validation NDCG saturates at 1.0 within a few epochs here,
    # before short (1- and 2-item) histories are learnt as well as long ones
    data = cycle_dataset(extra_items=("never",))
    params = {**FAST, "validation": False, "epochs": 40}
    return hr.create("sasrec", **params).fit(data), data


def _context(*items: str) -> UserContext:
    return UserContext(history=tuple(Interaction(i) for i in items))


def test_registered_as_a_plugin() -> None:
    from hybridrec.registry import entries

    assert entries()["sasrec"].source == "plugin:hybridrec-sequential"


def test_learns_the_next_item_and_reads_the_order(cycle) -> None:
    rec, _ = cycle
    # a history never seen in training, in the order given: the same set, two answers
    assert rec.recommend(_context("i3", "i8"), k=1)[0].item_id == "i9"
    assert rec.recommend(_context("i8", "i3"), k=1)[0].item_id == "i4"
    pairs = [(f"i{s}", f"i{(s + 1) % N_CYCLE}") for s in range(N_CYCLE)]
    hits = [rec.recommend(_context(*pair), k=1)[0].item_id == f"i{(s + 2) % N_CYCLE}"
            for s, pair in enumerate(pairs)]  # fmt: skip
    assert sum(hits) >= N_CYCLE - 1
    assert rec.recommend("solo", k=1)[0].item_id == "i4"  # one interaction is enough


def test_known_users_are_answered_from_their_time_order(cycle) -> None:
    rec, data = cycle
    for user in ("u0", "u1", "u2"):
        history = data.history(user)  # oldest first
        last = int(history[-1][1:])
        assert rec.recommend(user, k=1)[0].item_id == f"i{(last + 1) % N_CYCLE}"
        np.testing.assert_array_equal(rec.score_all([user]), rec.score_all([_context(*history)]))


def test_long_histories_keep_the_newest_items(cycle) -> None:
    rec, _ = cycle
    long = [f"i{s % N_CYCLE}" for s in range(30)]  # ends with i5; max_len is 8
    np.testing.assert_allclose(
        rec.score_all([_context(*long)]), rec.score_all([_context(*long[-8:])]), atol=1e-5
    )
    assert rec.recommend(_context(*long), k=1, exclude_seen=False)[0].item_id == "i6"


def test_untrained_items_are_skipped_in_histories_and_rank_last(cycle) -> None:
    rec, _ = cycle
    with_never = _context("i1", "never", "i2")
    np.testing.assert_array_equal(
        rec.score_all([with_never])[:, :N_CYCLE], rec.score_all([_context("i1", "i2")])[:, :N_CYCLE]
    )
    recs = rec.recommend(with_never, k=5)
    assert recs[0].item_id == "i3"
    assert any("1 history item(s)" in note for note in recs[0].notes)
    everything = rec.recommend(_context("i1"), k=N_CYCLE + 1, exclude_seen=False)
    assert everything[-1].item_id == "never"  # every catalogue item can be recommended
    assert everything[-1].score == pytest.approx(everything[-2].score - 1.0)
    only_never = rec.recommend(_context("never"), k=3)  # nothing usable: popularity
    assert [r.item_id for r in only_never] == [
        r.item_id for r in rec.recommend(UserContext(), k=4) if r.item_id != "never"
    ][:3]
    with pytest.raises(UnknownIdError, match="zzz"):  # outside the catalogue: refused
        rec.recommend(_context("i1", "zzz"), k=3)


def test_save_load_gives_identical_scores_and_checks_the_catalogue(cycle, tmp_path: Path) -> None:
    rec, data = cycle
    requests = ["u0", "solo", _context("i7", "i2", "never")]
    again = hr.load(rec.save(tmp_path / "model"))
    np.testing.assert_array_equal(rec.score_all(requests), again.score_all(requests))
    assert again.training_ == rec.training_
    again.check_catalogue(data)
    with pytest.raises(ModelFileError, match="catalogue"):
        again.check_catalogue(cycle_dataset())  # other items: codes would name other items
    with pytest.raises(ModelFileError, match="contract"):
        again.check_catalogue(synthetic_dataset())


def test_early_stopping_keeps_the_best_epoch() -> None:
    rec = hr.create("sasrec", **FAST).fit(cycle_dataset())
    log = rec.training_
    assert log["best_ndcg10"] > 0.9
    assert len(log["epochs"]) == log["best_epoch"] + FAST["patience"] < FAST["epochs"]
    assert max(e["valid_ndcg10"] for e in log["epochs"]) == log["best_ndcg10"]


def test_seeds_fix_the_model() -> None:
    data = cycle_dataset()
    params = {**FAST, "epochs": 3}
    one = hr.create("sasrec", seed=1, **params).fit(data).score_all(["u0"])
    two = hr.create("sasrec", seed=1, **params).fit(data).score_all(["u0"])
    other = hr.create("sasrec", seed=2, **params).fit(data).score_all(["u0"])
    np.testing.assert_array_equal(one, two)
    assert not np.allclose(one, other)


def test_sampled_negatives_and_no_validation() -> None:
    rec = hr.create(
        "sasrec",
        loss="bce",
        negatives=4,
        validation=False,
        epochs=4,
        **{k: v for k, v in FAST.items() if k != "epochs"},
    ).fit(cycle_dataset())
    assert len(rec.training_["epochs"]) == 4 and rec.training_["best_epoch"] == 4
    assert np.isfinite(rec.score_all(["u0"])).all()


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"heads": 3}, ValueError, "divide"),
        ({"loss": "hinge"}, ValueError, "loss must be one of"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"negatives": 0}, ValueError, "negatives"),
        ({"epochs": "5"}, TypeError, "epochs"),
        ({"max_len": 0}, ValueError, "max_len"),
        ({"lr": 0}, ValueError, "lr"),
        ({"validation": "yes"}, TypeError, "validation"),
        ({"device": 0}, TypeError, "device"),
    ],
)
def test_bad_parameters_are_refused(params: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        hr.create("sasrec", **params)


def test_bad_training_data_is_refused() -> None:
    with pytest.raises(TypeError, match="Dataset"):
        hr.create("sasrec").fit("ratings.csv")  # type: ignore[arg-type]
    singles = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 11], "rating": [4.0, 5.0],
                            "timestamp": [1, 2]})  # fmt: skip
    with pytest.raises(ValueError, match="two or more interactions"):
        hr.create("sasrec").fit(hr.Dataset.from_frames(singles))
