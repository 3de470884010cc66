"""Protocols for stages that do not score the whole catalogue, read text, or are calibrated."""

from __future__ import annotations

import numpy as np
import pytest

import hybridrec as hr
from hybridrec.eval.protocols import ColdStart, FullRanking, PairwiseAUC
from hybridrec.recommender import FALLBACK_STAGE


@pytest.fixture(scope="module")
def ds() -> hr.Dataset:
    return hr.load_dataset("ml-latest-small")


def test_pairwise_auc_per_user_and_calibration(ds: hr.Dataset) -> None:
    from sklearn.metrics import roc_auc_score

    proto = PairwiseAUC(ds, history_len=10, pairs_per_user=10, seed=0, users=None, k=(10,))
    rec = hr.create("itemknn").fit(proto.fit_data)
    ev = proto.evaluate(rec)
    raw = proto._scores(rec, proto.test_pairs, False, "test")
    labels = proto.test_pairs["label"].to_numpy()
    users = proto.test_pairs["user"].to_numpy()
    # calibration is a monotone map of the score: the global AUC is the raw one (or 1 - it)
    raw_auc = roc_auc_score(labels, raw)
    assert ev.scalars["auc"] == pytest.approx(max(raw_auc, 1 - raw_auc), abs=1e-9)
    # per-user AUC against sklearn, user by user (only users with both classes)
    per_user = ev.per_user["auc_user"]
    assert len(per_user) == len(np.unique(users))
    for row, user in enumerate(np.unique(users)):
        y = labels[users == user]
        if 0 < y.sum() < len(y):
            assert per_user[row] == pytest.approx(roc_auc_score(y, ev.pairwise[0][users == user]))
        else:
            assert np.isnan(per_user[row])
    base_rate = labels.mean()
    constant = -np.mean(labels * np.log(base_rate) + (1 - labels) * np.log(1 - base_rate))
    baselines = proto.rating_baselines()
    assert baselines["item+user-mean-lr"].scalars["logloss"] < constant  # it learned something
    assert set(baselines["item-mean-rating"].per_user) == {"auc_user"}


def test_full_ranking_of_a_candidate_list_recommender(ds: hr.Dataset) -> None:
    proto = FullRanking(ds, seed=0, users=80, k=(10,))
    n = 30
    rec = hr.create("two-stage", candidates="popularity", n_candidates=n).fit(proto.fit_data)
    ev = proto.evaluate(rec)
    assert ev.candidates == f"top-{n} of popularity"
    # oracle: the test item is in the list iff it is among the top-n unseen by popularity
    pop = hr.create("popularity").fit(proto.fit_data)
    tops = pop.recommend_codes(proto.users, n)[0]
    test_items = proto.relevant.tocsr()
    want = np.array([test_items[r].indices[0] in tops[r] for r in range(len(proto.users))])
    np.testing.assert_array_equal(ev.per_user["candidate_recall"], want.astype(float))
    assert np.isnan(ev.per_user["auc"][~want]).all()
    assert not np.isnan(ev.per_user["auc"][want]).any()
    assert (ev.per_user["hr@10"][~want] == 0).all()


def test_cold_start_text_variant(ds: hr.Dataset) -> None:
    common = {"frac": 0.1, "seed": 0, "users": None, "k": (10,)}
    plain = ColdStart(ds, with_text=False, **common)
    text = ColdStart(ds, with_text=True, **common)
    np.testing.assert_array_equal(plain.users, text.users)
    assert (plain.relevant != text.relevant).nnz == 0
    assert all(t is None for t in plain.texts) and all(text.texts)
    titles = set(ds.items["title_clean"])
    assert not any(title in t for t in text.texts for title in titles if len(title) > 12)
    assert text.texts[0].startswith("I enjoy ")
    # the seed items are not relevant, everything liked after them is
    user = int(text.users[0])
    liked = ds.user_rows(user)
    liked = liked[liked["rating"] >= ds.like_threshold]["item"].to_numpy()
    assert set(text.relevant[0].indices) == set(liked[3:])

    ease = hr.create("itemknn").fit(plain.fit_data)
    assert plain.evaluate(ease).fallback_share == 1.0
    assert text.evaluate(ease).fallback_share == 1.0
    emb = hr.create("embedding").fit(text.fit_data)
    ev = text.evaluate(emb)
    assert ev.fallback_share == 0.0
    pop = text.evaluate(hr.create("popularity").fit(text.fit_data))
    assert not np.array_equal(ev.per_user["ndcg@10"], pop.per_user["ndcg@10"])
    recs = emb.recommend(hr.UserContext(preference_text=text.texts[0]), k=3)
    assert {r.stage for r in recs} == {"embedding"} != {FALLBACK_STAGE}


def test_data_without_timestamps_is_said_in_every_protocol() -> None:
    import pandas as pd

    from hybridrec.eval.config import BenchConfig
    from hybridrec.eval.protocols import build_protocols

    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", float(rng.integers(1, 6))) for u in range(40) for i in range(12)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(12)], "genres": [["Drama"]] * 12})
    ds = hr.Dataset.from_frames(frame, items, name="no-time")
    assert not ds.has_timestamps
    protocols, skipped = build_protocols(ds, BenchConfig(users=None, k=(5,)), seed=0)
    assert {p.name for p in protocols} >= {"full-ranking", "sampled-random", "pairwise-auc"}
    for proto in protocols:
        assert proto.description.startswith("NOTE: no timestamps"), proto.name
