"""Reranking raw texts with no catalogue: a history and candidates given as plain text.

:meth:`LMReranker.rerank_texts <hybridrec.rerank.lm.LMReranker.rerank_texts>` is the entry
point; this module turns its arguments into prompt entries and its scores into typed results.
A zero-shot reranker (``train=False``) needs no fit at all; a fitted or loaded one scores with
its fine-tuned model, template and calibration, and never looks at its catalogue here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hybridrec.rerank.prompt import HistoryEntry, PromptItem


@dataclass(frozen=True)
class RankedText:
    """One candidate text, ranked.

    Attributes:
        text: the candidate as given.
        index: its position in the given list (0-based).
        score: the language model's logit (higher = more likely liked).
        probability: P(like), the logit through the reranker's calibration.
        rank: 1-based, best first.
    """

    text: str
    index: int
    score: float
    probability: float
    rank: int


#: a history entry: an item's text (liked), or its text and the user's rating
HistoryText = str | tuple[str, float | None]


def history_entries(history: Sequence[HistoryText], like_threshold: float) -> list[HistoryEntry]:
    """Prompt entries of a text history, oldest first: a plain text counts as liked; a
    ``(text, rating)`` pair as liked when the rating reaches ``like_threshold``.

    Raises:
        TypeError: not a sequence of texts or (text, rating) pairs.
        ValueError: an empty text or a rating that is not a finite number.

    Example:
        >>> [e.liked for e in history_entries(["Heat (1995)", ("Cats (2019)", 1.0)], 4.0)]
        [True, False]
    """
    if isinstance(history, str | bytes) or not isinstance(history, Sequence):
        raise TypeError(
            f"history must be a list of item texts or (text, rating) pairs, not {history!r}"
        )
    entries = []
    for pos, entry in enumerate(history):
        text, rating = (entry, None) if isinstance(entry, str) else _pair(entry, pos)
        if not text.strip():
            raise ValueError(f"history[{pos}] is an empty text")
        liked = rating is None or rating >= like_threshold
        entries.append(HistoryEntry(PromptItem(text), rating, liked))
    return entries


def _pair(entry: Any, pos: int) -> tuple[str, float | None]:
    if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)):
        raise TypeError(f"history[{pos}] must be a text or a (text, rating) pair, not {entry!r}")
    rating = entry[1]
    if rating is None:
        return entry[0], None
    if isinstance(rating, bool) or not isinstance(rating, int | float) or not math.isfinite(rating):
        raise ValueError(f"history[{pos}]: the rating must be a finite number, not {rating!r}")
    return entry[0], float(rating)


def candidate_texts(candidates: Sequence[str]) -> list[str]:
    """The candidates, checked: a list of non-empty texts (duplicates are scored each).

    Example:
        >>> candidate_texts(["Ronin (1998)"])
        ['Ronin (1998)']
    """
    if isinstance(candidates, str | bytes) or not isinstance(candidates, Sequence):
        raise TypeError(f"candidates must be a list of texts, not {candidates!r}")
    for pos, text in enumerate(candidates):
        if not isinstance(text, str):
            raise TypeError(f"candidates[{pos}] must be a text, not {text!r}")
        if not text.strip():
            raise ValueError(f"candidates[{pos}] is an empty text")
    return list(candidates)
