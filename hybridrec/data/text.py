"""Turn catalogue rows into the short texts the language models read."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

_TAG = re.compile(r"<[^>]*>?")  # also an unterminated tag, as in scraped Amazon titles
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

DEFAULT_FIELDS = ("title", "year", "genres", "tags", "brand", "category", "description")
LABELS = {
    "year": "Year",
    "genres": "Genres",
    "tags": "Tags",
    "brand": "Brand",
    "category": "Category",
    "description": "Description",
}


def clean_text(value: object) -> str:
    """Strip HTML tags and entities, control characters and repeated whitespace.

    Example:
        >>> clean_text("<b>Reason</b> &amp;  liberty\\n")
        'Reason & liberty'
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [clean_text(v) for v in value]
        return ", ".join(dict.fromkeys(p for p in parts if p))
    text = html.unescape(_TAG.sub(" ", str(value)))
    text = _CONTROL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class ItemTextBuilder:
    """Builds one line of text per item from chosen catalogue columns.

    The first field present is written bare (normally the title); the others as
    ``Label: value``, joined with ``". "``. HTML is stripped, whitespace normalised and the
    result cut to ``max_chars`` at a word boundary.

    Args:
        fields: catalogue columns to use, in order; absent columns are skipped.
        max_chars: length cap of the text.
        field_max_chars: length cap of each field (long descriptions are cut first).

    Example:
        >>> import pandas as pd
        >>> ItemTextBuilder().build(pd.DataFrame({"title": ["Heat"], "genres": [["Crime"]]}))
        ['Heat. Genres: Crime']
    """

    fields: Sequence[str] = DEFAULT_FIELDS
    max_chars: int = 512
    field_max_chars: int = 300

    def build(self, items: pd.DataFrame) -> list[str]:
        """The text of every row of ``items``, in order."""
        columns = [f for f in self.fields if f in items.columns]
        cleaned = {
            c: [truncate(clean_text(v), self.field_max_chars) for v in items[c]] for c in columns
        }
        out = []
        for row in range(len(items)):
            parts = []
            for c in columns:
                value = cleaned[c][row]
                if not value or (parts and value in parts[0]):
                    continue  # empty, or already said (a year inside "Heat (1995)")
                parts.append(
                    value
                    if not parts and c == columns[0]
                    else f"{LABELS.get(c, c.replace('_', ' ').capitalize())}: {value}"
                )
            text = "".join(
                p
                + ("" if i == len(parts) - 1 else " " if p.endswith((".", "!", "?", "…")) else ". ")
                for i, p in enumerate(parts)
            )
            out.append(truncate(text, self.max_chars))
        return out


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars``, at a word boundary when one is near."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars * 0.6:
        cut = cut[:space]
    return cut.rstrip(" .,;:") + "…"
