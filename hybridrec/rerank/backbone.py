"""A decoder language model as a (user history, candidate) -> P(like) scorer.

:class:`Backbone` holds a transformers model, its tokenizer, the kind of head and the device.
A prompt (a template filled with the user's history, the candidate and a question) gets one
score, a logit of "the user likes the candidate"; two heads are supported:

``classifier``
    ``AutoModelForSequenceClassification`` with ``num_labels=1`` (``GPT2ForSequenceClassification``,
    ``LlamaForSequenceClassification``, ...): a new linear head (``model.score``) on the hidden
    state of the last real token. It must be trained before its scores mean anything.
``verbalizer``
    ``AutoModelForCausalLM``: the language-model head's logit of ``" Yes"`` minus that of
    ``" No"`` at the last position, after a question (TALLRec). Usable zero-shot, before any
    training. Both answers must be single tokens of the tokenizer (they are for GPT-2 and
    SmolLM2); a tokenizer that splits one is refused.

Pooling. transformers' sequence-classification models find the last real token as the
rightmost token that is not ``config.pad_token_id`` (see ``GPT2ForSequenceClassification.forward``
in the installed transformers). That works with left and right padding, but GPT-2 has no
padding token, and the usual fix (padding with ``<|endoftext|>``) makes a text that itself ends
with ``<|endoftext|>`` pool on the token before it. The backbone therefore pools on the
attention mask instead (the rightmost position whose mask is 1), runs the decoder with
``position_ids`` computed from the mask (GPT-2 would otherwise give left-padded tokens shifted
absolute positions), and applies the head to that one hidden state. Left and right padding
then give the scores of the same texts run one by one, unpadded.

:meth:`Backbone.score_texts` scores whole texts, each run in full (the naive path, and the
oracle of :mod:`hybridrec.rerank.scoring`, which runs a shared history once).

Example:
    >>> from hybridrec.rerank.backbone import Backbone
    >>> bb = Backbone.load("tiny-gpt2", head="verbalizer")
    >>> bb.score_texts(["Liked: Heat (1995). Candidate: Toy Story (1995). Like? Answer:"]).shape
    (1,)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from hybridrec.models import model_identity, resolve_decoder

logger = logging.getLogger(__name__)

#: the heads a backbone can score with
HEADS = ("classifier", "verbalizer")

#: the verbalizer's answers: score = logit(positive) - logit(negative)
DEFAULT_ANSWERS = (" Yes", " No")

#: default token budget of one forward pass (see :func:`plan_batches`)
DEFAULT_MAX_BATCH_TOKENS = 8192


def default_device() -> torch.device:
    """CUDA when a GPU is available, else the CPU.

    Example:
        >>> default_device().type in {"cuda", "cpu"}
        True
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a :class:`torch.device`, checked now; None = :func:`default_device`.

    Raises:
        ValueError: not a device name, or a CUDA device where torch sees no GPU.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device: {err}") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r}, but torch {torch.__version__} sees no CUDA GPU; "
            "use device='cpu' or None (a GPU when there is one)"
        )
    return resolved


def plan_batches(
    lengths: Sequence[int],
    *,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    fixed: int = 0,
    max_batch_size: int | None = None,
) -> list[list[int]]:
    """Group items into batches whose padded size fits a token budget.

    Items are taken longest first, so that a batch pads little. A batch of ``b`` items whose
    longest has ``L`` tokens costs ``b * (fixed + L)`` tokens: ``fixed`` is a part every item
    of the batch also holds (a shared prefix in a key/value cache). An item over the budget on
    its own gets a batch of its own.

    Args:
        lengths: the items' lengths in tokens.
        max_batch_tokens: the budget of one batch.
        fixed: tokens every item adds on top of its length.
        max_batch_size: at most this many items a batch.

    Returns:
        Batches of indices into ``lengths``.

    Example:
        >>> plan_batches([3, 10, 4, 9], max_batch_tokens=20)
        [[1, 3], [2, 0]]
        >>> plan_batches([3, 10, 4, 9], max_batch_tokens=20, fixed=5)
        [[1], [3], [2, 0]]
    """
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be positive, got {max_batch_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        width = max(longest, lengths[i])
        full = max_batch_size is not None and len(current) >= max_batch_size
        if current and (full or (len(current) + 1) * (fixed + width) > max_batch_tokens):
            batches.append(current)
            current, width = [], lengths[i]
        current.append(i)
        longest = width
    if current:
        batches.append(current)
    return batches


def last_real_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """The index of each row's rightmost real token (mask 1), for left or right padding.

    Example:
        >>> last_real_positions(torch.tensor([[1, 1, 0], [0, 1, 1]])).tolist()
        [1, 2]
    """
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.to(positions.dtype)).argmax(-1)


def _unwrapped(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (adapters stay injected), or the model."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


class Backbone:
    """A decoder language model scoring prompts with a ``classifier`` or ``verbalizer`` head.

    Build it with :meth:`load`, or wrap a model you already hold (a fine-tuned or PEFT model)
    with the constructor.

    Args:
        model: ``*ForSequenceClassification`` with one label (``classifier``) or
            ``*ForCausalLM`` (``verbalizer``), possibly wrapped by PEFT.
        tokenizer: its tokenizer. Without a padding token, the end-of-text token is used as
            one (the backbone pools on the attention mask, so this is safe for it;
            ``config.pad_token_id`` is set for transformers' own pooling).
        head: ``"classifier"`` or ``"verbalizer"``.
        name: the model's name as the user gave it (recorded, not resolved).
        answers: the verbalizer's positive and negative answers, one token each.
        device: where to run; default :func:`default_device`. The model is moved there.

    Raises:
        ValueError: an unknown head, a model without the head's layer, no padding or
            end-of-text token, or verbalizer answers that are not single distinct tokens.

    Example:
        >>> from transformers import AutoModelForCausalLM, AutoTokenizer
        >>> from hybridrec.models import resolve_decoder
        >>> path = resolve_decoder("tiny-gpt2")
        >>> bb = Backbone(AutoModelForCausalLM.from_pretrained(path),
        ...               AutoTokenizer.from_pretrained(path), "verbalizer")
        >>> bb.answer_ids == tuple(bb.tokenizer.convert_tokens_to_ids(["ĠYes", "ĠNo"]))
        True
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        head: str = "classifier",
        *,
        name: str | None = None,
        answers: tuple[str, str] = DEFAULT_ANSWERS,
        device: str | torch.device | None = None,
    ) -> None:
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        self.head = head
        self.model = model
        self.tokenizer = tokenizer
        self.name = name if name is not None else str(getattr(model, "name_or_path", ""))
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.model.eval()
        base = _unwrapped(model)
        self.config = base.config
        self._set_padding()
        if head == "classifier":
            score = getattr(base, "score", None)
            if not isinstance(score, torch.nn.Module) or getattr(base.config, "num_labels", 1) != 1:
                raise ValueError(
                    f"head 'classifier' needs a sequence-classification model with one label and "
                    f"a `score` layer (AutoModelForSequenceClassification, num_labels=1); got "
                    f"{type(base).__name__}"
                )
            self.answer_ids: tuple[int, int] | None = None
        else:
            if base.get_output_embeddings() is None:
                raise ValueError(
                    f"head 'verbalizer' needs a causal language model with an LM head "
                    f"(AutoModelForCausalLM); got {type(base).__name__}"
                )
            self.answer_ids = self._answer_ids(answers)
        self.answers = answers

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(
        cls,
        name: str,
        head: str = "classifier",
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        seed: int | None = None,
        answers: tuple[str, str] = DEFAULT_ANSWERS,
        **kwargs: Any,
    ) -> Backbone:
        """Load a decoder by name (see :func:`hybridrec.models.resolve_decoder`) with a head.

        Args:
            name: ``"gpt2"`` or any hub id, a local folder, ``"smollm2-135m"``, ``"tiny-gpt2"``.
            head: ``"classifier"`` (a new one-label linear head) or ``"verbalizer"``.
            device: where to run; default :func:`default_device`.
            dtype: the weights' dtype (default: as saved, float32 here).
            seed: seeds the new classifier head's initialisation (reproducible scores before
                training); the global random state is left as it was.
            answers: the verbalizer's positive and negative answers.
            **kwargs: passed to ``from_pretrained``.

        Example:
            >>> bb = Backbone.load("tiny-gpt2", "classifier", seed=0)
            >>> type(bb.model).__name__
            'GPT2ForSequenceClassification'
        """
        from transformers import (
            AutoModelForCausalLM,
            AutoModelForSequenceClassification,
            AutoTokenizer,
        )

        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        path = resolve_decoder(name)
        if dtype is not None:
            kwargs["dtype"] = dtype
        tokenizer = AutoTokenizer.from_pretrained(path)
        if head == "classifier":
            kwargs.setdefault("num_labels", 1)
            if tokenizer.pad_token_id is not None:  # else set by the constructor
                kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
            loader = AutoModelForSequenceClassification
        else:
            loader = AutoModelForCausalLM
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            model = loader.from_pretrained(path, **kwargs)
        backbone = cls(model, tokenizer, head, name=name, answers=answers, device=device)
        logger.info("loaded %s (%s) with a %s head on %s", name, path, head, backbone.device)
        return backbone

    def _set_padding(self) -> None:
        tok = self.tokenizer
        if tok.pad_token_id is None:
            if tok.eos_token_id is None:
                raise ValueError(
                    f"{self.name}: the tokenizer has neither a padding nor an end-of-text token; "
                    f"set tokenizer.pad_token first"
                )
            tok.pad_token = tok.eos_token
            logger.info("%s: no padding token; padding with %r", self.name, tok.eos_token)
        if self.config.pad_token_id != tok.pad_token_id:
            self.config.pad_token_id = tok.pad_token_id

    def _answer_ids(self, answers: tuple[str, str]) -> tuple[int, int]:
        if len(answers) != 2:
            raise ValueError(f"answers must be (positive, negative), got {answers!r}")
        ids = []
        for answer in answers:
            tokens = self.tokenizer.encode(answer, add_special_tokens=False)
            if len(tokens) != 1:
                shown = self.tokenizer.convert_ids_to_tokens(tokens)
                raise ValueError(
                    f"{self.name}: the tokenizer splits the verbalizer answer {answer!r} into "
                    f"{len(tokens)} tokens {shown}; the verbalizer head needs one token per "
                    f"answer: pass other answers (e.g. without the leading space)"
                )
            ids.append(tokens[0])
        if ids[0] == ids[1]:
            raise ValueError(f"{self.name}: the answers {answers!r} are the same token")
        return ids[0], ids[1]

    # ------------------------------------------------------------------ the parts
    @property
    def identity(self) -> str:
        """The weights' identity (:func:`hybridrec.models.model_identity`) of :attr:`name`."""
        return model_identity(self.name, "causal-lm")

    @property
    def decoder(self) -> Any:
        """The transformer without any head (``GPT2Model``, ``LlamaModel``, ...)."""
        return _unwrapped(self.model).base_model

    @property
    def max_length(self) -> int:
        """The longest input the model takes, in tokens."""
        from hybridrec.models import max_input_length

        return max_input_length(self.config, self.tokenizer)

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def head_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of pooled hidden states ``(batch, hidden_size) -> (batch,)``.

        ``classifier``: the score layer; ``verbalizer``: the LM head's logit of the positive
        answer minus that of the negative one (after the model's final logit soft-capping, if
        its config has one).
        """
        base = _unwrapped(self.model)
        if self.head == "classifier":
            return base.score(hidden).squeeze(-1)
        logits = base.get_output_embeddings()(hidden)
        cap = getattr(self.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        yes, no = self.answer_ids  # type: ignore[misc]
        return logits[..., yes] - logits[..., no]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Scores of a padded batch (left or right padding), with gradients if enabled.

        Positions are counted from each row's first real token, and each row is pooled on its
        last real token (see the module's notes), so a padded row scores as it would alone.

        Args:
            input_ids: ``(batch, length)`` token ids.
            attention_mask: ``(batch, length)``, 1 on real tokens, 0 on padding.

        Returns:
            ``(batch,)`` scores.
        """
        mask = attention_mask.to(input_ids.device)
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.decoder(
            input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
        )
        hidden = out[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return self.head_scores(hidden[rows, last_real_positions(mask)])

    # ------------------------------------------------------------------ scoring
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of whole texts, with the tokenizer's special tokens (a BOS, if it adds one).

        Raises:
            TypeError: a text that is not a string.
        """
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is a {type(text).__name__}, not a str")
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(list(texts))["input_ids"]]

    def check_lengths(self, ids: Sequence[Sequence[int]]) -> None:
        """Refuse empty inputs and inputs longer than :attr:`max_length`, naming the first.

        Raises:
            ValueError: which input, how long, and the limit.
        """
        limit = self.max_length
        for i, row in enumerate(ids):
            if len(row) == 0:
                raise ValueError(f"input {i} is empty (no tokens); nothing to score")
            if len(row) > limit:
                raise ValueError(
                    f"input {i} has {len(row)} tokens; {self.name} takes at most {limit}: "
                    f"shorten the history"
                )

    @contextlib.contextmanager
    def scoring(self) -> Iterator[None]:
        """Eval mode and ``torch.inference_mode`` for the block; the previous mode restored."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            if was_training:
                self.model.train()

    def score_ids(
        self,
        ids: Sequence[Sequence[int]],
        *,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        padding_side: str | None = None,
    ) -> np.ndarray:
        """Scores of token-id sequences, each run in full, in batches that fit a token budget.

        Args:
            ids: one token-id sequence per input.
            max_batch_tokens: padded tokens per forward pass (see :func:`plan_batches`).
            padding_side: ``"left"`` or ``"right"``; default the tokenizer's.

        Returns:
            float32 scores, in the order of ``ids``.
        """
        side = padding_side or getattr(self.tokenizer, "padding_side", "right") or "right"
        if side not in {"left", "right"}:
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        self.check_lengths(ids)
        out = np.empty(len(ids), dtype=np.float32)
        batches = plan_batches([len(r) for r in ids], max_batch_tokens=max_batch_tokens)
        with self.scoring():
            for batch in batches:
                width = max(len(ids[i]) for i in batch)
                input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    n = len(ids[i])
                    cols = slice(0, n) if side == "right" else slice(width - n, width)
                    input_ids[row, cols] = torch.as_tensor(ids[i], dtype=torch.long)
                    mask[row, cols] = 1
                scores = self.forward(input_ids.to(self.device), mask.to(self.device))
                out[batch] = scores.float().cpu().numpy()
        return out

    def score_texts(
        self,
        prompts: Sequence[str],
        *,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        padding_side: str | None = None,
    ) -> np.ndarray:
        """Scores (logits of "likes") of whole prompts, each run in full: the naive path.

        For many candidates after one history, :func:`hybridrec.rerank.scoring.score_shared_prefix`
        gives the same scores and runs the history once.

        Args:
            prompts: the full texts (template, history, candidate, question).
            max_batch_tokens: padded tokens per forward pass.
            padding_side: ``"left"`` or ``"right"``; default the tokenizer's. The scores do not
                depend on it.

        Returns:
            float32 scores, one per prompt.

        Raises:
            ValueError: an empty prompt, or one longer than :attr:`max_length`.

        Example:
            >>> bb = Backbone.load("tiny-gpt2", "classifier", seed=0)
            >>> s = bb.score_texts(["Liked: Heat (1995)", "Liked: Heat (1995). Candidate: Up"])
            >>> s.shape, s.dtype
            ((2,), dtype('float32'))
        """
        return self.score_ids(
            self.encode(prompts), max_batch_tokens=max_batch_tokens, padding_side=padding_side
        )

    def __repr__(self) -> str:
        return (
            f"Backbone({self.name!r}, head={self.head!r}, model={type(self.model).__name__}, "
            f"device={self.device})"
        )
