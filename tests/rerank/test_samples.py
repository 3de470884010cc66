"""Training examples of the reranker: histories strictly before their targets, the rating and
ranking tasks, few-shot sampling, validation users disjoint from training, rendering."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

import hybridrec as hr
from hybridrec.contract import synthetic_dataset
from hybridrec.data.dataset import Dataset
from hybridrec.errors import DataError
from hybridrec.rerank.prompt import PromptBuilder, PromptConfig
from hybridrec.rerank.samples import (
    Examples,
    few_shot,
    ranking_examples,
    rating_examples,
    render_examples,
    split_users,
)
from hybridrec.types import Recommendation, UserContext


def words(text: str) -> int:
    return len(text.split())


def small() -> Dataset:
    """u1: i1@1 (5), i2@2 (2), i3@2 (4), i4@3 (1), i5@4 (5); u2: i2@1 (4), i1@5 (3)."""
    return Dataset.from_frames(
        pd.DataFrame(
            {
                "user_id": ["u1"] * 5 + ["u2"] * 2,
                "item_id": ["i1", "i2", "i3", "i4", "i5", "i2", "i1"],
                "rating": [5.0, 2.0, 4.0, 1.0, 5.0, 4.0, 3.0],
                "timestamp": [1, 2, 2, 3, 4, 1, 5],
            }
        ),
        pd.DataFrame(
            {
                "item_id": ["i1", "i2", "i3", "i4", "i5"],
                "title": ["One", "Two", "Three", "Four", "Five"],
                "genres": [["Drama"], ["Comedy"], [], ["Drama", "War"], ["Horror"]],
            }
        ),
        name="small",
    )


@pytest.fixture(scope="module")
def movielens() -> Dataset:
    return hr.load_dataset("ml-latest-small")


def assert_no_leakage(ex: Examples, *, strict_time: bool) -> None:
    """Every history row belongs to the example's user and comes before its target."""
    inter = ex.dataset.interactions
    users, times = inter["user"].to_numpy(), inter["timestamp"].to_numpy()
    target_time = times[ex.target_row]
    for i in range(len(ex)):
        rows = np.arange(ex.history_start[i], ex.history_stop[i])
        assert (users[rows] == ex.user[i]).all()
        assert (rows < ex.target_row[i]).all()  # earlier in the dataset's (time) order
        if strict_time:
            assert (times[rows] < target_time[i]).all()
        else:
            assert (times[rows] <= target_time[i]).all()
        # and nothing of the user's earlier past is missing from the history
        first = np.searchsorted(users, ex.user[i])
        assert ex.history_start[i] == first


# --------------------------------------------------------------------------- rating task
def test_rating_examples_by_hand() -> None:
    ds = small()
    ex = rating_examples(ds, min_history=1)
    # rows: u1 = 0..4, u2 = 5..6; every row but each user's first has history
    assert ex.target_row.tolist() == [1, 2, 3, 4, 6]
    assert ex.history_stop.tolist() == [1, 2, 3, 4, 6]  # ties in time: by the dataset's order
    assert ex.history_start.tolist() == [0, 0, 0, 0, 5]
    assert ex.label.tolist() == [0, 1, 0, 1, 0]  # rating >= 4
    assert [ds.item_ids[c] for c in ex.item] == ["i2", "i3", "i4", "i5", "i1"]
    assert ex.time.tolist() == [2, 2, 3, 4, 5]
    assert ex.history_rows(1)["item"].tolist() == [0, 1]
    assert_no_leakage(ex, strict_time=False)

    strict = rating_examples(ds, min_history=1, ties="exclude")
    # i3 at t=2 does not see i2 at t=2
    assert strict.target_row.tolist() == [1, 2, 3, 4, 6]
    assert strict.history_stop.tolist() == [1, 1, 3, 4, 6]
    assert_no_leakage(strict, strict_time=True)

    assert rating_examples(ds, min_history=3).target_row.tolist() == [3, 4]
    assert rating_examples(ds, min_history=3, ties="exclude").target_row.tolist() == [3, 4]
    assert rating_examples(ds, min_history=4).target_row.tolist() == [4]


def test_rating_examples_of_a_split_use_its_train() -> None:
    split = hr.split(small(), "leave-one-out", min_interactions=3)
    ex = rating_examples(split, min_history=1)
    assert ex.dataset is split.train
    # u1's train: i1, i2, i3 (i4, i5 held out); u2 (2 rows < 3) stays wholly in train
    assert ex.target_row.tolist() == [1, 2, 4]


def test_rating_task_refuses_implicit_data() -> None:
    implicit = Dataset.from_frames(
        pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "timestamp": [1, 2]}), name="clicks"
    )
    with pytest.raises(DataError, match="'clicks' has no ratings .*ranking_examples"):
        rating_examples(implicit)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="ties"):
        rating_examples(small(), ties="random")
    with pytest.raises(ValueError, match="min_history"):
        rating_examples(small(), min_history=-1)
    with pytest.raises(TypeError, match="Dataset or a Split"):
        rating_examples(pd.DataFrame())


def test_no_leakage_on_movielens(movielens: Dataset) -> None:
    for ties, strict in (("order", False), ("exclude", True)):
        ex = rating_examples(movielens, min_history=10, ties=ties)
        assert len(ex) > 50_000
        assert (ex.history_stop - ex.history_start >= 10).all()
        sample = ex.subset(np.random.default_rng(0).choice(len(ex), 2000, replace=False))
        assert_no_leakage(sample, strict_time=strict)
        # vectorised over all: history ends before the target, in the same user
        inter = movielens.interactions
        users, times = inter["user"].to_numpy(), inter["timestamp"].to_numpy()
        last = ex.history_stop - 1
        assert (last < ex.target_row).all() and (users[last] == ex.user).all()
        if strict:
            assert (times[last] < ex.time).all()


# --------------------------------------------------------------------------- ranking task
class FakeGenerator:
    """A candidate generator that records its requests and answers a fixed list."""

    def __init__(self, answer: Sequence[str]) -> None:
        self.answer = list(answer)
        self.requests: list[UserContext] = []

    def recommend_batch(self, users: Sequence[Any], k: int, **kwargs: Any) -> list[list[Any]]:
        assert kwargs == {"exclude_seen": True, "on_unused": "ignore"}
        self.requests.extend(users)
        out = []
        for user in users:
            seen = set(user.history_ids)
            items = [i for i in self.answer if i not in seen][:k]
            out.append([Recommendation(i, -r, r + 1, "fake") for r, i in enumerate(items)])
        return out


def test_ranking_examples_by_hand() -> None:
    ds = small()
    gen = FakeGenerator(["i5", "i4", "i3", "i2", "i1", "zz"])  # zz: not in the catalogue
    ex = ranking_examples(
        ds, gen, negatives_per_positive=2, min_history=2, max_targets_per_user=None, seed=0
    )
    # liked targets with >= 2 earlier rows: u1's i3 (row 2, 4.0) and i5 (row 4, 5.0)
    assert [c.history_ids for c in gen.requests] == [["i1", "i2"], ["i1", "i2", "i3", "i4"]]
    assert all(c.user_id is None for c in gen.requests)  # anonymous
    assert [h.timestamp for h in gen.requests[0].history] == [1, 2]
    # the user has every item, so no negatives are left
    assert ex.label.tolist() == [1, 1] and ex.target_row.tolist() == [2, 4]

    # u2 has i2 and i1 only: its target i1 (3.0) is not liked; with liked_only=False it is
    gen = FakeGenerator(["i5", "i4", "i3", "i2", "i1"])
    ex = ranking_examples(
        ds,
        gen,
        negatives_per_positive=2,
        n_candidates=2,
        min_history=1,
        liked_only=False,
        max_targets_per_user=None,
        seed=0,
    )
    u2 = ds.user_index("u2")
    mine = ex.subset(ex.user == u2)
    assert mine.label.tolist() == [1, 0, 0]
    assert ds.item_ids[mine.item[0]] == "i1"
    assert sorted(ds.item_ids[mine.item[1:]]) == ["i4", "i5"]  # i3 is 3rd: not in top 2
    assert len(set(mine.group.tolist())) == 1 and (mine.target_row == 6).all()


def test_positive_in_list_keeps_the_generators_whole_list_around_its_target() -> None:
    ds = small()
    # u1's liked targets with >= 2 earlier rows: i3 (history i1 i2) and i5 (history i1..i4)
    gen = FakeGenerator(["i3", "i2", "i4", "i1", "i5"])
    whole = {"negatives_per_positive": None, "n_candidates": 2, "max_targets_per_user": None}
    ex = ranking_examples(ds, gen, min_history=2, positive_in_list=True, **whole)
    # u1 has every other item, so each target's list is the target alone: both kept
    assert ex.target_row.tolist() == [2, 4] and ex.label.tolist() == [1, 1]
    assert [ds.item_ids[i] for i in ex.item] == ["i3", "i5"]
    gen = FakeGenerator(["i4", "i1", "i5", "i3"])
    ex = ranking_examples(ds, gen, min_history=1, liked_only=False, positive_in_list=True, **whole)
    # u2's target i1: the list without u2's other item (i2) starts [i4, i1]: kept, i4 its
    # negative. u1's targets i3, i4, i5 head their lists (u1 has every other item); i2 is not
    # in the generator's list at all: dropped
    assert ex.target_row.tolist() == [2, 3, 4, 6, 6]
    for g in np.unique(ex.group):
        members = ex.subset(ex.group == g)
        assert members.label[0] == 1 and (members.label[1:] == 0).all()
        target = ds.item_ids[members.item[0]]
        own = set(ds.item_ids[ds.user_items(int(members.user[0]))]) - {target}
        top = [i for i in ["i4", "i1", "i5", "i3"] if i not in own][:2]
        assert target in top and sorted(ds.item_ids[members.item]) == sorted(top)
    only_u2 = ranking_examples(ds, gen, min_history=1, liked_only=False, positive_in_list=True,
                               users=[ds.user_index("u2")], **whole)  # fmt: skip
    assert set(only_u2.user.tolist()) == {ds.user_index("u2")}
    assert [ds.item_ids[i] for i in only_u2.item] == ["i1", "i4"]


def test_ranking_negatives_come_from_the_top_list_and_exclude_the_users_items() -> None:
    ds = synthetic_dataset()
    rec = hr.create("popularity").fit(ds)
    ex = ranking_examples(
        ds,
        rec,
        negatives_per_positive=3,
        n_candidates=5,
        min_history=3,
        max_targets_per_user=2,
        seed=3,
    )
    inter = ds.interactions
    assert_no_leakage(ex, strict_time=True)  # one interaction a second in this dataset
    for g in np.unique(ex.group):
        members = ex.subset(ex.group == g)
        assert members.label.tolist() == [1, 0, 0, 0]
        assert members.item[0] == inter["item"].iloc[members.target_row[0]]
        own = set(ds.user_items(int(members.user[0])).tolist())
        negatives = set(members.item[1:].tolist())
        assert not negatives & own and len(negatives) == 3
        # the top 5 of the generator for the history before the target, minus own items
        history = ds.item_ids[ds.user_items(int(members.user[0]))][
            : members.history_stop[0] - members.history_start[0]
        ]
        top = rec.recommend(UserContext(None, tuple(history)), k=20)
        top_codes = [int(ds.item_index([r.item_id])[0]) for r in top]
        assert negatives <= set([c for c in top_codes if c not in own][:5])
    per_user = np.bincount(ex.user[ex.label == 1], minlength=ds.n_users)
    assert per_user.max() == 2
    again = ranking_examples(
        ds,
        rec,
        negatives_per_positive=3,
        n_candidates=5,
        min_history=3,
        max_targets_per_user=2,
        seed=3,
    )
    assert (again.item == ex.item).all() and (again.target_row == ex.target_row).all()


def test_ranking_on_movielens(movielens: Dataset) -> None:
    split = hr.split(movielens, "leave-one-out")
    users = split.train.user_ids[:60]
    train = split.train.with_interactions(
        split.train.interactions[split.train.interactions["user"] < 60]
    )
    rec = hr.create("popularity").fit(train)
    ex = ranking_examples(train, rec, negatives_per_positive=4, min_history=10, seed=0)
    assert len(np.unique(ex.user)) == len(users) and int(ex.label.sum()) == len(users)
    assert (np.bincount(ex.group) == 5).all()
    assert_no_leakage(ex, strict_time=False)


# --------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("n", [16, 64, 256, 1024])
def test_few_shot_is_balanced_seeded_and_distinct(movielens: Dataset, n: int) -> None:
    ex = rating_examples(movielens, min_history=5)
    shot = few_shot(ex, n, seed=7)
    assert len(shot) == n and int(shot.label.sum()) == n - n // 2
    pairs = set(zip(shot.target_row.tolist(), shot.item.tolist(), strict=True))
    assert len(pairs) == n  # no example twice
    again = few_shot(ex, n, seed=7)
    assert (again.target_row == shot.target_row).all()
    assert not (few_shot(ex, n, seed=8).target_row == shot.target_row).all()


def test_few_shot_fills_from_the_other_class_and_refuses_too_many() -> None:
    ex = rating_examples(small(), min_history=1)  # labels 0 1 0 1 0
    shot = few_shot(ex, 4, seed=0)
    assert sorted(shot.label.tolist()) == [0, 0, 1, 1]
    assert sorted(few_shot(ex, 5).label.tolist()) == [0, 0, 0, 1, 1]
    only_neg = ex.subset(ex.label == 0)
    assert few_shot(only_neg, 3).label.tolist() == [0, 0, 0]
    assert len(few_shot(ex, 3, balanced=False)) == 3
    with pytest.raises(ValueError, match="n=6 but only 5"):
        few_shot(ex, 6)


def test_validation_users_are_disjoint(movielens: Dataset) -> None:
    ex = rating_examples(movielens, min_history=5)
    train, valid = split_users(ex, 0.2, seed=1)
    assert set(train.user.tolist()).isdisjoint(valid.user.tolist())
    assert len(train) + len(valid) == len(ex)
    n_users = len(ex.users())
    assert len(valid.users()) == round(0.2 * n_users)
    # and few-shot sampling inside each keeps them apart
    a, b = few_shot(train, 256, seed=0), few_shot(valid, 64, seed=0)
    assert set(a.user.tolist()).isdisjoint(b.user.tolist())
    with pytest.raises(ValueError, match="at least 2 users"):
        split_users(ex.subset(ex.user == ex.user[0]))
    with pytest.raises(ValueError, match="valid_frac"):
        split_users(ex, 1.0)


# --------------------------------------------------------------------------- rendering
def test_render_examples_by_hand() -> None:
    ds = small()
    ex = rating_examples(ds, min_history=2)  # targets: rows 2 (i3), 3 (i4), 4 (i5)
    builder = PromptBuilder(words, PromptConfig(show_mean_rating=True, show_genres=False))
    out = render_examples(ex, builder)
    assert [r.label for r in out] == [1, 0, 1] and [r.index for r in out] == [0, 1, 2]
    first = out[0]
    assert first.prefix.endswith('Liked: "One" rated 5\nDisliked: "Two" rated 2\n')
    # i3's only rating is the target's own: left out, so no mean rating to show
    assert first.suffix == 'Candidate: "Three"\nWill the user like this item? Answer:'
    assert first.text == builder.text([], "Three").replace(
        "Candidate", 'Liked: "One" rated 5\nDisliked: "Two" rated 2\nCandidate'
    )
    # i5 likewise; with leave_out_target=False its own rating shows
    leaky = render_examples(ex, builder, leave_out_target=False)
    assert "mean rating: 5.0 from 1 ratings" in leaky[2].suffix
    assert "mean rating" not in out[2].suffix


def test_render_ranking_examples_share_the_prefix() -> None:
    ds = synthetic_dataset()
    rec = hr.create("popularity").fit(ds)
    ex = ranking_examples(ds, rec, negatives_per_positive=2, min_history=4, seed=0)
    out = render_examples(ex, PromptBuilder(words, PromptConfig(history_items=3)))
    assert len(out) == len(ex)
    for g in np.unique(ex.group)[:5]:
        idx = np.flatnonzero(ex.group == g)
        assert len({out[i].prefix for i in idx}) == 1
        assert [out[i].label for i in idx] == [1, 0, 0]
        assert len({out[i].suffix for i in idx}) == 3
        assert out[idx[0]].prefix.count('"') == 6  # 3 history items, quoted
