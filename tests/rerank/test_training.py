"""Fine-tuning with the Trainer (every freezing strategy), saving and loading fine-tuned models.

The toy task is learnable by the tiny random models in a few epochs: a text says that
something "was good" (label 1) or "was bad" (label 0), amid random other words.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from hybridrec.errors import ModelFileError, OutputPathError
from hybridrec.rerank import peft_setup
from hybridrec.rerank.backbone import Backbone
from hybridrec.rerank.training import (
    TrainingConfig,
    fine_tune,
    load_fine_tuned,
    save_fine_tuned,
)

pytest.importorskip("peft")

SUBJECTS = ["film", "movie", "story", "plot", "actor", "scene", "music", "ending", "cast", "script"]


def toy(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        word = "good" if label else "bad"
        out.append((f"The {rng.choice(SUBJECTS)} was {word} and {rng.choice(SUBJECTS)}.", label))
    return out


TRAIN, VALID = toy(48, 0), toy(24, 1)
TEXTS = [t for t, _ in VALID[:6]]

#: settings that learn the toy task in a few epochs
FAST = {"num_train_epochs": 4.0, "batch_size": 8, "lora_dropout": 0.0, "early_stopping_patience": 4}
LR = {"full": 1e-3, "top": 1e-3, "lora": 1e-2, "adalora": 1e-2, "ia3": 1e-2}


@pytest.fixture(autouse=True)
def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


@pytest.fixture
def fresh(tiny_dirs: dict[str, Path]) -> Callable[..., Backbone]:
    """``fresh(arch="gpt2", head="classifier")``: a backbone of its own (training changes it)."""

    def load(arch: str = "gpt2", head: str = "classifier") -> Backbone:
        return Backbone.load(str(tiny_dirs[arch]), head, seed=0, device="cpu")

    return load


def config(strategy: str, **kw: object) -> TrainingConfig:
    return TrainingConfig(strategy=strategy, learning_rate=LR[strategy], **{**FAST, **kw})


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def auc(backbone: Backbone, examples: list[tuple[str, int]]) -> float:
    scores = backbone.score_texts([t for t, _ in examples])
    return float(roc_auc_score([y for _, y in examples], scores))


# --------------------------------------------------------------------------- learning
@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_loss_falls_and_validation_auc_is_high(fresh, strategy):
    bb = fresh()
    result = fine_tune(bb, TRAIN, VALID, config(strategy, num_train_epochs=6.0))
    losses = [row["loss"] for row in result.history]
    assert len(losses) >= 3
    assert losses[-1] < losses[0] - 0.1
    assert result.best_auc is not None and result.best_auc > 0.9
    assert result.train_samples_per_second > 0
    # the kept weights are the best epoch's: scoring the validation set gives its AUC
    assert auc(bb, VALID) == pytest.approx(result.best_auc, abs=1e-6)
    assert not bb.model.training


def test_top_trains_only_the_top_blocks_and_the_head(fresh):
    bb = fresh()
    peft_setup.freeze_top(bb, 1)
    names = peft_setup.trainable_names(bb.model)
    top = ("transformer.h.1.", "transformer.ln_f.", "score.")
    assert names and all(n.startswith(top) for n in names)
    assert "score.weight" in names
    before = weights(bb.model)
    result = fine_tune(bb, TRAIN, VALID, config("top", top_n=1))
    after = weights(bb.model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and changed <= set(names)
    assert "transformer.h.0.attn.c_attn.weight" not in changed
    assert "transformer.h.1.attn.c_attn.weight" in changed
    assert result.best_auc > 0.8


def test_top_finds_llama_layers_and_checks_n(fresh):
    bb = fresh("llama")
    assert peft_setup.transformer_blocks(bb) is bb.decoder.layers
    with pytest.raises(ValueError, match="top_n must be between 1 and 2"):
        peft_setup.freeze_top(bb, 3)


def test_full_trains_everything(fresh):
    bb = fresh()
    peft_setup.apply_strategy(bb, "full")
    assert all(p.requires_grad for p in bb.model.parameters())


def test_lora_classifier_head_is_trainable_and_saved(fresh):
    bb = fresh()
    peft_setup.apply_strategy(bb, "lora", r=4)
    cfg = bb.model.peft_config["default"]
    assert set(cfg.target_modules) == {"c_attn"} and "score" in cfg.modules_to_save
    names = peft_setup.trainable_names(bb.model)
    assert any("lora_A" in n for n in names)
    assert any("score" in n for n in names)
    assert not any("c_attn.base_layer" in n or "wte" in n for n in names)


def test_lora_verbalizer_keeps_the_lm_head_frozen(fresh):
    bb = fresh(head="verbalizer")
    head_before = bb.model.get_output_embeddings().weight.detach().clone()
    fine_tune(bb, TRAIN, VALID, config("lora", num_train_epochs=1.0))
    base = bb.model.get_base_model()
    assert not base.get_output_embeddings().weight.requires_grad
    assert torch.equal(base.get_output_embeddings().weight, head_before)
    assert all("lora_" in n for n in peft_setup.trainable_names(bb.model))


def test_ia3_trains_its_vectors_only(fresh):
    bb = fresh()
    before = weights(bb.model)
    result = fine_tune(bb, TRAIN, VALID, config("ia3", num_train_epochs=2.0))
    names = peft_setup.trainable_names(bb.model)
    assert any("ia3_l" in n for n in names) and any("score" in n for n in names)
    base = bb.model.get_base_model()
    for name, old in before.items():  # every base weight unchanged (the head has a trained copy)
        if not name.startswith("score"):
            module, leaf = name.rsplit(".", 1)
            params = dict(base.named_parameters())
            new = params.get(name, params.get(f"{module}.base_layer.{leaf}"))
            assert new is not None and torch.equal(old, new), name
    ia3 = [p for n, p in bb.model.named_parameters() if "ia3_l" in n]
    assert any(not torch.allclose(p, torch.ones_like(p)) for p in ia3)  # they moved from 1
    assert len(result.history) == 2


def test_adalora_rank_budget_moves_during_training(fresh):
    bb = fresh()
    cfg = config("adalora", adalora_init_r=4, adalora_target_r=1, adalora_tfinal=2)
    result = fine_tune(bb, TRAIN, VALID, cfg)
    ranks = result.adalora_ranks
    blocks = len(peft_setup.transformer_blocks(bb))
    assert ranks[0] == 4 * blocks  # every initial rank in use at the start
    assert ranks[-1] == 1 * blocks  # the target budget at the end
    assert len(set(ranks)) > 2  # it fell step by step
    assert peft_setup.active_ranks(bb.model) == ranks[-1]
    tuner = peft_setup.adalora_tuner(bb.model)
    assert tuner.peft_config["default"].total_step == result.steps
    # pruned ranks are exactly zero in lora_E
    for name, p in bb.model.named_parameters():
        if "lora_E" in name:
            assert int((p != 0).sum()) <= 4


def test_adalora_refuses_tinit_tfinal_beyond_the_steps(fresh):
    with pytest.raises(ValueError, match="adalora_tinit"):
        fine_tune(fresh(), TRAIN, None, config("adalora", adalora_tinit=10, adalora_tfinal=20))


def test_tiny_llama_lora_learns_and_reloads(fresh, tmp_path):
    bb = fresh("llama")
    result = fine_tune(bb, TRAIN, VALID, config("lora"))
    assert set(bb.model.peft_config["default"].target_modules) == {"q_proj", "v_proj"}
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.best_auc > 0.8
    loaded = load_fine_tuned(save_fine_tuned(bb, tmp_path / "m"), device="cpu")
    assert np.abs(loaded.score_texts(TEXTS) - bb.score_texts(TEXTS)).max() < 1e-5


def test_without_validation_trains_all_epochs(fresh):
    result = fine_tune(fresh(), TRAIN, None, config("lora", num_train_epochs=2.0))
    assert result.best_auc is None and len(result.history) == 2
    assert result.steps == 2 * 6  # 48 examples, batches of 8


def test_the_work_folder_is_removed(fresh, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fine_tune(fresh(), TRAIN[:16], VALID, config("lora", num_train_epochs=1.0))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bad input
def test_config_is_checked():
    with pytest.raises(ValidationError):
        TrainingConfig(strategy="prefix")
    with pytest.raises(ValidationError):
        TrainingConfig(learning_rat=1e-3)  # a typo is not ignored
    with pytest.raises(ValidationError):
        TrainingConfig(batch_size=0)
    with pytest.raises(ValidationError):
        TrainingConfig(batch_size="8")


def test_bad_examples_are_refused(fresh):
    bb = fresh()
    with pytest.raises(ValueError, match="no training examples"):
        fine_tune(bb, [], None)
    with pytest.raises(ValueError, match="example 1: the label must be 0 or 1"):
        fine_tune(bb, [("good", 1), ("bad", 2)], None)
    with pytest.raises(ValueError, match="example 0: the text"):
        fine_tune(bb, [("", 1)], None)
    with pytest.raises(ValueError, match="both labels"):
        fine_tune(bb, TRAIN, [("good", 1), ("fine", 1)])
    with pytest.raises(ValueError, match="tokens"):
        fine_tune(bb, [("good " * 600, 1), ("bad", 0)], None)
    with pytest.raises(ValueError, match="CUDA"):
        if torch.cuda.is_available():
            raise ValueError("CUDA present: nothing to check")
        fine_tune(bb, TRAIN, None, TrainingConfig(mixed_precision="fp16"))


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("strategy", ["full", "lora", "adalora"])
def test_saved_model_gives_identical_scores(fresh, tmp_path, strategy):
    bb = fresh()
    kw = {"adalora_init_r": 4, "adalora_target_r": 1} if strategy == "adalora" else {}
    fine_tune(bb, TRAIN, VALID, config(strategy, num_train_epochs=3.0, **kw))
    expected = bb.score_texts(TEXTS)
    folder = save_fine_tuned(bb, tmp_path / "reranker")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "rerank-fine-tuned" and manifest["head"] == "classifier"
    files = set(manifest["files"])
    if strategy == "full":
        assert "model/model.safetensors" in files
    else:  # the adapter and the head only, and what it was trained on
        assert "adapter/adapter_model.safetensors" in files
        assert not any(f.startswith("model/") for f in files)
        assert manifest["base_identity"] == bb.identity
        size = (folder / "adapter/adapter_model.safetensors").stat().st_size
        assert size < 0.2 * sum(p.numel() * 4 for p in bb.model.get_base_model().parameters())
    loaded = load_fine_tuned(folder, device="cpu")
    assert np.abs(loaded.score_texts(TEXTS) - expected).max() < 1e-5
    if strategy == "adalora":
        assert peft_setup.active_ranks(loaded.model) == peft_setup.active_ranks(bb.model)


def test_verbalizer_full_model_round_trip(fresh, tmp_path):
    bb = fresh(head="verbalizer")
    fine_tune(bb, TRAIN[:16], None, config("full", num_train_epochs=1.0))
    loaded = load_fine_tuned(save_fine_tuned(bb, tmp_path / "m"), device="cpu")
    assert loaded.head == "verbalizer"
    assert np.abs(loaded.score_texts(TEXTS) - bb.score_texts(TEXTS)).max() < 1e-5


@pytest.fixture
def saved_lora(fresh, tmp_path) -> Path:
    bb = fresh()
    fine_tune(bb, TRAIN[:16], None, config("lora", num_train_epochs=1.0))
    return save_fine_tuned(bb, tmp_path / "lora")


def test_another_backbone_is_refused(saved_lora, tiny_dirs):
    with pytest.raises(ModelFileError, match="trained on the base model"):
        load_fine_tuned(saved_lora, base=str(tiny_dirs["llama"]), device="cpu")


def test_a_changed_base_model_is_refused(fresh, tmp_path, tiny_dirs):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_dirs["gpt2"], base)
    bb = Backbone.load(str(base), "classifier", seed=0, device="cpu")
    fine_tune(bb, TRAIN[:16], None, config("lora", num_train_epochs=1.0))
    folder = save_fine_tuned(bb, tmp_path / "m")
    weights_file = base / "model.safetensors"
    os.utime(weights_file, ns=(0, 0))  # the weights "changed" in place
    with pytest.raises(ModelFileError, match="trained on the base model"):
        load_fine_tuned(folder, device="cpu")


def test_a_truncated_weights_file_is_refused(saved_lora):
    path = saved_lora / "adapter/adapter_model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="checksum"):
        load_fine_tuned(saved_lora, device="cpu")


def test_a_damaged_file_with_a_matching_manifest_is_refused(fresh, tmp_path):
    """Even when the manifest's checksum was updated to match, the loader says what failed."""
    from hybridrec.persistence import read_manifest, write_manifest

    bb = fresh()
    folder = save_fine_tuned(bb, tmp_path / "full")
    path = folder / "model/model.safetensors"
    path.write_bytes(path.read_bytes()[:200])
    manifest = read_manifest(folder, verify=False)
    write_manifest(folder, {k: v for k, v in manifest.items() if k not in {"files"}})
    with pytest.raises(ModelFileError, match="cannot load the model"):
        load_fine_tuned(folder, device="cpu")


def test_never_overwrites_a_folder_that_is_not_ours(fresh, tmp_path):
    bb = fresh()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(OutputPathError):
        save_fine_tuned(bb, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    folder = save_fine_tuned(bb, tmp_path / "m")
    with pytest.raises(OutputPathError):
        save_fine_tuned(bb, folder)
    save_fine_tuned(bb, folder, overwrite=True)  # a saved model may be replaced


def test_not_a_reranker_folder(tmp_path):
    with pytest.raises(ModelFileError):
        load_fine_tuned(tmp_path / "nothing", device="cpu")


# --------------------------------------------------------------------------- distributed
DDP_SCRIPT = """
import json, os, random, sys
import torch
import torch.distributed as dist
from hybridrec.rerank.backbone import Backbone
from hybridrec.rerank.training import TrainingConfig, fine_tune, save_fine_tuned

torch.set_num_threads(1)
model_dir, out = sys.argv[1], sys.argv[2]
train, valid = json.loads(sys.argv[3]), json.loads(sys.argv[4])
train = [tuple(x) for x in train]
valid = [tuple(x) for x in valid]
bb = Backbone.load(model_dir, "classifier", seed=0, device="cpu")
cfg = TrainingConfig(strategy="lora", learning_rate=5e-3, num_train_epochs=2.0, batch_size=8,
                     ddp_backend="gloo")
result = fine_tune(bb, train, valid, cfg)
world = dist.get_world_size() if dist.is_initialized() else 1
if int(os.environ.get("RANK", "0")) == 0:
    save_fine_tuned(bb, out)
    with open(out + ".json", "w") as fh:
        json.dump({"world": world, "steps": result.steps, "auc": result.best_auc}, fh)
"""


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tiny_dirs, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    out = tmp_path / "ddp-model"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(tiny_dirs["gpt2"]), str(out), json.dumps(TRAIN), json.dumps(VALID),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads((tmp_path / "ddp-model.json").read_text())
    assert info["world"] == 2
    assert info["steps"] == 2 * 3  # 48 examples over 2 processes, batches of 8: 3 steps/epoch
    loaded = load_fine_tuned(out, device="cpu")
    scores = loaded.score_texts(TEXTS)
    assert np.isfinite(scores).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("hybridrec-train-")]
