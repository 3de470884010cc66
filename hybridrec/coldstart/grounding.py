"""Grounding generated titles in the catalogue (the generative cold-start mode).

A language model asked to *write* recommendations writes free text: titles with list markers,
years, articles moved about, typos, items that do not exist. :func:`ground` maps each written
line to a catalogue item, in order of trust:

1. ``exact``: the line (list markers and quotes stripped) equals a title;
2. ``normalised``: equal after :func:`normalise_title` (case, accents, punctuation, a leading
   or trailing article such as "The" / ", The", a year in parentheses);
3. ``fuzzy``: the closest normalised title scoring at least ``cutoff`` (0-100), with
   ``rapidfuzz`` when installed, else the standard library's :mod:`difflib` (slower, slightly
   different scores; the result records which backend was used). ``fuzzy=None`` switches it
   off; ``fuzzy="rapidfuzz"`` without the package raises MissingDependencyError.

Matches that repeat an earlier one or are in the user's history are dropped (and counted);
lines that match nothing are kept as ``unmatched`` and counted in ``invalid_rate``, never
hidden. A list shorter than ``k`` is completed from ``candidates`` in their order. Only
catalogue ids are ever returned.

Example:
    >>> index = TitleIndex(["1", "2"], ["Matrix, The (1999)", "Heat (1995)"])
    >>> result = ground("1. The Matrix\\n2. Not A Movie", index, fuzzy=None)
    >>> result.matched_ids, result.unmatched, result.invalid_rate
    (('1',), ('Not A Movie',), 0.5)
"""

from __future__ import annotations

import importlib.util
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hybridrec.errors import MissingDependencyError

logger = logging.getLogger(__name__)

__all__ = ["FUZZY_BACKENDS", "GroundingResult", "Match", "TitleIndex", "ground", "normalise_title"]

FUZZY_BACKENDS = ("auto", "rapidfuzz", "difflib")
_MARKER = re.compile(r"^\s*(?:[-*•·]+|\(?\d{1,3}[.):]|\(?[A-Za-z][.)])\s+")
_YEAR = re.compile(r"\(\s*\d{4}(?:\s*[-–]\s*\d{0,4})?\s*\)")
_LEADING = re.compile(r"^(?:the|a|an|le|la|les|el|il|der|die|das)\s+")
_TRAILING = re.compile(r",\s*(?:the|a|an|le|la|les|el|il|der|die|das)\s*$")
_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")
_QUOTES = "\"'`“”‘’«»"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")
#: longer generated lines are cut to this many characters before matching (no title is longer)
MAX_LINE_CHARS = 300


def normalise_title(text: str) -> str:
    """A title reduced for matching: NFKD without accents, case-folded, no year in parentheses,
    no leading or trailing article (``"Matrix, The"``), no punctuation, single spaces.

    Example:
        >>> normalise_title("Matrix, The (1999)") == normalise_title("the matrix!")
        True
    """
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = _SPACE.sub(" ", _YEAR.sub(" ", text)).strip()
    text = _TRAILING.sub("", text)
    text = _LEADING.sub("", text)
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def _strip_line(line: str) -> str:
    line = _CONTROL.sub(" ", line[: 4 * MAX_LINE_CHARS])[:MAX_LINE_CHARS]
    line = _MARKER.sub("", line.strip(), count=1).strip()
    return line.strip(_QUOTES + " *_").strip()


@dataclass(frozen=True)
class Match:
    """One generated line matched to an item: how (``exact``/``normalised``/``fuzzy``) and the
    fuzzy score (100 for the others)."""

    line: str
    item_id: str
    how: str
    score: float


class TitleIndex:
    """The catalogue's titles, indexed for exact, normalised and fuzzy lookup.

    A title shared by several items matches the first of them in catalogue order.

    Args:
        item_ids: the catalogue's item ids.
        titles: their titles, in the same order.
    """

    def __init__(self, item_ids: Sequence[object], titles: Sequence[object]) -> None:
        if len(item_ids) != len(titles):
            raise ValueError(f"{len(item_ids)} item ids but {len(titles)} titles")
        self.item_ids = [str(i) for i in item_ids]
        self.exact: dict[str, str] = {}
        self.normal: dict[str, str] = {}
        for item_id, title in zip(self.item_ids, titles, strict=True):
            raw = str(title).strip() if title is not None else ""
            if raw:
                self.exact.setdefault(raw, item_id)
                key = normalise_title(raw)
                if key:
                    self.normal.setdefault(key, item_id)
        self.keys = list(self.normal)

    def fuzzy(self, key: str, cutoff: float, backend: str) -> tuple[str, float] | None:
        """The item whose normalised title is closest to ``key``, if it scores >= cutoff."""
        if not key or not self.keys:
            return None
        if backend == "rapidfuzz":
            from rapidfuzz import fuzz, process

            best = process.extractOne(key, self.keys, scorer=fuzz.ratio, score_cutoff=cutoff)
            return None if best is None else (self.normal[best[0]], float(best[1]))
        import difflib

        close = difflib.get_close_matches(key, self.keys, n=1, cutoff=cutoff / 100.0)
        if not close:
            return None
        ratio = difflib.SequenceMatcher(None, key, close[0]).ratio() * 100.0
        return self.normal[close[0]], ratio

    def lookup(self, line: str, *, fuzzy: str | None, cutoff: float) -> Match | None:
        """The match of one generated line, or None."""
        text = _strip_line(line)
        if text in self.exact:
            return Match(text, self.exact[text], "exact", 100.0)
        key = normalise_title(text)
        if key in self.normal:
            return Match(text, self.normal[key], "normalised", 100.0)
        if fuzzy is not None:
            found = self.fuzzy(key, cutoff, fuzzy)
            if found is not None:
                return Match(text, found[0], "fuzzy", found[1])
        return None


def _backend(fuzzy: str | None) -> str | None:
    if fuzzy is None:
        return None
    if fuzzy not in FUZZY_BACKENDS:
        raise ValueError(f"unknown fuzzy backend {fuzzy!r}; known: {FUZZY_BACKENDS} or None")
    installed = importlib.util.find_spec("rapidfuzz") is not None
    if fuzzy == "rapidfuzz" and not installed:
        raise MissingDependencyError(
            "fuzzy='rapidfuzz' needs the rapidfuzz package: "
            "`pip install rapidfuzz` (or use fuzzy='difflib')"
        )
    if fuzzy == "auto":
        return "rapidfuzz" if installed else "difflib"
    return fuzzy


@dataclass(frozen=True)
class GroundingResult:
    """What the generated text grounded to.

    Attributes:
        item_ids: the final list: matched ids (deduplicated, history dropped), then ids
            completed from the candidates, at most ``k``.
        matches: the kept matches, in order.
        unmatched: the non-empty lines that matched no item.
        n_lines: the non-empty lines read.
        duplicates: matches dropped as repeats of an earlier match.
        in_history: matches dropped as items of the user's history.
        completed: how many ids were added from the candidates.
        fuzzy_backend: ``"rapidfuzz"``, ``"difflib"`` or None (off).
    """

    item_ids: tuple[str, ...]
    matches: tuple[Match, ...]
    unmatched: tuple[str, ...]
    n_lines: int
    duplicates: int
    in_history: int
    completed: int
    fuzzy_backend: str | None

    @property
    def matched_ids(self) -> tuple[str, ...]:
        """The ids matched from the text (before completion)."""
        return tuple(m.item_id for m in self.matches)

    @property
    def invalid_rate(self) -> float:
        """Unmatched lines over non-empty lines (0.0 when there were none)."""
        return len(self.unmatched) / self.n_lines if self.n_lines else 0.0


def ground(
    generated: str | Iterable[str],
    index: TitleIndex,
    *,
    history: Iterable[object] = (),
    candidates: Iterable[object] = (),
    k: int | None = None,
    fuzzy: str | None = "auto",
    cutoff: float = 90.0,
) -> GroundingResult:
    """Match generated titles to catalogue items (see the module's notes).

    Args:
        generated: the model's text (one title a line) or its lines.
        index: the catalogue (:class:`TitleIndex`).
        history: item ids the user has already seen (dropped).
        candidates: item ids, best first, to complete a list shorter than ``k``.
        k: the list's length (None: matched items only, no cut, no completion).
        fuzzy: ``"auto"``, ``"rapidfuzz"``, ``"difflib"`` or None (no fuzzy step).
        cutoff: the lowest fuzzy score (0-100) accepted.
    """
    backend = _backend(fuzzy)
    lines = generated.splitlines() if isinstance(generated, str) else [str(x) for x in generated]
    seen_history = {str(h) for h in history}
    kept: list[Match] = []
    unmatched: list[str] = []
    taken: set[str] = set()
    n_lines = duplicates = in_history = 0
    for line in lines:
        if not _strip_line(line):
            continue
        n_lines += 1
        match = index.lookup(line, fuzzy=backend, cutoff=cutoff)
        if match is None:
            unmatched.append(_strip_line(line))
        elif match.item_id in taken:
            duplicates += 1
        elif match.item_id in seen_history:
            in_history += 1
        else:
            taken.add(match.item_id)
            kept.append(match)
    ids = [m.item_id for m in kept][: k if k is not None else None]
    completed = 0
    if k is not None:
        known = set(index.item_ids)
        for cand in (str(c) for c in candidates):
            if len(ids) >= k:
                break
            if cand in known and cand not in taken and cand not in seen_history:
                ids.append(cand)
                taken.add(cand)
                completed += 1
    return GroundingResult(
        tuple(ids),
        tuple(kept),
        tuple(unmatched),
        n_lines,
        duplicates,
        in_history,
        completed,
        backend,
    )
