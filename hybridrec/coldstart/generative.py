"""The generative mode: the model writes titles, which are grounded in the candidate list.

The prompt (templates ``coldstart_generative`` and ``coldstart_generative_item``) lists the
candidates' cleaned titles and asks for the best ``k``, one per line. The reply is matched to
the *candidates* only (:func:`~hybridrec.coldstart.grounding.ground`: exact, normalised, then
fuzzy), so whatever the model writes, only a candidate can come back: a title outside the list,
an invented one or garbage is an unmatched line, counted in the invalid-output rate; repeats
and history items are dropped; the list is completed in the candidates' given order.

A candidate's score is ``(n - position) / n`` in the grounded list (1 for the first), so a
reply that grounds to nothing ranks the candidates in their given order.

Explanations (:func:`explain`) use the same backends: one short generated sentence.

Example:
    >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
    >>> from hybridrec.coldstart.backends import make_backend
    >>> ranker = GenerativeRanker(make_backend(FakeListChatModel(responses=["Heat"])))
    >>> scores, result = ranker.score("crime films", None, ["Up (2009)", "Heat (1995)"])
    >>> scores.tolist(), result.invalid_rate
    ([0.5, 1.0], 0.0)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridrec.coldstart.grounding import GroundingResult, TitleIndex, ground
from hybridrec.coldstart.prompt import clean_data_text, profile_text
from hybridrec.templates import render

__all__ = ["GenerativeConfig", "GenerativeRanker", "explain"]

_SENTENCE = re.compile(r"(?<=[.!?])\s")


@dataclass(frozen=True)
class GenerativeConfig:
    """Templates and budgets of the generative prompt.

    Attributes:
        template, item_template: template names (see ``prompts/README.md``).
        noun: what the catalogue holds (``"movie"``).
        k: how many titles to ask for (None: all the candidates).
        item_chars, preference_chars: caps of the texts.
        tokens_per_title: the generation budget per asked title.
        fuzzy, cutoff: the grounding's fuzzy step (see :func:`ground`).
    """

    template: str = "coldstart_generative"
    item_template: str = "coldstart_generative_item"
    noun: str = "item"
    k: int | None = 10
    item_chars: int = 120
    preference_chars: int = 2000
    tokens_per_title: int = 16
    fuzzy: str | None = "auto"
    cutoff: float = 85.0

    def __post_init__(self) -> None:
        render(self.template, preference="x", profile="x", noun="x", candidates="x", k="1")
        render(self.item_template, text="x")


class GenerativeRanker:
    """Ranks candidates by what a backend writes (see the module's notes).

    Args:
        backend: a :class:`~hybridrec.coldstart.backends.LocalLM` or
            :class:`~hybridrec.coldstart.backends.ChatModelBackend`.
        config: templates and budgets.
    """

    def __init__(self, backend: Any, config: GenerativeConfig | None = None) -> None:
        self.backend = backend
        self.config = config or GenerativeConfig()

    def prompt(
        self, preference: str | None, profile: Mapping[str, Any] | None, titles: Sequence[str]
    ) -> str:
        """The prompt, wrapped for the backend (titles cleaned as data, one line each)."""
        cfg = self.config
        k = len(titles) if cfg.k is None else min(cfg.k, len(titles))
        lines = [render(cfg.item_template, text=clean_data_text(t, cfg.item_chars)) for t in titles]
        user = render(
            cfg.template,
            preference=clean_data_text(preference, cfg.preference_chars),
            profile=profile_text(profile, cfg.item_chars),
            noun=clean_data_text(cfg.noun, 40) or "item",
            candidates="\n".join(lines),
            k=str(k),
        )
        return self.backend.wrap(user)

    def score(
        self,
        preference: str | None,
        profile: Mapping[str, Any] | None,
        texts: Sequence[str],
        *,
        history: Sequence[str] = (),
    ) -> tuple[np.ndarray, GroundingResult]:
        """Scores of the candidates (in order) and what the reply grounded to.

        Raises:
            BackendError: the backend failed (the caller decides what to do).
        """
        cfg = self.config
        n = len(texts)
        ids = [str(i) for i in range(n)]
        titles = [clean_data_text(t, cfg.item_chars) for t in texts]
        if not n:
            return np.zeros(0), ground("", TitleIndex([], []), k=0, fuzzy=None)
        k = n if cfg.k is None else min(cfg.k, n)
        reply = self.backend.generate(
            self.prompt(preference, profile, titles), max_new_tokens=cfg.tokens_per_title * k
        )
        result = ground(
            reply if isinstance(reply, str) else "",
            TitleIndex(ids, titles),
            history=history,
            candidates=ids,
            k=n,
            fuzzy=cfg.fuzzy,
            cutoff=cfg.cutoff,
        )
        scores = np.zeros(n, dtype=np.float64)
        for pos, item in enumerate(result.item_ids):
            scores[int(item)] = (n - pos) / n
        return scores, result


def explain(
    backend: Any,
    preference: str | None,
    profile: Mapping[str, Any] | None,
    title: str,
    *,
    template: str = "coldstart_explain",
    max_new_tokens: int = 40,
    max_chars: int = 300,
) -> str | None:
    """One short sentence on why the user might like ``title`` (None when nothing usable came
    back). The sentence is generated text: cleaned and capped, never parsed."""
    user = render(
        template,
        preference=clean_data_text(preference, 2000),
        profile=profile_text(profile, 200),
        title=clean_data_text(title, 200),
    )
    reply = backend.generate(backend.wrap(user), max_new_tokens=max_new_tokens)
    text = clean_data_text(reply, 4 * max_chars).strip()
    if not text:
        return None
    return _SENTENCE.split(text, maxsplit=1)[0][:max_chars]
