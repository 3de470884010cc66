"""The ``fused`` candidate source: reciprocal rank fusion checked against the sources' own lists,
weights chosen on validation, bad settings, persistence, and use as the source of ``two-stage``
and ``rerank``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hybridrec as hr
from hybridrec.contract import synthetic_dataset
from hybridrec.errors import ModelFileError
from hybridrec.fused import FusedRecommender, _simplex_grid, normalise_sources
from hybridrec.registry import RegistryError, get


@pytest.fixture(scope="module")
def data() -> hr.Dataset:
    return synthetic_dataset()


@pytest.fixture(scope="module")
def fused(data: hr.Dataset) -> FusedRecommender:
    rec = hr.create("fused", sources=["ease", {"name": "itemknn", "params": {"shrink": 0.0}}],
                    depth=8)  # fmt: skip
    return rec.fit(data)


def rrf_oracle(lists: list[list[str]], weights: list[float], k: float = 60.0) -> dict[str, float]:
    """Weighted RRF from ranked id lists, written out plainly."""
    out: dict[str, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for rank, item in enumerate(ranked, start=1):
            out[item] = out.get(item, 0.0) + weight / (k + rank)
    return out


@pytest.mark.parametrize("user", ["probe-a", "b-user3", "a-user7"])
def test_scores_are_rrf_of_the_sources_lists(fused: FusedRecommender, user: str) -> None:
    lists = [[r.item_id for r in s.recommend(user, k=8)] for s in fused.sources_]
    want = rrf_oracle(lists, [1.0, 1.0])
    items = list(fused.item_ids_)
    got = fused.score(user, items)
    for item, score in zip(items, got, strict=True):
        assert score == pytest.approx(want.get(item, 0.0), abs=1e-12)
    # the fused top list is the oracle's order (ties by item code)
    recs = fused.recommend(user, k=len(want))
    order = sorted(want, key=lambda i: (-want[i], items.index(i)))
    assert [r.item_id for r in recs] == order


def test_an_unseen_history_is_fused_too(fused: FusedRecommender) -> None:
    ctx = hr.UserContext(history=(hr.Interaction("b1"), hr.Interaction("b2")))
    lists = [[r.item_id for r in s.recommend(ctx, k=8)] for s in fused.sources_]
    want = rrf_oracle(lists, [1.0, 1.0])
    got = {r.item_id: r.score for r in fused.recommend(ctx, k=5)}
    assert all(got[i] == pytest.approx(want[i]) for i in got)
    assert next(iter(got)).startswith("b")


def test_the_fused_top_list_holds_every_sources_top_list(data: hr.Dataset) -> None:
    rec = hr.create("fused", sources=["ease", "popularity"], depth=3).fit(data)
    for user in ("probe-a", "a-user1", "b-user2"):
        top = {r.item_id for r in rec.recommend(user, k=6)}
        for source in rec.sources_:
            assert {r.item_id for r in source.recommend(user, k=3)} <= top


def test_given_weights_are_used(data: hr.Dataset) -> None:
    only_pop = hr.create("fused", sources=["ease", "popularity"], weights=[0, 1], depth=20)
    only_pop.fit(data)
    pop = hr.create("popularity").fit(data)
    for user in ("probe-a", "b-user0"):
        assert [r.item_id for r in only_pop.recommend(user, k=5)] == [
            r.item_id for r in pop.recommend(user, k=5)
        ]


def taste_data(seed: int = 0) -> hr.Dataset:
    """Three taste groups of 40 users over 30 items, each user's last items inside the group."""
    rng = np.random.default_rng(seed)
    rows, t = [], 0
    for group in range(3):
        for u in range(40):
            for item in rng.choice(10, size=6, replace=False):
                t += 1
                rows.append((f"u{group}-{u}", f"i{group * 10 + item}", t))
    return hr.Dataset.from_frames(
        pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), name="tastes"
    )


def test_weights_are_chosen_on_validation(caplog: pytest.LogCaptureFixture) -> None:
    data = taste_data()
    rec = hr.create("fused", sources=["itemknn", "random"], method="weights", depth=10,
                    tune_k=5)  # fmt: skip
    with caplog.at_level("INFO", logger="hybridrec.fused"):
        rec.fit(data)
    assert rec.weights_.sum() == pytest.approx(1.0)
    assert rec.weights_[0] > rec.weights_[1]  # the personalised source earns the weight
    assert "chosen on" in caplog.text
    # the sources are refitted on all the training data
    assert all(s.seen_.nnz == data.n_interactions for s in rec.sources_)


def test_simplex_grid() -> None:
    grid = _simplex_grid(3, 10)
    assert len(grid) == 66 and all(w.sum() == pytest.approx(1.0) for w in grid)
    assert len(_simplex_grid(2, 10)) == 11


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"sources": []}, ValueError, "at least one"),
        ({"sources": "ease"}, TypeError, "list of recommender names"),
        ({"sources": [3]}, TypeError, r"sources\[0\]"),
        ({"sources": [{"params": {}}]}, ValueError, "'name' string"),
        ({"sources": [{"name": "ease", "extra": 1}]}, ValueError, "'name' string"),
        ({"sources": ["no-such"]}, RegistryError, "unknown recommender 'no-such'"),
        ({"method": "mean"}, ValueError, "method must be one of rrf, weights"),
        ({"depth": 0}, ValueError, "depth must be at least 1"),
        ({"rrf_k": -1}, ValueError, "rrf_k must be at least 0"),
        ({"weights": [1.0]}, ValueError, "one per source"),
        ({"weights": [0, 0]}, ValueError, "not all 0"),
        ({"weights": [1, -1]}, ValueError, r"weights\[1\]"),
        ({"tune_k": 0}, ValueError, "tune_k must be at least 1"),
    ],
)
def test_bad_settings_are_refused(params: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        hr.create("fused", **params)


def test_source_settings_are_normalised() -> None:
    assert normalise_sources(("ease",)) == [{"name": "ease", "params": {}}]
    rec = hr.create("fused", sources=["ease", {"name": "embedding"}])
    assert rec.uses == get("embedding").uses  # what any source reads


def test_save_load_keeps_sources_and_weights(fused: FusedRecommender, tmp_path: Path) -> None:
    folder = fused.save(tmp_path / "fused")
    assert sorted(p.name for p in (folder / "sources").iterdir()) == ["0-ease", "1-itemknn"]
    again = hr.load(folder)
    assert isinstance(again, FusedRecommender) and again.sources == fused.sources
    np.testing.assert_array_equal(again.weights_, fused.weights_)
    users = ["probe-a", "b-user1", hr.UserContext(history=(hr.Interaction("a3"),))]
    assert again.recommend_batch(users, k=6) == fused.recommend_batch(users, k=6)


def test_a_source_from_another_catalogue_is_refused(
    fused: FusedRecommender, tmp_path: Path
) -> None:
    other = hr.create("fused", sources=["ease", "itemknn"], depth=8).fit(taste_data())
    other.save(tmp_path / "other")
    folder = fused.save(tmp_path / "fused")
    # swap a saved source for one of another catalogue: the fused model's manifest lists every
    # file with its checksum, so the folder no longer matches what was saved
    source = folder / "sources" / "0-ease" / "state.npz"
    source.write_bytes((tmp_path / "other" / "sources" / "0-ease" / "state.npz").read_bytes())
    with pytest.raises(ModelFileError):
        hr.load(folder)


def test_two_stage_takes_it_as_candidate_source(data: hr.Dataset) -> None:
    rec = hr.create("two-stage", candidates="fused", n_candidates=5,
                    candidates_params={"sources": ["ease", "popularity"], "depth": 10},
                    reranker="similarity")  # fmt: skip
    rec.fit(data)
    assert rec.candidate_source == "top-5 of fused"
    top5 = {r.item_id for r in rec.source_.recommend("probe-a", k=5)}
    assert {r.item_id for r in rec.recommend("probe-a", k=5)} == top5


def test_rerank_takes_it_as_candidate_source(data: hr.Dataset, tmp_path: Path) -> None:
    rec = hr.create(
        "rerank",
        candidates="fused",
        n_candidates=6,
        candidates_params={"sources": ["ease", "itemknn"], "depth": 10},
        reranker_params={"model": "tiny-gpt2", "train": False, "item_text": "title"},
    ).fit(data)
    assert isinstance(rec.source_, FusedRecommender)
    top6 = {r.item_id for r in rec.source_.recommend("probe-a", k=6)}
    recs = rec.recommend("probe-a", k=6)
    assert {r.item_id for r in recs} == top6
    again = hr.load(rec.save(tmp_path / "rerank"))
    assert [r.item_id for r in again.recommend("probe-a", k=6)] == [r.item_id for r in recs]
