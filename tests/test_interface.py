"""The scoring contract, input capabilities and fallbacks, on real data with independent oracles."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hybridrec as hr
from hybridrec.recommender import FALLBACK_STAGE, rank_lists


@pytest.fixture(scope="module")
def split() -> hr.Split:
    return hr.split(hr.load_dataset("ml-latest-small"), "leave-one-out")


@pytest.fixture(scope="module")
def ease(split: hr.Split) -> hr.Recommender:
    return hr.create("ease", l2=500.0).fit(split.train)


def test_dataset_items_carry_the_text_the_models_read(split: hr.Split) -> None:
    ds = split.train
    texts = ds.item_texts()
    for code in (0, 1, 500, ds.n_items - 1):
        item = ds.item(ds.item_ids[code])
        assert item.text == texts[code] and item.text
    assert ds.item("1").text.startswith("Toy Story (1995). Genres: Adventure")


@pytest.mark.parametrize("name", ["ease", "itemknn", "popularity"])
def test_sparse_candidate_path_equals_the_dense_rows(split: hr.Split, ease, name: str) -> None:
    rec = ease if name == "ease" else hr.create(name).fit(split.train)
    users = [str(u) for u in split.train.user_ids[:40]]
    rng = np.random.default_rng(1)
    lists = [list(rng.choice(split.train.item_ids, 25, replace=False)) for _ in users]
    dense = rec.score_all(users)
    codes = {item: i for i, item in enumerate(split.train.item_ids)}
    for row, cands, scores in zip(dense, lists, rec.score_candidates(users, lists), strict=True):
        np.testing.assert_allclose(scores, row[[codes[c] for c in cands]], rtol=1e-5, atol=1e-6)


def test_ease_candidate_scores_equal_history_times_weights(split: hr.Split, ease) -> None:
    # independent oracle: the user's binary history row times the EASE weight columns
    code = split.train.user_index("1")
    hist = np.zeros(split.train.n_items)
    hist[split.train.user_items(code)] = 1.0
    full = np.zeros((split.train.n_items, split.train.n_items), np.float64)
    full[np.ix_(ease.items_, ease.items_)] = ease.weights_
    cands = ["356", "2571", "1", "5"]
    want = hist @ full[:, split.train.item_index(cands)]
    np.testing.assert_allclose(ease.score("1", cands), want, rtol=1e-4, atol=1e-5)


def test_text_for_a_model_that_cannot_read_it_is_reported(split: hr.Split) -> None:
    rec = hr.create("itemknn").fit(split.train)
    ctx = hr.UserContext(preference_text="romantic comedy in Paris")
    with pytest.warns(hr.UnusedInputWarning, match="does not read preference_text"):
        recs = rec.recommend(ctx, k=3)
    assert all(r.stage == FALLBACK_STAGE for r in recs)
    assert all("preference_text ignored" in r.notes[0] for r in recs)
    with pytest.raises(hr.UnusedInputError, match="itemknn"):
        rec.recommend(ctx, k=3, on_unused="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.recommend(ctx, k=3, on_unused="ignore")
    profile_only = hr.UserContext(profile={"age": 30})
    assert rec.unused_inputs(profile_only) == ("profile",)
    assert rec.unused_inputs("1") == ()


def test_rank_lists_breaks_ties_by_code_and_drops_nan() -> None:
    items, scores = rank_lists(
        [np.array([9, 4, 7, 2]), np.array([3])], [np.array([1.0, 1.0, np.nan, 2.0]), [-np.inf]], 3
    )
    assert items.tolist() == [[2, 4, 9], [-1, -1, -1]]
    assert scores[0].tolist() == [2.0, 1.0, 1.0]


def test_score_all_is_only_for_full_scoring(split: hr.Split) -> None:
    rec = hr.create("two-stage", candidates="popularity", n_candidates=5).fit(split.train)
    with pytest.raises(NotImplementedError, match="score_candidates"):
        rec.score_all(["1"])
    assert rec.candidate_source == "top-5 of popularity" and rec.candidate_count == 5


def test_two_stage_is_the_reranker_applied_to_the_source_top_n(split: hr.Split) -> None:
    rec = hr.create("two-stage", candidates="itemknn", n_candidates=15).fit(split.train)
    source = hr.create("itemknn").fit(split.train)
    reranker = hr.create_reranker("similarity").fit(split.train)
    for user in ("1", "42", hr.UserContext(history=("1", "2", "3"))):
        cands = [r.item_id for r in source.recommend(user, k=15)]
        want = reranker.rerank(user, cands, k=10)
        got = rec.recommend(user, k=10)
        assert [r.item_id for r in got] == [r.item_id for r in want]
        np.testing.assert_allclose([r.score for r in got], [r.score for r in want], atol=1e-6)
        assert all(r.stage == "two-stage" for r in got)


def test_reranker_refuses_what_it_cannot_score(split: hr.Split) -> None:
    rr = hr.create_reranker("similarity").fit(split.train)
    with pytest.raises(hr.UnknownIdError, match="nope"):
        rr.rerank("1", [hr.Item("nope")])  # no text and not in the catalogue
    long = hr.Item("long", text="space " * 20_000)  # 120k characters: encoded, cut by the model
    assert np.isfinite(rr.score_candidates(["1"], [[long, "1"]])[0]).all()
    assert rr.rerank("1", []) == []
    with pytest.raises(ValueError, match="k must"):
        rr.rerank("1", ["1"], k=0)


def test_registry_knows_rerankers_apart(tmp_path) -> None:
    assert {"similarity", "lm"} <= set(hr.available_rerankers())
    assert "similarity" not in hr.available() and "lm" not in hr.available()
    with pytest.raises(LookupError, match="unknown reranker 'nope'; known: lm, similarity"):
        hr.create_reranker("nope")


def test_bad_arguments_are_refused_naming_them() -> None:
    from hybridrec.contract import synthetic_dataset

    ds = synthetic_dataset()
    rec = hr.create("popularity").fit(ds)
    cases = [
        (lambda: rec.fit(None), TypeError, "must be a hybridrec Dataset, not NoneType"),
        (lambda: rec.fit(ds.interactions), TypeError, "not DataFrame"),
        (lambda: hr.split(None), TypeError, "must be a hybridrec Dataset"),
        (lambda: hr.split(ds, min_interactions="3"), TypeError, "min_interactions must be an"),
        (lambda: hr.split(ds, "cold-start", seed="x"), TypeError, "seed must be an integer"),
        (lambda: hr.create("itemknn", neighbours="5"), TypeError, "neighbours must be an"),
        (lambda: hr.create("ease", l2=float("nan")), ValueError, "l2 must be a finite number"),
        (lambda: hr.create("random", seed=-1), ValueError, "seed must be at least 0"),
        (lambda: hr.UserContext("u", history="1193"), TypeError, "one-element tuple"),
        (lambda: rec.recommend_codes(np.array([-1]), 3), ValueError, "user codes must be"),
        (lambda: rec.recommend_codes(np.array([10**6]), 3), ValueError, "user codes must be"),
    ]
    for call, error, words in cases:
        with pytest.raises(error, match=words):
            call()


def test_k_beyond_the_catalogue_returns_the_catalogue() -> None:
    from hybridrec.contract import synthetic_dataset

    ds = synthetic_dataset()
    rec = hr.create("itemknn").fit(ds)
    assert len(rec.recommend("probe-a", k=10**9)) == ds.n_items - 9  # no giant allocation
    assert rec.recommend_codes(np.array([0]), 10**9)[0].shape == (1, ds.n_items)


def test_rerank_ranks_a_repeated_candidate_once() -> None:
    from hybridrec.contract import synthetic_dataset

    rr = hr.create_reranker("similarity").fit(synthetic_dataset())
    assert [r.item_id for r in rr.rerank("probe-a", ["b2", "a0", "b2", "a0", "b1"])][0] == "a0"
    assert len(rr.rerank("probe-a", ["b2", "a0", "b2", "a0", "b1"])) == 3


def test_scoring_and_reranking_report_what_they_ignore(split: hr.Split, ease) -> None:
    ctx = hr.UserContext(preference_text="heist films")
    with pytest.warns(hr.UnusedInputWarning, match="ease does not read preference_text"):
        ease.score_pairs([ctx], ["356"])
    with pytest.raises(hr.UnusedInputError):
        ease.score(ctx, ["356"], on_unused="raise")
    rr = hr.create_reranker("similarity").fit(split.train)
    profiled = hr.UserContext(history=("1",), profile={"age": 30})
    with pytest.warns(hr.UnusedInputWarning, match="similarity does not read profile"):
        ranked = rr.rerank(profiled, ["356", "50"])
    assert all("profile ignored" in r.notes[0] for r in ranked)


def test_a_catalogue_item_given_with_its_own_text_is_scored_by_that_text(split: hr.Split) -> None:
    rr = hr.create_reranker("similarity").fit(split.train)
    plain = rr.score("1", ["356"])[0]
    same_text = rr.score("1", [hr.Item("356", text=split.train.item("356").text)])[0]
    other = rr.score("1", [hr.Item("356", text="A documentary about knitting socks")])[0]
    assert same_text == pytest.approx(plain, abs=1e-5)
    assert abs(other - plain) > 1e-3


def test_two_stage_says_when_its_candidates_were_a_fallback() -> None:
    from hybridrec.contract import synthetic_dataset

    two = hr.create("two-stage", candidates="ease", n_candidates=5).fit(synthetic_dataset())
    recs = two.recommend(hr.UserContext(preference_text="space"), k=3)
    assert recs and all("candidates: ease had nothing it can read" in r.notes[0] for r in recs)
    assert all(not r.notes for r in two.recommend("probe-a", k=3))
    assert len(two.recommend("probe-a", k=50)) <= 5  # only its own candidates
