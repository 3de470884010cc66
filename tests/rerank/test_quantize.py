"""Dynamic int8 quantisation: a scoring copy close to the float model, which stays untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import hybridrec as hr
from hybridrec.contract import synthetic_dataset
from hybridrec.rerank.backbone import Backbone
from hybridrec.rerank.lm import LMReranker
from hybridrec.rerank.quantize import quantized_copy


def _linear_kinds(model: torch.nn.Module) -> set[str]:
    return {m._get_name() for m in model.modules() if "Linear" in type(m).__name__}


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("head", ["classifier", "verbalizer"])
def test_quantized_copy_scores_close_and_leaves_the_original(
    arch: str, head: str, load_backbone: Callable[[str, str], Backbone], titles: list[str]
) -> None:
    bb = load_backbone(arch, head)
    texts = [
        f"The user liked {a}. Candidate: {b}"
        for a, b in zip(titles[:12], titles[40:52], strict=True)
    ]
    before = bb.score_texts(texts)
    q = quantized_copy(bb)
    assert q is not bb and q.model is not bb.model and q.device.type == "cpu"
    assert "DynamicQuantizedLinear" in _linear_kinds(q.model)
    if arch == "gpt2":  # its Conv1D layers were turned into linear layers, then quantised
        from transformers.pytorch_utils import Conv1D

        assert not any(isinstance(m, Conv1D) for m in q.model.modules())
        assert any(isinstance(m, Conv1D) for m in bb.model.modules())
    assert "DynamicQuantizedLinear" not in _linear_kinds(bb.model)
    np.testing.assert_array_equal(bb.score_texts(texts), before)  # the original is untouched
    after = q.score_texts(texts)
    spread = float(np.ptp(before)) or 1.0
    assert np.abs(after - before).max() < 0.1 * spread + 1e-3
    assert np.corrcoef(before, after)[0, 1] > 0.95


def test_lm_reranker_scores_with_the_int8_copy_and_saves_the_float_model(tmp_path: Path) -> None:
    data = synthetic_dataset()
    training = {"strategy": "lora", "learning_rate": 5e-3, "num_train_epochs": 1.0}
    settings = {"model": "tiny-gpt2", "head": "classifier", "shots": 32, "training": training}
    rr = LMReranker(**settings, quantize="int8").fit(data)
    assert rr.get_params()["quantize"] == "int8"
    scorer = rr._scoring_backbone()
    assert scorer is not rr.backbone_ and "DynamicQuantizedLinear" in _linear_kinds(scorer.model)
    assert "DynamicQuantizedLinear" not in _linear_kinds(rr.backbone_.model)
    users, lists = ["probe-a", "probe-b"], [["a0", "b0", "a5"], ["b1", "a1"]]
    int8 = rr.score_candidates(users, lists)
    rr.quantize, rr._scorer = None, None  # the same reranker, scored in float32
    float32 = rr.score_candidates(users, lists)
    rr.quantize = "int8"
    for a, b in zip(int8, float32, strict=True):
        assert np.abs(a - b).max() < 0.1
    again = hr.load(rr.save(tmp_path / "lm"))
    assert isinstance(again, LMReranker) and again.quantize == "int8"
    for a, b in zip(again.score_candidates(users, lists), int8, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_bad_quantize_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="quantize"):
        LMReranker(quantize="int4")
    with pytest.raises(ValueError, match="CPU"):
        LMReranker(quantize="int8", device="cuda")
