"""Backends: which one runs, what each can do, failures, and the cached pointwise scoring."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage

from hybridrec.coldstart.backends import (
    BackendError,
    ChatModelBackend,
    LocalLM,
    check_mode,
    make_backend,
)


@pytest.fixture(scope="module")
def tiny_lm(tiny_dirs) -> LocalLM:
    return LocalLM.load(str(tiny_dirs["gpt2"]), device="cpu")


def test_a_chat_model_does_the_generative_mode_only() -> None:
    backend = make_backend(FakeListChatModel(responses=["Heat (1995)"]))
    assert isinstance(backend, ChatModelBackend)
    check_mode(backend, "generative")
    for mode in ("listwise", "pointwise"):
        with pytest.raises(ValueError, match=f"mode '{mode}'.*FakeListChatModel"):
            check_mode(backend, mode)
    assert backend.generate("anything") == "Heat (1995)"
    with pytest.raises(ValueError, match="unknown mode"):
        check_mode(backend, "beam")


def test_what_is_not_a_backend_is_refused() -> None:
    with pytest.raises(TypeError, match="BaseChatModel"):
        make_backend(42)
    with pytest.raises(ValueError, match="empty"):
        make_backend("  ")


def test_a_slow_backend_times_out_and_a_failing_one_is_named() -> None:
    slow = make_backend(FakeListChatModel(responses=["x"], sleep=2.0), timeout=0.1)
    with pytest.raises(BackendError, match="no answer within 0.1 s"):
        slow.generate("hello")
    empty = make_backend(GenericFakeChatModel(messages=iter([])))
    with pytest.raises(BackendError, match="GenericFakeChatModel failed"):
        empty.generate("hello")


def test_content_blocks_become_text() -> None:
    blocks = AIMessage(content=[{"type": "text", "text": "Heat"}, {"type": "text", "text": "Up"}])
    backend = make_backend(GenericFakeChatModel(messages=iter([blocks])))
    assert backend.generate("x") == "Heat\nUp"


def test_local_models_are_loaded_once(tiny_dirs, tiny_lm) -> None:
    assert LocalLM.load(str(tiny_dirs["gpt2"]), device="cpu") is tiny_lm
    assert make_backend(tiny_lm) is tiny_lm
    check_mode(tiny_lm, "listwise")
    check_mode(tiny_lm, "pointwise")


def test_cached_continuations_equal_the_full_computation(tiny_lm) -> None:
    """Independent oracle: each prefix + continuation run in full, without a cache."""
    import torch

    prefix = tiny_lm.encode("I like animated films. Answer: ")
    conts = [tiny_lm.encode(t, special=False) for t in ("Toy Story", "Heat (1995)", "Up")]
    got = tiny_lm.continuation_logprobs(prefix, conts)
    for cont, value in zip(conts, got, strict=True):
        ids = torch.tensor([prefix + cont])
        with torch.inference_mode():
            logp = torch.log_softmax(tiny_lm.model(input_ids=ids).logits[0].float(), -1)
        want = sum(float(logp[len(prefix) - 1 + j, t]) for j, t in enumerate(cont))
        assert value == pytest.approx(want, abs=1e-4)
    assert tiny_lm.continuation_logprobs(prefix, []).shape == (0,)
    with pytest.raises(ValueError, match="at least one token"):
        tiny_lm.continuation_logprobs(prefix, [[]])


def test_local_generation_returns_text(tiny_lm) -> None:
    text = tiny_lm.generate(tiny_lm.wrap("Name a film."), max_new_tokens=5)
    assert isinstance(text, str)
    assert np.isfinite(tiny_lm.max_length)


def test_model_names_are_checked_before_anything_loads(tiny_dirs, tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    from hybridrec.coldstart.backends import check_model_name, known_aliases

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    assert {"smollm2-135m", "tiny-gpt2"} <= set(known_aliases())
    check_model_name(str(tiny_dirs["gpt2"]))  # a model folder
    check_model_name("SmolLM2-135M")  # an alias, any case (nothing converted or loaded)
    for bad in ("no-such-model", "smollm2-135", "./models/none", "not a hub id"):
        with pytest.raises(ValueError, match=rf"'{bad}' is not a local folder.*smollm2-135m"):
            make_backend(bad)  # offline: not in the hub cache either
    with pytest.raises(ValueError, match="no config.json"):
        check_model_name(str(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        check_model_name("")
