"""The backbone: both heads, pooling on the last real token with left and right padding (against
transformers' own unpadded forward pass), padding tokens, bad input, batching by a token budget."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridrec.rerank.backbone import Backbone, last_real_positions, plan_batches

ARCHS = ["gpt2", "llama"]
HEADS = ["classifier", "verbalizer"]
TOL = 1e-4

LoadBackbone = Callable[[str, str], Backbone]
Oracle = Callable[[Backbone, list[str]], list[float]]


@pytest.fixture(scope="module")
def texts(prompts: Callable[..., tuple[str, list[str]]]) -> list[str]:
    """Whole prompts of different lengths (so that batches pad)."""
    prefix, suffixes = prompts(n_history=6, n_candidates=6)
    return [prefix + s for s in suffixes] + ["Heat (1995)", suffixes[0]]


# ---------------------------------------------------------------------- pooling and padding
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batches_score_as_unpadded_single_inputs(
    load_backbone: LoadBackbone, oracle: Oracle, texts: list[str], arch: str, head: str, side: str
) -> None:
    bb = load_backbone(arch, head)
    expected = np.asarray(oracle(bb, texts))
    got = bb.score_texts(texts, padding_side=side)
    assert got.dtype == np.float32 and got.shape == (len(texts),)
    assert np.abs(got - expected).max() < TOL
    # the test can fail: the scores differ between texts by far more than the tolerance
    assert np.ptp(expected) > 100 * TOL


@pytest.mark.parametrize("arch", ARCHS)
def test_the_classifier_is_transformers_sequence_classification_head(
    load_backbone: LoadBackbone, texts: list[str], arch: str
) -> None:
    """With a padding token that no text holds, transformers' own batched pooling (rightmost
    non-pad token) picks the same token as the backbone's pooling on the attention mask."""
    bb = load_backbone(arch, "classifier")
    family = "GPT2" if arch == "gpt2" else "Llama"
    assert type(bb.model).__name__ == f"{family}ForSequenceClassification"
    enc = bb.tokenizer(texts, padding=True, return_tensors="pt")
    position_ids = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        native = bb.model(**enc, position_ids=position_ids).logits[:, 0].numpy()
    assert np.abs(native - bb.score_texts(texts)).max() < TOL


def test_left_padding_needs_positions_counted_from_the_first_real_token(
    load_backbone: LoadBackbone, texts: list[str]
) -> None:
    """Why the backbone passes ``position_ids``: GPT-2 left-padded without them gives the real
    tokens shifted absolute positions, and other scores."""
    bb = load_backbone("gpt2", "classifier")
    tok = copy.copy(bb.tokenizer)
    tok.padding_side = "left"
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        shifted = bb.model(**enc).logits[:, 0].numpy()
    assert np.abs(shifted - bb.score_texts(texts, padding_side="left")).max() > 100 * TOL


def test_padding_with_end_of_text_breaks_transformers_pooling_not_ours(
    tiny_dirs: dict[str, Path], oracle: Oracle
) -> None:
    """GPT-2's usual fix, pad = eos: a text ending with eos is pooled on the token before it by
    transformers (rightmost token that is not the pad id); the backbone pools on the mask."""
    bb = Backbone.load(str(tiny_dirs["gpt2"]), "classifier", seed=0, device="cpu")
    bb.tokenizer.pad_token = bb.tokenizer.eos_token
    bb.config.pad_token_id = bb.tokenizer.eos_token_id
    texts = ["Heat (1995)<|endoftext|>", "Toy Story (1995) and Casino (1995)<|endoftext|>"]
    assert all(ids[-1] == bb.tokenizer.eos_token_id for ids in bb.encode(texts))
    expected = np.asarray(oracle(bb, texts))  # one at a time: no padding involved
    enc = bb.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        native = bb.model(**enc).logits[:, 0].numpy()
    assert np.abs(native - expected).max() > 100 * TOL  # transformers pooled the wrong token
    for side in ("left", "right"):
        assert np.abs(bb.score_texts(texts, padding_side=side) - expected).max() < TOL


def test_a_tokenizer_without_padding_pads_with_end_of_text(tiny_dirs: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dirs["gpt2"])
    tok.pad_token = None
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["gpt2"])
    model.config.pad_token_id = None
    bb = Backbone(model, tok, "verbalizer", device="cpu")
    assert tok.pad_token_id == tok.eos_token_id == model.config.pad_token_id
    single = [bb.score_texts([t])[0] for t in ("Heat (1995)", "Toy Story and more (1995)")]
    batch = bb.score_texts(["Heat (1995)", "Toy Story and more (1995)"])
    assert np.abs(batch - single).max() < TOL


def test_last_real_positions() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]])
    assert last_real_positions(mask).tolist() == [2, 4, 4, 1]


# ---------------------------------------------------------------------- heads
def test_verbalizer_scores_are_the_yes_minus_no_logits(
    load_backbone: LoadBackbone, texts: list[str]
) -> None:
    bb = load_backbone("gpt2", "verbalizer")
    yes, no = bb.answer_ids  # type: ignore[misc]
    assert bb.tokenizer.convert_ids_to_tokens([yes, no]) == ["ĠYes", "ĠNo"]
    enc = bb.tokenizer(texts[0], return_tensors="pt")
    with torch.no_grad():
        logits = bb.model(**enc).logits[0, -1]
    assert abs(float(logits[yes] - logits[no]) - bb.score_texts(texts[:1])[0]) < TOL


def test_verbalizer_answers_must_be_single_distinct_tokens(tiny_dirs: dict[str, Path]) -> None:
    path = str(tiny_dirs["gpt2"])
    with pytest.raises(ValueError, match="splits the verbalizer answer ' Absolutely'"):
        Backbone.load(path, "verbalizer", answers=(" Absolutely", " No"), device="cpu")
    with pytest.raises(ValueError, match="same token"):
        Backbone.load(path, "verbalizer", answers=(" No", " No"), device="cpu")
    bb = Backbone.load(path, "verbalizer", answers=(" No", " Yes"), device="cpu")
    flipped = Backbone.load(path, "verbalizer", device="cpu")
    assert bb.score_texts(["Heat"])[0] == pytest.approx(-flipped.score_texts(["Heat"])[0])


def test_unknown_heads_and_mismatched_models_are_refused(tiny_dirs: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with pytest.raises(ValueError, match="unknown head 'ranker'"):
        Backbone.load(str(tiny_dirs["gpt2"]), "ranker")
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["gpt2"])
    tok = AutoTokenizer.from_pretrained(tiny_dirs["gpt2"])
    with pytest.raises(ValueError, match="AutoModelForSequenceClassification"):
        Backbone(model, tok, "classifier", device="cpu")


def test_a_seeded_classifier_head_is_reproducible_and_leaves_the_global_rng(
    tiny_dirs: dict[str, Path], texts: list[str]
) -> None:
    state = torch.random.get_rng_state()
    a = Backbone.load(str(tiny_dirs["llama"]), "classifier", seed=7, device="cpu")
    b = Backbone.load(str(tiny_dirs["llama"]), "classifier", seed=7, device="cpu")
    c = Backbone.load(str(tiny_dirs["llama"]), "classifier", seed=8, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(a.score_texts(texts), b.score_texts(texts))
    assert not np.allclose(a.score_texts(texts), c.score_texts(texts))
    assert a.device == torch.device("cpu") and "classifier" in repr(a)


def test_scoring_uses_eval_mode_and_restores_training(
    tiny_dirs: dict[str, Path], texts: list[str]
) -> None:
    from transformers import AutoConfig

    path = tiny_dirs["gpt2"]
    config = AutoConfig.from_pretrained(path)
    assert config.resid_pdrop > 0  # dropout would make training-mode scores random
    bb = Backbone.load(str(path), "classifier", seed=0, device="cpu")
    bb.model.train()
    first, second = bb.score_texts(texts), bb.score_texts(texts)
    assert np.array_equal(first, second) and bb.model.training
    # forward keeps gradients for training
    enc = bb.tokenizer(texts[:2], padding=True, return_tensors="pt")
    scores = bb.forward(enc["input_ids"], enc["attention_mask"])
    scores.sum().backward()
    assert bb.model.score.weight.grad is not None


# ---------------------------------------------------------------------- bad input, batching
def test_bad_inputs_are_named(load_backbone: LoadBackbone) -> None:
    bb = load_backbone("gpt2", "classifier")
    assert bb.score_texts([]).shape == (0,)
    with pytest.raises(ValueError, match="input 1 is empty"):
        bb.score_texts(["Heat", ""])  # GPT-2 adds no BOS: nothing to pool on
    with pytest.raises(ValueError, match=r"input 0 has \d+ tokens; .* at most 512"):
        bb.score_texts(["Heat (1995) " * 400])
    with pytest.raises(TypeError, match="text 1 is a NoneType"):
        bb.score_texts(["Heat", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="padding_side"):
        bb.score_texts(["Heat"], padding_side="middle")
    # the Llama tokenizer's BOS makes an empty text scorable
    assert load_backbone("llama", "verbalizer").score_texts([""]).shape == (1,)


def test_the_token_budget_does_not_change_scores(
    load_backbone: LoadBackbone, texts: list[str]
) -> None:
    bb = load_backbone("llama", "classifier")
    one_by_one = bb.score_texts(texts, max_batch_tokens=1)
    together = bb.score_texts(texts, max_batch_tokens=100_000)
    assert np.abs(one_by_one - together).max() < TOL


@pytest.mark.parametrize("fixed", [0, 7])
@pytest.mark.parametrize("budget", [1, 40, 100, 10_000])
def test_plan_batches_fits_the_budget_and_covers_every_item(fixed: int, budget: int) -> None:
    rng = np.random.default_rng(fixed + budget)
    lengths = [int(x) for x in rng.integers(1, 30, size=37)]
    batches = plan_batches(lengths, max_batch_tokens=budget, fixed=fixed)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        cost = len(batch) * (fixed + max(lengths[i] for i in batch))
        assert cost <= budget or len(batch) == 1
    assert plan_batches([], max_batch_tokens=10) == []
    capped = plan_batches(lengths, max_batch_tokens=10**6, max_batch_size=8)
    assert [len(b) for b in capped] == [8, 8, 8, 8, 5]
    with pytest.raises(ValueError, match="positive"):
        plan_batches(lengths, max_batch_tokens=0)
