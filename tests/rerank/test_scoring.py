"""Shared-prefix scoring equals the naive per-pair computation (GPT-2 and Llama architectures,
both heads, candidates of different lengths, several batches) and really runs the history once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from hybridrec.rerank.backbone import Backbone
from hybridrec.rerank.scoring import (
    common_prefix_length,
    resolve_strategy,
    score_requests,
    score_shared_ids,
    score_shared_prefix,
)

ARCHS = ["gpt2", "llama"]
HEADS = ["classifier", "verbalizer"]
STRATEGIES = ["packed", "batched"]
TOL = 1e-4

LoadBackbone = Callable[[str, str], Backbone]
Oracle = Callable[[Backbone, list[str]], list[float]]
Prompts = Callable[..., tuple[str, list[str]]]


def _record_decoder_calls(bb: Backbone, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record each decoder call's input shape and cache length (the model is not changed)."""
    calls: list[dict[str, Any]] = []
    decoder = bb.decoder
    forward = decoder.forward

    @functools.wraps(forward)  # keeps the signature, which names the cache argument
    def recording(*args: Any, **kwargs: Any) -> Any:
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        calls.append(
            {
                "shape": tuple(kwargs["input_ids"].shape),
                "cached": 0 if cache is None else cache.get_seq_length(),
            }
        )
        return forward(*args, **kwargs)

    monkeypatch.setattr(decoder, "forward", recording)
    return calls


# ---------------------------------------------------------------------- equal to naive
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("budget", [64, 100_000])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("arch", ARCHS)
def test_shared_prefix_scores_equal_the_naive_full_computation(
    load_backbone: LoadBackbone,
    oracle: Oracle,
    prompts: Prompts,
    arch: str,
    head: str,
    budget: int,
    strategy: str,
) -> None:
    bb = load_backbone(arch, head)
    prefix, suffixes = prompts(n_history=10, n_candidates=12)
    lengths = {len(ids) for ids in bb.encode(suffixes)}
    assert len(lengths) > 3  # candidates of different lengths
    texts = [prefix + s for s in suffixes]
    expected = np.asarray(oracle(bb, texts))
    fast = score_shared_prefix(bb, prefix, suffixes, max_batch_tokens=budget, strategy=strategy)
    assert fast.dtype == np.float32 and fast.shape == (len(suffixes),)
    assert np.abs(fast - expected).max() < TOL
    assert np.abs(fast - bb.score_texts(texts)).max() < TOL
    assert np.ptp(expected) > 100 * TOL  # a wrong computation would not pass by accident


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_runs_the_history_once_and_candidates_in_budgeted_batches(
    load_backbone: LoadBackbone, prompts: Prompts, monkeypatch: pytest.MonkeyPatch, arch: str
) -> None:
    bb = load_backbone(arch, "verbalizer")
    prefix, suffixes = prompts(n_history=15, n_candidates=20)
    ids = bb.encode([prefix + s for s in suffixes])
    shared = common_prefix_length(ids)
    assert shared >= len(bb.encode([prefix])[0]) - 1  # (a BPE merge may take the last token)
    budget = 6 * (shared + 20)
    calls = _record_decoder_calls(bb, monkeypatch)
    score_shared_prefix(bb, prefix, suffixes, max_batch_tokens=budget, strategy="batched")
    assert calls[0] == {"shape": (1, shared), "cached": 0}
    rest = calls[1:]
    assert len(rest) >= 4  # the budget split the 20 candidates
    assert sum(c["shape"][0] for c in rest) == len(suffixes)
    for call in rest:
        rows, width = call["shape"]
        assert call["cached"] == shared  # every batch continues from the shared cache
        assert rows * (shared + width) <= budget
        assert width <= max(len(row) for row in ids) - shared
    naive_tokens = sum(len(row) for row in ids)
    fast_tokens = shared + sum(rows * width for rows, width in (c["shape"] for c in rest))
    assert fast_tokens < naive_tokens / 3


@pytest.mark.parametrize("arch", ARCHS)
def test_packed_runs_each_token_once(
    load_backbone: LoadBackbone, prompts: Prompts, monkeypatch: pytest.MonkeyPatch, arch: str
) -> None:
    bb = load_backbone(arch, "classifier")
    prefix, suffixes = prompts(n_history=15, n_candidates=20)
    ids = bb.encode([prefix + s for s in suffixes])
    shared = common_prefix_length(ids)
    calls = _record_decoder_calls(bb, monkeypatch)
    score_shared_prefix(bb, prefix, suffixes, strategy="packed")
    total = sum(len(row) - shared for row in ids)
    assert calls == [{"shape": (1, shared), "cached": 0}, {"shape": (1, total), "cached": shared}]
    calls.clear()
    budget = shared + total // 3
    score_shared_prefix(bb, prefix, suffixes, strategy="packed", max_batch_tokens=budget)
    assert len(calls) >= 4 and sum(c["shape"][1] for c in calls[1:]) == total
    assert all(c["cached"] == shared and shared + c["shape"][1] <= budget for c in calls[1:])


def test_packed_works_with_eager_attention(
    tiny_dirs: dict[str, Any], oracle: Oracle, prompts: Prompts
) -> None:
    bb = Backbone.load(str(tiny_dirs["gpt2"]), "verbalizer", attn_implementation="eager")
    assert bb.config._attn_implementation == "eager"
    prefix, suffixes = prompts(n_candidates=5)
    expected = np.asarray(oracle(bb, [prefix + s for s in suffixes]))
    for strategy in STRATEGIES:
        got = score_shared_prefix(bb, prefix, suffixes, strategy=strategy)
        assert np.abs(got - expected).max() < TOL


def test_auto_takes_packed_only_where_a_custom_mask_is_supported(
    load_backbone: LoadBackbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    bb = load_backbone("gpt2", "classifier")
    assert resolve_strategy(bb, "auto") == "packed"  # sdpa
    monkeypatch.setattr(bb.config, "_attn_implementation", "flash_attention_2")
    assert resolve_strategy(bb, "auto") == "batched"
    assert resolve_strategy(bb, "packed") == "packed"
    with pytest.raises(ValueError, match="unknown strategy 'fast'"):
        score_shared_prefix(bb, "Heat", [" Up"], strategy="fast")


def test_a_token_merge_across_the_boundary_is_handled(
    load_backbone: LoadBackbone, oracle: Oracle
) -> None:
    """A prefix ending in a space or in the middle of a word: the full texts' tokens differ
    from prefix tokens + suffix tokens, and the scores still equal the naive ones."""
    bb = load_backbone("gpt2", "classifier")
    for prefix, suffixes in [
        ("The user liked Heat (1995) and ", ["Casino (1995)", "Toy Story (1995)", "Up"]),
        ("The user liked Ca", ["sino (1995)", "sablanca (1942)", "rs (2006)"]),
    ]:
        separate = bb.encode([prefix])[0] + bb.encode([suffixes[0]])[0]
        assert bb.encode([prefix + suffixes[0]])[0] != separate
        expected = np.asarray(oracle(bb, [prefix + s for s in suffixes]))
        assert np.abs(score_shared_prefix(bb, prefix, suffixes) - expected).max() < TOL


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("arch", ARCHS)
def test_edge_cases_of_candidate_lists(
    load_backbone: LoadBackbone, oracle: Oracle, prompts: Prompts, arch: str, strategy: str
) -> None:
    bb = load_backbone(arch, "classifier")
    prefix, suffixes = prompts(n_candidates=3)
    assert score_shared_prefix(bb, prefix, [], strategy=strategy).shape == (0,)
    for case in (
        suffixes[:1],  # one candidate
        [suffixes[0]] * 3,  # identical candidates: each keeps its last token
        ["", suffixes[1], " x"],  # the prefix alone is one of the texts
    ):
        expected = np.asarray(oracle(bb, [prefix + s for s in case]))
        got = score_shared_prefix(bb, prefix, case, strategy=strategy)
        assert np.abs(got - expected).max() < TOL
    # nothing shared (GPT-2 adds no BOS): falls back to the naive path
    expected = np.asarray(oracle(bb, ["Heat", "Up"]))
    got = score_shared_prefix(bb, "", ["Heat", "Up"], strategy=strategy)
    assert np.abs(got - expected).max() < TOL


def test_bad_input_is_named(load_backbone: LoadBackbone, prompts: Prompts) -> None:
    bb = load_backbone("gpt2", "verbalizer")
    prefix, suffixes = prompts(n_candidates=2)
    with pytest.raises(TypeError, match="suffix 1 is a int"):
        score_shared_prefix(bb, prefix, [suffixes[0], 7])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="prefix is a NoneType"):
        score_shared_prefix(bb, None, suffixes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"input 1 has \d+ tokens; .* at most 512"):
        score_shared_prefix(bb, prefix, [suffixes[0], " Heat (1995)" * 200])
    with pytest.raises(ValueError, match="input 0 is empty"):
        score_shared_prefix(bb, "", ["", "Up"])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_many_users(
    load_backbone: LoadBackbone, oracle: Oracle, prompts: Prompts, strategy: str
) -> None:
    bb = load_backbone("llama", "verbalizer")
    requests = [prompts(n_history=4 + 3 * u, n_candidates=3 + u, start=20 * u) for u in range(3)]
    requests.append((requests[0][0], []))
    out = score_requests(bb, requests, max_batch_tokens=128, strategy=strategy)
    assert [a.shape for a in out] == [(3,), (4,), (5,), (0,)]
    for (prefix, suffixes), got in zip(requests[:3], out, strict=False):
        expected = np.asarray(oracle(bb, [prefix + s for s in suffixes]))
        assert np.abs(got - expected).max() < TOL


def test_shared_ids_leave_the_model_and_training_mode_as_they_were(
    load_backbone: LoadBackbone, prompts: Prompts
) -> None:
    bb = load_backbone("gpt2", "classifier")
    prefix, suffixes = prompts(n_candidates=4)
    ids = bb.encode([prefix + s for s in suffixes])
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    bb.model.train()
    try:
        first = score_shared_ids(bb, ids)
        assert bb.model.training
        assert np.array_equal(first, score_shared_ids(bb, ids))
        assert np.abs(first - score_shared_ids(bb, ids, strategy="batched")).max() < TOL
    finally:
        bb.model.eval()
    assert all(torch.equal(before[k], v) for k, v in bb.model.state_dict().items())


# ---------------------------------------------------------------------- the real SmolLM2
@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
def test_smollm2_shared_prefix_equals_naive(
    smollm2: object, load_backbone: LoadBackbone, oracle: Oracle, prompts: Prompts, head: str
) -> None:
    """SmolLM2-135M (Llama architecture, the pretrained offline model): shared-prefix scores
    equal transformers' own unpadded forward pass, for both heads."""
    bb = load_backbone("smollm2", head)
    assert type(bb.model).__name__.startswith("Llama")
    prefix, suffixes = prompts(n_history=10, n_candidates=6)
    expected = np.asarray(oracle(bb, [prefix + s for s in suffixes]))
    for strategy in STRATEGIES:
        fast = score_shared_prefix(bb, prefix, suffixes, max_batch_tokens=600, strategy=strategy)
        assert np.abs(fast - expected).max() < TOL
    assert np.abs(bb.score_texts([prefix + s for s in suffixes]) - expected).max() < TOL
    assert np.ptp(expected) > 10 * TOL
