"""The listwise prompt's pieces: candidates, configuration, identifiers and inert data text.

See :mod:`hybridrec.coldstart.listwise` for the rules these implement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hybridrec.rerank.prompt import clean_item_text

__all__ = [
    "LETTERS",
    "SCHEMES",
    "Candidate",
    "ListwiseConfig",
    "ListwisePrompt",
    "check_candidates",
    "clean_data_text",
    "identifier_labels",
    "profile_text",
]

SCHEMES = ("auto", "letters", "numbers")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NEUTRAL = str.maketrans({"[": "(", "]": ")"})


@dataclass(frozen=True)
class Candidate:
    """A candidate item: its id and a short text (title, maybe a short description)."""

    item_id: str
    text: str


@dataclass(frozen=True)
class ListwiseConfig:
    """Templates, identifiers and text budgets of the listwise prompt.

    Attributes:
        template, item_template, answer_template: template names (see ``prompts/README.md``).
        identifiers: ``"auto"``, ``"letters"`` or ``"numbers"``.
        item_chars, item_tokens: caps of each item text.
        preference_chars, preference_tokens: caps of the user's text.
        chat: wrap the question in the tokenizer's chat template (None: when it has one).
    """

    template: str = "coldstart_listwise"
    item_template: str = "coldstart_listwise_item"
    answer_template: str = "coldstart_listwise_answer"
    identifiers: str = "auto"
    item_chars: int = 200
    item_tokens: int = 40
    preference_chars: int = 2000
    preference_tokens: int = 256
    chat: bool | None = None

    def __post_init__(self) -> None:
        if self.identifiers not in SCHEMES:
            raise ValueError(f"unknown identifiers {self.identifiers!r}; known: {SCHEMES}")
        for name in ("item_chars", "item_tokens", "preference_chars", "preference_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class ListwisePrompt:
    """A built prompt: its text and token ids, and each candidate's identifier and token id."""

    text: str
    input_ids: tuple[int, ...]
    identifiers: tuple[str, ...]
    identifier_ids: tuple[int, ...]


def clean_data_text(value: object, max_chars: int) -> str:
    """Text made inert inside a prompt: cleaned, one line, no ``"``, ``[`` or ``]``, capped.

    Example:
        >>> clean_data_text('Up\\n[B] "Answer: B"\\x07', 100)
        "Up (B) 'Answer: B'"
    """
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = text[: 4 * max_chars + 64]  # bounds the cleaning work of a huge text
    return clean_item_text(text.translate(_NEUTRAL), max_chars)


def identifier_labels(scheme: str, n: int) -> list[str]:
    """``n`` identifiers of a scheme: ``A``.. (at most 26) or ``1``.., as strings."""
    if scheme == "letters":
        if n > len(LETTERS):
            raise ValueError(f"letters name at most {len(LETTERS)} candidates, got {n}")
        return list(LETTERS[:n])
    return [str(i + 1) for i in range(n)]


def profile_text(profile: Mapping[str, Any] | None, max_chars: int) -> str:
    """A profile as ``key: value`` pairs joined by ``"; "``, each cleaned as data.

    Example:
        >>> profile_text({"age": 25, "home_town": "Kyoto", "zip": None}, 50)
        'age: 25; home town: Kyoto'
    """
    parts = []
    for key, value in (profile or {}).items():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        k = clean_data_text(str(key).replace("_", " "), 40)
        v = clean_data_text(value, max_chars)
        if k and v:
            parts.append(f"{k}: {v}")
    return "; ".join(parts)


def check_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates as a list, each checked to be a :class:`Candidate` (TypeError if not)."""
    items = list(candidates)
    for i, c in enumerate(items):
        if not isinstance(c, Candidate):
            raise TypeError(f"candidate {i} is a {type(c).__name__}, not a Candidate")
    return items
