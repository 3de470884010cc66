"""Listwise ranking by index: one prompt, one forward pass, one score per candidate.

The prompt (templates ``coldstart_listwise``, ``coldstart_listwise_item`` and
``coldstart_listwise_answer`` in the top-level ``prompts/`` folder) gives the user's own words
(and profile) and lists the candidates, each on its own line behind a short identifier
(``[A] "..."``, ``[B] "..."``), then asks which one the user would like most. The score of a
candidate is the language model's next-token logit of its identifier after the answer cue,
normalised over the identifiers (a log-probability; LlamaRec's verbalizer). Nothing is
generated or parsed, so nothing outside the list can come back.

Rules:

* **Identifiers are single tokens.** Letters ``A``..``Z`` (``"letters"``) or ``1``..``n``
  (``"numbers"``); ``"auto"`` takes the first scheme whose identifiers are each one token
  right after the answer cue, and distinct. A tokenizer for which none is refused (ValueError).
* **Text is data.** The user's text and every item text are cleaned (HTML, control and
  invisible characters removed, newlines collapsed), ``"`` becomes ``'`` and ``[``/``]`` become
  ``(``/``)``, so an item can neither leave its quotes, nor start a line, nor write a fake
  ``[B]`` marker; it is cut to ``item_chars`` characters, then ``item_tokens`` tokens.
* **Budgets.** The preference text is cut to ``preference_chars`` characters and
  ``preference_tokens`` tokens (a 100k-character text is cut, not refused). If the prompt is
  still longer than the model takes, both token budgets are halved until it fits.
* An empty candidate list scores to an empty array; a blank preference with no profile is a
  ValueError (the caller should use its popularity fallback).

Example:
    >>> scorer = ListwiseScorer.load("tiny-gpt2")
    >>> cands = [Candidate("1", "Toy Story (1995)"), Candidate("2", "Heat (1995)")]
    >>> scorer.score("I like animation", cands).shape
    (2,)
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hybridrec.coldstart.permutation import PermutedScores, permuted_scores
from hybridrec.coldstart.prompt import (
    Candidate,
    ListwiseConfig,
    ListwisePrompt,
    check_candidates,
    clean_data_text,
    identifier_labels,
    profile_text,
)
from hybridrec.templates import render

logger = logging.getLogger(__name__)

_PROBE = "\u2063"  # an invisible separator: cleaned out of every real text

__all__ = ["Candidate", "ListwiseConfig", "ListwisePrompt", "ListwiseScorer", "clean_data_text"]


class ListwiseScorer:
    """Scores a user's candidates with a causal language model, listwise by index.

    Args:
        model: an ``AutoModelForCausalLM`` model.
        tokenizer: its tokenizer.
        config: the prompt's templates and budgets.
        name: the model's name, for messages.
        device: where to run (default: CUDA when available, else the CPU).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        config: ListwiseConfig | None = None,
        *,
        name: str | None = None,
        device: Any = None,
    ) -> None:
        from hybridrec.rerank.backbone import resolve_device

        self.config = config or ListwiseConfig()
        self.name = name or str(getattr(model, "name_or_path", ""))
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        if model.get_output_embeddings() is None:
            raise ValueError(
                f"{self.name}: needs a causal LM with an LM head, got {type(model).__name__}"
            )
        has_chat = bool(getattr(tokenizer, "chat_template", None))
        self.chat = has_chat if self.config.chat is None else self.config.chat
        if self.chat and not has_chat:
            raise ValueError(f"{self.name}: chat=True but the tokenizer has no chat template")
        self._answer = render(self.config.answer_template)
        self._keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._schemes: dict[int, tuple[list[str], tuple[int, ...]]] = {}

    @classmethod
    def load(
        cls,
        name: str = "smollm2-135m",
        config: ListwiseConfig | None = None,
        *,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> ListwiseScorer:
        """Load a causal LM by name (:func:`hybridrec.models.resolve_decoder`)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from hybridrec.models import resolve_decoder

        path = resolve_decoder(name)
        if dtype is not None:
            kwargs["dtype"] = dtype
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        return cls(model, AutoTokenizer.from_pretrained(path), config, name=name, device=device)

    @property
    def max_length(self) -> int:
        """The longest input the model takes, in tokens."""
        from hybridrec.models import max_input_length

        return max_input_length(self.model.config, self.tokenizer)

    # ------------------------------------------------------------------ prompt
    def _wrap(self, user: str) -> str:
        if not self.chat:
            return f"{user}\n{self._answer}"
        messages = [{"role": "user", "content": user}]
        head = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return head + self._answer

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"])

    def identifiers(self, n: int) -> tuple[list[str], tuple[int, ...]]:
        """The identifiers of ``n`` candidates and their token ids after the answer cue.

        Raises:
            ValueError: no scheme of the config gives ``n`` distinct single tokens.
        """
        if n in self._schemes:
            return self._schemes[n]
        tail = self._wrap(_PROBE).split(_PROBE)[-1]
        base = self.tokenizer.encode(tail, add_special_tokens=False)
        schemes = (
            ("letters", "numbers")
            if self.config.identifiers == "auto"
            else (self.config.identifiers,)
        )
        problems = []
        for scheme in schemes:
            try:
                labels = identifier_labels(scheme, n)
            except ValueError as err:
                problems.append(str(err))
                continue
            ids, split = [], []
            for label in labels:
                full = self.tokenizer.encode(tail + label, add_special_tokens=False)
                if len(full) != len(base) + 1 or full[: len(base)] != base:
                    split.append(label)
                ids.append(full[-1])
            if split:
                problems.append(f"{scheme}: {split[:5]} are not single tokens after {tail!r}")
            elif len(set(ids)) != n:
                problems.append(f"{scheme}: identifiers share tokens")
            else:
                self._schemes[n] = (labels, tuple(ids))
                return self._schemes[n]
        raise ValueError(
            f"{self.name}: no identifier scheme for {n} candidates: {'; '.join(problems)}"
        )

    def _cut_tokens(self, text: str, budget: int) -> str:
        """``text`` cut to about ``budget`` tokens, the closing ``…`` included."""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= budget:
            return text
        keep = max(budget - len(self.tokenizer.encode("…", add_special_tokens=False)), 1)
        cut = self.tokenizer.decode(ids[:keep]).replace("\ufffd", "").rstrip()
        return clean_data_text(cut, len(cut) + 1) + "…"

    def build_prompt(
        self,
        preference: str | None,
        candidates: Sequence[Candidate],
        profile: Mapping[str, Any] | None = None,
    ) -> ListwisePrompt:
        """The prompt for one user and their candidates (see the module's rules).

        Raises:
            ValueError: no candidates, no preference text and no profile, no identifier
                scheme, or a prompt too long for the model even with the smallest budgets.
        """
        cfg = self.config
        items = check_candidates(candidates)
        if not items:
            raise ValueError("no candidates to list")
        labels, ids = self.identifiers(len(items))
        pref = clean_data_text(preference, cfg.preference_chars)
        prof = profile_text(profile, cfg.item_chars)
        if not pref and not prof:
            raise ValueError(
                "the preference text is empty and there is no profile: nothing "
                "to rank by (use the popularity fallback)"
            )
        texts = [clean_data_text(c.text, cfg.item_chars) for c in items]
        item_budget, pref_budget = cfg.item_tokens, cfg.preference_tokens
        while True:
            lines = [
                render(cfg.item_template, identifier=label, text=self._cut_tokens(t, item_budget))
                for label, t in zip(labels, texts, strict=True)
            ]
            user = render(
                cfg.template,
                preference=self._cut_tokens(pref, pref_budget),
                profile=prof,
                candidates="\n".join(lines),
                first=labels[0],
                last=labels[-1],
            )
            text = self._wrap(user)
            input_ids = self._encode(text)
            if len(input_ids) <= self.max_length:
                return ListwisePrompt(text, tuple(input_ids), tuple(labels), ids)
            if item_budget <= 2 and pref_budget <= 2:
                raise ValueError(
                    f"{self.name}: {len(items)} candidates do not fit in "
                    f"{self.max_length} tokens even with 2-token texts"
                )
            item_budget, pref_budget = max(item_budget // 2, 2), max(pref_budget // 2, 2)
            logger.debug(
                "prompt too long (%d tokens): budgets cut to %d/%d",
                len(input_ids),
                item_budget,
                pref_budget,
            )

    # ------------------------------------------------------------------ scoring
    def score_prompt(self, prompt: ListwisePrompt) -> np.ndarray:
        """Log-probabilities of the identifiers at the answer position (one forward pass)."""
        import torch

        input_ids = torch.tensor([prompt.input_ids], dtype=torch.long, device=self.device)
        kwargs = {"logits_to_keep": 1} if self._keep else {}
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, **kwargs).logits[0, -1].float()
            chosen = logits[list(prompt.identifier_ids)]
            return torch.log_softmax(chosen, dim=-1).cpu().numpy().astype(np.float32)

    def score(
        self,
        preference: str | None,
        candidates: Sequence[Candidate],
        profile: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """One float32 score per candidate, in the given order (empty list: empty array)."""
        if not check_candidates(candidates):
            return np.zeros(0, dtype=np.float32)
        return self.score_prompt(self.build_prompt(preference, candidates, profile))

    def score_permuted(
        self,
        preference: str | None,
        candidates: Sequence[Candidate],
        profile: Mapping[str, Any] | None = None,
        *,
        orders: int | str | np.ndarray = 4,
        seed: int = 0,
        fusion: str = "mean",
    ) -> PermutedScores:
        """:meth:`score` under several orders, fused per candidate (position-bias control).

        See :func:`hybridrec.coldstart.permutation.permuted_scores` for ``orders``, ``seed``
        and ``fusion``; ``.sensitivity()`` of the result measures the order sensitivity.
        """
        items = check_candidates(candidates)

        def shown(order: Sequence[int]) -> np.ndarray:
            return self.score(preference, [items[i] for i in order], profile)

        return permuted_scores(shown, len(items), orders, seed=seed, fusion=fusion)
