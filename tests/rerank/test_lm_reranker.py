"""The ``lm`` reranker: fit, score, save/load, zero-shot, raw texts, exact shared-prefix scoring,
bad input. The tiny random GPT-2 throughout (the pretrained default is trained in
test_pipeline.py's slow test and checked zero-shot by the contract suite)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import hybridrec as hr
from hybridrec.contract import synthetic_dataset
from hybridrec.errors import DataError, ModelFileError, UnknownIdError
from hybridrec.eval.config import ConfigError
from hybridrec.rerank.lm import LMReranker
from hybridrec.types import Interaction, Item, UserContext

# the tiny random GPT-2 (fast): full fine-tuning at a high learning rate, one epoch
TINY = {
    "model": "tiny-gpt2",
    "head": "classifier",
    "training": {"strategy": "full", "learning_rate": 2e-3, "num_train_epochs": 1.0},
}
FAST = {**TINY, "shots": 32, "valid_frac": None}
LISTS = [["a0", "b0", "a5"], ["b1", "a1"], ["a2"]]
USERS = ["probe-a", "probe-b", "a-user3"]


@pytest.fixture(scope="module")
def data() -> hr.Dataset:
    return synthetic_dataset()


@pytest.fixture(scope="module")
def trained(data: hr.Dataset) -> LMReranker:
    rr = LMReranker(**FAST)
    assert isinstance(rr, LMReranker)
    return rr.fit(data)


@pytest.fixture(scope="module")
def zero_shot(data: hr.Dataset) -> LMReranker:
    return LMReranker(model="tiny-gpt2", head="verbalizer", train=False).fit(data)


def test_registered_with_json_params() -> None:
    rr = LMReranker(training={"strategy": "lora"}, prompt={"history_items": 5})
    assert rr.name == "lm" and rr.training_config().strategy == "lora"
    assert rr.prompt_config().history_items == 5
    import json

    json.dumps(rr.get_params())


def test_bad_settings_name_their_keys() -> None:
    with pytest.raises(ConfigError) as err:
        LMReranker(training={"lerning_rate": 1e-3, "batch_size": 0})
    batch_size, unknown = err.value.problems
    assert batch_size == "training.batch_size: input should be greater than or equal to 1 (got 0)"
    assert unknown.startswith("training.lerning_rate: unknown key; known: strategy, ")
    assert "learning_rate" in unknown
    with pytest.raises(ConfigError, match=r"prompt\.histroy: unknown key; known: history_items"):
        LMReranker(prompt={"histroy": 3})


def test_fit_rerank_save_load_identical(
    trained: LMReranker, data: hr.Dataset, tmp_path: Path
) -> None:
    assert trained.result_ is not None and trained.result_.steps > 0
    ranked = trained.rerank("probe-a", ["b3", "a0", "b4"])
    assert sorted(r.item_id for r in ranked) == ["a0", "b3", "b4"]
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    before = trained.score_candidates(USERS, LISTS)
    folder = trained.save(tmp_path / "lm")
    assert (folder / "lm" / "manifest.json").is_file()
    again = LMReranker.load(folder)
    assert isinstance(again, LMReranker) and again.get_params() == trained.get_params()
    after = again.score_candidates(USERS, LISTS)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert again.prompts("probe-a", ["a0"]) == trained.prompts("probe-a", ["a0"])


def test_zero_shot_verbalizer_needs_no_training(zero_shot: LMReranker, tmp_path: Path) -> None:
    assert zero_shot.result_ is None
    assert zero_shot.backbone_.head == "verbalizer"
    prompt = zero_shot.prompts("probe-a", ["a0"])[0]
    assert prompt.rstrip().endswith("Answer:") and "Yes or No" in prompt
    scores = zero_shot.score_candidates(USERS, LISTS)
    assert all(np.isfinite(s).all() for s in scores)
    folder = zero_shot.save(tmp_path / "zs")
    # nothing was trained: the saved model names its base model instead of copying its weights
    assert not list((folder / "lm").rglob("*.safetensors"))
    again = LMReranker.load(folder)
    for a, b in zip(scores, again.score_candidates(USERS, LISTS), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_raw_text_candidates(trained: LMReranker) -> None:
    outside = Item("new", text="Astronauts pilot a starship to an alien planet")
    retitled = Item("a0", text="A quiet drama about a lighthouse keeper")
    scores = trained.score_candidates(["probe-a"], [["a0", outside, retitled]])[0]
    assert scores.shape == (3,) and np.isfinite(scores).all()
    prompts = trained.prompts("probe-a", ["a0", outside, retitled])
    assert "Astronauts pilot a starship" in prompts[1]
    assert "lighthouse keeper" in prompts[2] and "wormhole" not in prompts[2]
    assert "wormhole" in prompts[0]  # the catalogue's own text of a0
    # an anonymous user described by a history with ratings, and a profile
    ctx = UserContext(history=(Interaction("a1", 5.0), Interaction("b2", 1.0)), profile={"age": 31})
    text = trained.prompts(ctx, [outside])[0]
    assert "Disliked:" in text and "Romance 2" in text.split("Disliked:")[1]
    assert "age: 31" in text
    assert np.isfinite(trained.score_candidates([ctx], [[outside, "b3"]])[0]).all()


@pytest.mark.parametrize("which", ["trained", "zero_shot"])
def test_shared_prefix_equals_naive(which: str, request: pytest.FixtureRequest) -> None:
    rr: LMReranker = request.getfixturevalue(which)
    cands = ["a0", "b0", "a5", "b7", Item("x", text="A heist in a casino")]
    fast = rr.score_candidates(["probe-a"], [cands])[0]
    naive = rr.backbone_.score_texts(rr.prompts("probe-a", cands))
    np.testing.assert_allclose(fast, naive, rtol=0, atol=1e-4)


def test_bad_input(trained: LMReranker, data: hr.Dataset) -> None:
    assert trained.rerank("probe-a", []) == []
    assert [len(s) for s in trained.score_candidates(USERS[:2], [[], ["a0"]])] == [0, 1]
    with pytest.raises(UnknownIdError, match="zzz"):
        trained.rerank("probe-a", ["a0", "zzz"])
    with pytest.raises(UnknownIdError):
        trained.rerank("no-such-user", ["a0"])
    # an Item with blank text stands for its catalogue entry; outside the catalogue it is unknown
    blank = trained.score_candidates(["probe-a"], [[Item("a0", text="  "), "a0"]])[0]
    assert blank[0] == pytest.approx(blank[1], abs=1e-5)
    with pytest.raises(UnknownIdError, match="new"):
        trained.rerank("probe-a", [Item("new", text="")])
    huge = Item("huge", text="space " * 20_000)  # 120k characters
    score = trained.score_candidates(["probe-a"], [[huge, "a0"]])[0]
    assert np.isfinite(score).all()
    prompt = trained.prompts("probe-a", [huge])[0]
    assert len(prompt) < 2_000 and "…" in prompt
    for kwargs, error in (
        ({"head": "regression"}, ValueError),
        ({"task": "clicks"}, ValueError),
        ({"shots": 0}, ValueError),
        ({"item_text": "summary"}, ValueError),
        ({"valid_frac": 1.5}, ValueError),
        ({"training": {"strategy": "magic"}}, ValueError),
        ({"prompt": {"history_items": -1}}, ValueError),
        ({"train": "yes"}, TypeError),
        ({"samples": {"min_history": -5}}, ValueError),  # refused now, not at fit
        ({"samples": {"foo": 1}}, ValueError),
        ({"task": "rating", "samples": {"n_candidates": 5}}, ValueError),  # a ranking key
        ({"samples": {"liked_only": "no"}}, TypeError),
        ({"samples": [("min_history", 1)]}, TypeError),
        ({"model": "/no/such/model/folder"}, ValueError),  # "is not a local folder", no hub
        ({"device": "cuda:0"} if not torch.cuda.is_available() else {"device": "tpu"}, ValueError),
    ):
        with pytest.raises(error):
            LMReranker(**kwargs).fit(data) if "model" in kwargs else LMReranker(**kwargs)
    with pytest.raises(TypeError, match="candidates must be"):  # not 3 one-character ids
        trained.like_probability("probe-a", "a0b")
    with pytest.warns(UserWarning, match="randomly initialised head"):
        LMReranker(head="classifier", train=False)
    implicit = hr.Dataset.from_frames(
        pd.DataFrame(
            {"user_id": [1] * 3 + [2] * 3, "item_id": [1, 2, 3] * 2, "timestamp": range(6)}
        )
    )
    with pytest.raises(DataError, match="no ratings"):  # the rating task needs explicit ratings
        LMReranker(task="rating", samples={"min_history": 1}, **FAST).fit(implicit)


def test_damaged_model_file_is_refused(trained: LMReranker, tmp_path: Path) -> None:
    folder = trained.save(tmp_path / "lm")
    weights = next((folder / "lm").rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelFileError):
        LMReranker.load(folder)
