"""Amazon Review Data 2018 (Ni, Li & McAuley, EMNLP 2019): 5-core reviews plus metadata.

A category is two gzipped JSON lines files: ``<Category>_5.json.gz`` (``reviewerID``, ``asin``,
``overall`` 1-5, ``unixReviewTime``, ...) and ``meta_<Category>.json.gz`` (``asin``, ``title``,
``description`` (list), ``brand``, ``category`` (list), ...).

The metadata is messy: lines repeat (Magazine Subscriptions: 3,385 lines for 2,320 asins; the
first line of each asin is kept and the repeats are counted) and most ``title`` values are
scraped HTML fragments (``<span class="a-size-medium a-color-secondary"``). The item text is
therefore built from ``description``, ``brand`` and ``category``; a title is kept only when it is
clean text after HTML stripping.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.formats.common import Field, Frames
from hybridrec.data.formats.jsonlines import read_jsonl
from hybridrec.data.text import clean_text
from hybridrec.errors import DataError

logger = logging.getLogger(__name__)

_COMPLETE_TAG = re.compile(r"<[^<>]*>")
_WORD = re.compile(r"\w")

REVIEW_SUFFIX = "_5.json.gz"
META_PREFIX = "meta_"


def category_files(folder: Path, category: str | None = None) -> tuple[str, Path, Path | None]:
    """The category name, reviews file and metadata file (None if absent) of a folder.

    Raises:
        DataError: no ``*_5.json.gz`` file, or several and no ``category`` to choose.
    """
    if category is None:
        found = sorted(folder.glob(f"*{REVIEW_SUFFIX}"))
        if not found:
            raise DataError(f"no '*{REVIEW_SUFFIX}' reviews file in the folder", path=folder)
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise DataError(
                f"several categories ({names}); pass category=... to choose", path=folder
            )
        category = found[0].name[: -len(REVIEW_SUFFIX)]
    reviews = folder / f"{category}{REVIEW_SUFFIX}"
    meta = folder / f"{META_PREFIX}{category}.json.gz"
    return category, reviews, meta if meta.is_file() else None


def clean_title(raw: object) -> str:
    """A scraped title as clean text, or ``""`` when it is HTML junk.

    Complete tags are removed; what is left must hold no tag fragment (``<``, ``>``, ``="``)
    and at least one letter or digit.

    Example:
        >>> clean_title('<span class="a-size-medium a-color-secondary"')
        ''
        >>> clean_title("Disney &amp; Me")
        'Disney & Me'
        >>> clean_title(' Magazines" />')
        ''
    """
    if not isinstance(raw, str):
        return ""
    rest = _COMPLETE_TAG.sub(" ", raw)
    if "<" in rest or ">" in rest or '="' in rest:
        return ""
    text = clean_text(rest)
    return text if _WORD.search(text) else ""


def _text_list(value: object) -> list[str]:
    """Cleaned, non-empty, distinct strings of a list (or a single string) value."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, np.ndarray)):
        return []
    out = [clean_text(v) for v in value if isinstance(v, str)]
    return list(dict.fromkeys(v for v in out if v))


def read_amazon2018(
    folder: Path,
    *,
    category: str | None = None,
    lenient: bool = False,
    reviews_path: Path | None = None,
    meta_path: Path | None = None,
) -> Frames:
    """Read one Amazon 2018 category: reviews as explicit 1-5 ratings, metadata as item text.

    The catalogue holds the reviewed items (the 5-core set), in order of first review; items
    without metadata get empty text and ``has_metadata`` False. White space around
    ``reviewerID`` and ``asin`` is removed; ``overall`` must be a number in [1, 5].

    Args:
        folder: the folder holding ``<Category>_5.json.gz`` and ``meta_<Category>.json.gz``.
        category: which category, when the folder holds several.
        lenient: skip malformed lines instead of raising.
        reviews_path / meta_path: explicit files (override the names found in ``folder``).

    Example:
        >>> frames = read_amazon2018(Path("magazines"))  # doctest: +SKIP
        >>> frames.notes["meta_duplicate_lines"]  # doctest: +SKIP
        1065
    """
    name, found_reviews, found_meta = category_files(folder, category)
    reviews_path = reviews_path or found_reviews
    meta_path = meta_path or found_meta
    reviews = read_jsonl(
        reviews_path,
        [
            Field("reviewerID", "id", rename="user_id"),
            Field("asin", "id", rename="item_id"),
            Field("overall", "float", min=1.0, max=5.0, rename="rating"),
            Field("unixReviewTime", "int", rename="timestamp"),
        ],
        lenient=lenient,
    )
    if len(reviews.frame) == 0:
        raise DataError("no reviews in the file", path=reviews_path)
    r = reviews.frame
    interactions = pd.DataFrame(
        {
            "user_id": r["user_id"].to_numpy(dtype=object),
            "item_id": r["item_id"].to_numpy(dtype=object),
            "rating": r["rating"].to_numpy(np.float32),
            "timestamp": r["timestamp"].to_numpy(np.int64),
        }
    )
    rated = pd.Index(pd.unique(interactions["item_id"]))
    notes: dict[str, int] = {}
    skipped = reviews.skipped
    items = pd.DataFrame({"item_id": rated.to_numpy(dtype=object)})
    if meta_path is None:
        logger.warning("%s: no metadata file beside the reviews; items have no text", folder)
        for col in ("title", "description", "brand"):
            items[col] = ""
        items["category"] = [[] for _ in range(len(items))]
        items["has_metadata"] = False
        notes["items_without_metadata"] = len(items)
    else:
        meta = read_jsonl(
            meta_path,
            [
                Field("asin", "id", rename="item_id"),
                Field("title", "any", required=False),
                Field("description", "any", required=False),
                Field("brand", "any", required=False),
                Field("category", "any", required=False),
            ],
            lenient=lenient,
        )
        skipped += meta.skipped
        m = meta.frame
        dup = m["item_id"].duplicated(keep="first").to_numpy()
        notes["meta_lines"] = len(m)
        notes["meta_duplicate_lines"] = int(dup.sum())
        if dup.any():
            logger.info(
                "%s: %d repeated metadata lines (%d distinct asins); the first of each is kept",
                meta_path,
                int(dup.sum()),
                int((~dup).sum()),
            )
        m = m[~dup].set_index("item_id")
        pos = m.index.get_indexer(rated)
        has = pos >= 0
        rows = m.iloc[pos[has]]
        n = len(rated)

        def column(values: list[object], fill: object) -> np.ndarray:
            out = np.empty(n, dtype=object)
            for i in range(n):  # one per item; element-wise so lists stay lists
                out[i] = fill() if callable(fill) else fill
            for i, value in zip(np.flatnonzero(has), values, strict=True):
                out[i] = value
            return out

        titles = [clean_title(v) for v in rows["title"]]
        descriptions = [" ".join(_text_list(v)) for v in rows["description"]]
        brands = [clean_text(v) if isinstance(v, str) else "" for v in rows["brand"]]
        categories = [_text_list(v) for v in rows["category"]]
        items["title"] = column(titles, "")
        items["description"] = column(descriptions, "")
        items["brand"] = column(brands, "")
        items["category"] = column(categories, list)
        items["has_metadata"] = has
        notes["items_without_metadata"] = int((~has).sum())
        notes["junk_titles"] = sum(1 for t in titles if not t)
        if (~has).any():
            logger.info(
                "%s: %d of %d reviewed items have no metadata", meta_path, int((~has).sum()), n
            )
    return Frames(
        interactions=interactions,
        items=items,
        users=None,
        name=f"amazon2018:{name}",
        rating_scale=(1.0, 5.0),
        skipped_rows=skipped,
        notes=notes,
        source=folder,
    )
