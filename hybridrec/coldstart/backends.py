"""Language-model backends of the cold-start stage, and the one place that picks one.

* :class:`LocalLM`: a local Hugging Face causal LM (any hub id or folder, or an alias of
  :func:`hybridrec.models.resolve_decoder` such as ``smollm2-135m``), used with its chat
  template when it has one. It can do every mode: ``listwise`` (next-token logits over
  identifiers), ``pointwise`` (log-likelihoods of continuations) and ``generative``.
* :class:`ChatModelBackend`: any LangChain ``BaseChatModel`` (``ChatOpenAI``, ``ChatOllama``,
  a fake chat model in tests). A chat API returns text, not logits, so it does the
  ``generative`` mode only.

:func:`make_backend` turns what a user gives (a name, a chat model, a backend) into a backend
and :func:`check_mode` refuses a mode the backend cannot run, naming both.

A model *name* is checked before any weights load (:func:`check_model_name`): it must be a
local folder with a ``config.json``, an alias of a causal LM (:data:`hybridrec.models.ALIASES`)
or a hub id; while the hub is offline (``HF_HUB_OFFLINE=1``), a hub id must be in the local
hub cache. A name that is none of these (a misspelt alias, say) is a ValueError naming it and
listing the known aliases; so is a hub id that transformers then cannot load.

Example:
    >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
    >>> backend = make_backend(FakeListChatModel(responses=["Heat"]))
    >>> backend.modes
    frozenset({'generative'})
    >>> check_mode(backend, "generative")  # "listwise" would raise ValueError naming it
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hybridrec.errors import HybridrecError
from hybridrec.models import check_model_name, known_aliases, unknown_model_error

logger = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "BackendError",
    "ChatModelBackend",
    "LocalLM",
    "check_mode",
    "check_model_name",
    "known_aliases",
    "make_backend",
]

#: ranking modes of the cold-start stage
MODES = ("listwise", "pointwise", "generative")
_LOADED: dict[tuple[str, str], LocalLM] = {}
_LOCK = threading.Lock()


class BackendError(HybridrecError, RuntimeError):
    """A backend failed to answer (an exception, a time-out, no text)."""


class LocalLM:
    """A local causal LM with its tokenizer (see the module's notes).

    Args:
        model: an ``AutoModelForCausalLM`` model.
        tokenizer: its tokenizer.
        name: the model's name, for messages.
        device: where to run (default: CUDA when available, else the CPU).
    """

    modes: ClassVar[frozenset[str]] = frozenset(MODES)

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "", device: Any = None) -> None:
        from hybridrec.rerank.backbone import resolve_device

        self.name = name or str(getattr(model, "name_or_path", "local model"))
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.chat = bool(getattr(tokenizer, "chat_template", None))
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @classmethod
    def load(cls, name: str = "smollm2-135m", *, device: Any = None) -> LocalLM:
        """Load a causal LM by name, once per process and device (later calls share it)."""
        key = (str(name), str(device))
        with _LOCK:
            if key not in _LOADED:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                from hybridrec.models import resolve_decoder

                check_model_name(name)
                path = resolve_decoder(name)
                try:
                    model = AutoModelForCausalLM.from_pretrained(path)
                    tokenizer = AutoTokenizer.from_pretrained(path)
                except OSError as err:
                    if isinstance(err, HybridrecError):
                        raise
                    raise unknown_model_error(name, f"could not be loaded ({err})") from err
                _LOADED[key] = cls(model, tokenizer, name=name, device=device)
            return _LOADED[key]

    # ------------------------------------------------------------------ text
    def wrap(self, user: str, answer: str = "") -> str:
        """``user`` as the user turn of the chat template (when there is one), then ``answer``
        as the start of the reply."""
        if not self.chat:
            return f"{user}\n{answer}"
        messages = [{"role": "user", "content": user}]
        head = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return head + answer

    def encode(self, text: str, *, special: bool | None = None) -> list[int]:
        """Token ids of ``text`` (special tokens only when there is no chat template)."""
        add = (not self.chat) if special is None else special
        return list(self.tokenizer(text, add_special_tokens=add)["input_ids"])

    @property
    def max_length(self) -> int:
        """The longest input the model takes, in tokens (2048 when the config says nothing)."""
        from hybridrec.models import max_input_length

        return max_input_length(self.model.config, default=2048)

    # ------------------------------------------------------------------ scoring
    def continuation_logprobs(
        self, prefix: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """The summed log-probability of each continuation after ``prefix``.

        The prefix runs once; its key/value cache is repeated for a right-padded batch of the
        continuations, so the cost is one prefix plus the continuations' tokens.
        """
        import torch

        if not continuations:
            return np.zeros(0, dtype=np.float64)
        if not prefix or any(not c for c in continuations):
            raise ValueError("the prefix and every continuation need at least one token")
        n, width = len(continuations), max(len(c) for c in continuations)
        pad = self.tokenizer.pad_token_id
        pad = 0 if pad is None else int(pad)
        ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for row, cont in enumerate(continuations):
            ids[row, : len(cont)] = torch.tensor(list(cont))
            mask[row, : len(cont)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        start = len(prefix)
        with torch.inference_mode():
            head = self.model(
                input_ids=torch.tensor([list(prefix)], device=self.device), use_cache=True
            )
            cache = getattr(head, "cache", None) or head.past_key_values
            cache.batch_repeat_interleave(n)
            positions = torch.arange(start, start + width, device=self.device).expand(n, -1)
            full_mask = torch.cat(
                [torch.ones((n, start), dtype=torch.long, device=self.device), mask], dim=1
            )
            out = self.model(
                input_ids=ids,
                attention_mask=full_mask,
                position_ids=positions,
                use_cache=False,
                **{self._cache_arg: cache},
            )
            first = head.logits[0, -1].float().expand(n, -1).unsqueeze(1)
            logits = torch.cat([first, out.logits[:, :-1].float()], dim=1)
            logp = torch.log_softmax(logits, dim=-1).gather(2, ids.unsqueeze(2)).squeeze(2)
            return (logp * mask).sum(dim=1).double().cpu().numpy()

    def generate(self, prompt: str, *, max_new_tokens: int = 64) -> str:
        """Greedy continuation of a prompt already wrapped with :meth:`wrap`."""
        import torch

        ids = self.encode(prompt)[-(self.max_length - max_new_tokens) :]
        input_ids = torch.tensor([ids], device=self.device)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        return self.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)

    def listwise(self, config: Any = None) -> Any:
        """A :class:`~hybridrec.coldstart.listwise.ListwiseScorer` sharing this model."""
        from hybridrec.coldstart.listwise import ListwiseScorer

        return ListwiseScorer(
            self.model, self.tokenizer, config, name=self.name, device=self.device
        )


class ChatModelBackend:
    """A LangChain ``BaseChatModel`` as a generative backend.

    Args:
        model: the chat model.
        timeout: seconds to wait for an answer (None: no limit); a time-out is a
            :class:`BackendError`.
    """

    modes: ClassVar[frozenset[str]] = frozenset({"generative"})

    def __init__(self, model: Any, *, timeout: float | None = 60.0) -> None:
        self.model = model
        self.timeout = timeout
        self.name = type(model).__name__

    def wrap(self, user: str, answer: str = "") -> str:
        """The prompt as sent (a chat model gets the user turn; ``answer`` is dropped)."""
        return user

    def generate(self, prompt: str, *, max_new_tokens: int = 64) -> str:
        """The chat model's reply to ``prompt`` as text (a :class:`BackendError` on failure)."""
        from langchain_core.messages import HumanMessage

        def call() -> Any:
            return self.model.invoke([HumanMessage(content=prompt)])

        try:
            if self.timeout is None:
                reply = call()
            else:
                pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
                try:
                    reply = pool.submit(call).result(timeout=self.timeout)
                finally:
                    pool.shutdown(wait=False, cancel_futures=True)
        except concurrent.futures.TimeoutError as err:
            raise BackendError(f"{self.name}: no answer within {self.timeout:g} s") from err
        except Exception as err:  # noqa: BLE001 - any failure of a remote service
            raise BackendError(f"{self.name} failed: {type(err).__name__}: {err}") from err
        content = getattr(reply, "content", reply)
        if isinstance(content, list):  # content blocks
            content = "\n".join(
                b.get("text", "") if isinstance(b, dict) else str(b) for b in content
            )
        if not isinstance(content, str):
            raise BackendError(f"{self.name} returned {type(content).__name__}, not text")
        return content


def make_backend(model: Any, *, device: Any = None, timeout: float | None = 60.0) -> Any:
    """The backend for ``model``: a name or folder (:class:`LocalLM`), a LangChain
    ``BaseChatModel`` (:class:`ChatModelBackend`) or a backend (returned as is).

    Raises:
        TypeError: anything else.
        ValueError: a name that is no folder, alias or available hub id
            (:func:`check_model_name`), or that transformers cannot load.
    """
    if isinstance(model, LocalLM | ChatModelBackend):
        return model
    if isinstance(model, str):
        check_model_name(model)
        return LocalLM.load(model, device=device)
    try:
        from langchain_core.language_models import BaseChatModel
    except ImportError:  # pragma: no cover - langchain-core is a dependency of the extra
        BaseChatModel = None  # noqa: N806
    if BaseChatModel is not None and isinstance(model, BaseChatModel):
        return ChatModelBackend(model, timeout=timeout)
    raise TypeError(
        f"model must be a model name or folder, a LangChain BaseChatModel or a backend, "
        f"not {type(model).__name__}"
    )


def check_mode(backend: Any, mode: str) -> None:
    """Refuse a mode the backend cannot run (ValueError naming the mode and the backend)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    if mode not in backend.modes:
        raise ValueError(
            f"mode {mode!r} needs a language model's next-token logits, which "
            f"{backend.name} (a chat model API) does not give; use mode='generative' "
            "or a local model"
        )
