"""Any interaction log in CSV/TSV or JSON lines, with a mapping from its column names to ours.

Canonical columns: ``user_id`` and ``item_id`` (required), ``rating`` and ``timestamp`` (Unix
seconds). A catalogue file (``items=``) and a profile file (``users=``) may come beside it, in
either format, with their own mappings; their other columns are kept as item text / profile
fields under their own names.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.formats.common import Field, Frames, Table, decode, read_bytes, require_file
from hybridrec.data.formats.delimited import read_delimited
from hybridrec.data.formats.jsonlines import _open, read_jsonl
from hybridrec.errors import DataError

logger = logging.getLogger(__name__)

INTERACTION_FIELDS = ("user_id", "item_id", "rating", "timestamp")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


def file_format(path: Path) -> str | None:
    """``"csv"`` or ``"jsonl"`` from a file name (``.gz`` looked through), else None.

    Example:
        >>> file_format(Path("reviews.jsonl.gz")), file_format(Path("r.tsv"))
        ('jsonl', 'csv')
    """
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    return None


def read_generic(
    path: Path,
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    items: str | Path | None = None,
    item_columns: Mapping[str, str] | None = None,
    items_format: str | None = None,
    users: str | Path | None = None,
    user_columns: Mapping[str, str] | None = None,
    users_format: str | None = None,
    list_columns: Mapping[str, str] | None = None,
    sep: str | None = None,
    encoding: str = "utf-8",
    rating_scale: tuple[float, float] | None = None,
    name: str | None = None,
    lenient: bool = False,
) -> Frames:
    """Read an interaction log (and optional catalogue and profiles) in CSV or JSON lines.

    Args:
        path: the interactions file (``.csv``, ``.tsv``, ``.jsonl``, ``.json``; ``.gz`` too).
        format: ``"csv"`` or ``"jsonl"``; by default from the file name.
        columns: canonical name -> column in the file, e.g. ``{"user_id": "uid", "item_id":
            "asin", "rating": "stars", "timestamp": "ts"}``. Unmapped canonical names default to
            themselves; ``rating`` and ``timestamp`` are optional unless mapped: they are read
            when the CSV header (or the first JSON record) has them. Without a rating the
            feedback is implicit. Without a timestamp the row order stands in for time: a
            warning is logged and the dataset's ``has_timestamps`` is False, so that the
            time-based splits hold out at random instead of by (meaningless) row number.
            User and item ids have surrounding white space removed (``" u1 "`` is ``"u1"``);
            ratings must be finite and fit a float32 (``1e39``, ``inf``, ``nan`` are
            malformed).
        items: a catalogue file; ``item_columns`` maps ``item_id`` (and optionally ``title``,
            ``description``, ...) to its columns. Its other columns are kept as they are.
        items_format: the catalogue's format: ``"csv"`` (split on commas), ``"tsv"`` (on
            tabs) or ``"jsonl"``, for any file name. By default from its name (``.csv``,
            ``.tsv``, ``.jsonl``), a csv one then split with ``sep``.
        users: a profile file; ``user_columns`` maps ``user_id`` (and other fields).
        users_format: the profile file's format, as ``items_format``.
        list_columns: catalogue/profile columns holding lists in one string, with their
            separator, e.g. ``{"genres": "|"}``.
        sep: field separator of CSV files (default ``","``, or tab for ``.tsv``).
        encoding: encoding of CSV files (JSON lines are always UTF-8).
        rating_scale: (min, max); ratings outside it are malformed.
        name: the dataset's name (default: the file's stem).
        lenient: skip malformed rows instead of raising.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "log.csv"
        >>> _ = p.write_text("uid,asin,stars\\nu1,A,5\\nu2,A,3\\n")
        >>> f = read_generic(p, columns={"user_id": "uid", "item_id": "asin", "rating": "stars"})
        >>> f.interactions["rating"].tolist()
        [5.0, 3.0]
    """
    require_file(path)
    fmt = _format(path, format)
    mapping = _mapping(columns, INTERACTION_FIELDS, required=("user_id", "item_id"))
    available = _source_columns(path, fmt, sep=sep, encoding=encoding, lenient=lenient)
    fields = [
        Field(mapping["user_id"], "id", rename="user_id"),
        Field(mapping["item_id"], "id", rename="item_id"),
    ]
    lo, hi = rating_scale if rating_scale is not None else (None, None)
    explicit = set(columns or {})
    for canonical, kind in (("rating", "float"), ("timestamp", "int")):
        source = mapping[canonical]
        if canonical in explicit or available is None or source in available:
            bounds = {"min": lo, "max": hi} if canonical == "rating" else {}
            fields.append(Field(source, kind, rename=canonical, **bounds))  # type: ignore[arg-type]
    table = _read(path, fmt, fields, sep=sep, encoding=encoding, lenient=lenient)
    if len(table.frame) == 0:
        raise DataError("no interactions in the file", path=path)
    if "timestamp" not in table.frame.columns:
        logger.warning(
            "%s: no timestamp column (%r); the row order stands in for time, and time-based "
            "splits (leave-one-out, temporal) hold out at random instead",
            path,
            mapping["timestamp"],
        )
    skipped = table.skipped
    f = table.frame
    interactions = pd.DataFrame(
        {
            "user_id": f["user_id"].to_numpy(dtype=object),
            "item_id": f["item_id"].to_numpy(dtype=object),
        }
    )
    interactions["rating"] = (
        f["rating"].to_numpy(np.float32) if "rating" in f.columns else np.float32(np.nan)
    )
    if "timestamp" in f.columns:
        interactions["timestamp"] = f["timestamp"].to_numpy(np.int64)

    item_frame = user_frame = None
    if items is not None:
        item_table = _side_file(
            Path(items), "item_id", item_columns, sep=sep, encoding=encoding, lenient=lenient,
            list_columns=list_columns, format=items_format,
        )
        skipped += item_table.skipped
        item_frame = item_table.frame
    if users is not None:
        user_table = _side_file(
            Path(users), "user_id", user_columns, sep=sep, encoding=encoding, lenient=lenient,
            list_columns=list_columns, format=users_format,
        )
        skipped += user_table.skipped
        user_frame = user_table.frame
    return Frames(
        interactions=interactions,
        items=item_frame,
        users=user_frame,
        name=name or _stem(path),
        rating_scale=rating_scale,
        skipped_rows=skipped,
        source=path,
    )


def _stem(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).stem


def _format(path: Path, format: str | None) -> str:
    fmt = format or file_format(path)
    if fmt not in ("csv", "jsonl"):
        raise DataError(
            "cannot tell the format from the file name; pass format='csv' or format='jsonl'",
            path=path,
        )
    return fmt


def _mapping(
    columns: Mapping[str, str] | None, canonical: tuple[str, ...], *, required: tuple[str, ...]
) -> dict[str, str]:
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(canonical))
    if unknown:
        raise ValueError(f"unknown column role(s) {unknown}; the roles are {list(canonical)}")
    mapping = {c: c for c in canonical}
    mapping.update(columns)
    for role in required:
        if not mapping.get(role):
            raise ValueError(f"columns[{role!r}] must name a column")
    return mapping


def _source_columns(
    path: Path, fmt: str, *, sep: str | None, encoding: str, lenient: bool
) -> list[str] | None:
    """Column names of a CSV header, or the keys of the first JSON record (None if unknown)."""
    if fmt == "csv":
        text, _ = decode(read_bytes(path)[:65536], encoding, path=path, lenient=True)
        text = text.lstrip("\ufeff")
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sep(path, sep))
            return [c.strip() for c in next(reader)]
        except (StopIteration, csv.Error):
            return None
    try:
        with _open(path) as fh:
            for raw in fh:
                if raw.strip():
                    obj = json.loads(raw)
                    return list(obj) if isinstance(obj, dict) else None
    except (OSError, EOFError, ValueError):
        return None
    return None


def _sep(path: Path, sep: str | None) -> str:
    if sep is not None:
        return sep
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return "\t" if name.lower().endswith(".tsv") else ","


def _read(
    path: Path, fmt: str, fields: list[Field], *, sep: str | None, encoding: str, lenient: bool
) -> Table:
    if fmt == "csv":
        return read_delimited(
            path, fields, sep=_sep(path, sep), encoding=encoding, lenient=lenient
        )
    return read_jsonl(path, fields, lenient=lenient)


def _side_file(
    path: Path,
    key: str,
    columns: Mapping[str, str] | None,
    *,
    sep: str | None,
    encoding: str,
    lenient: bool,
    list_columns: Mapping[str, str] | None,
    format: str | None = None,
) -> Table:
    """A catalogue or profile file: the key column (white space around ids removed) plus every
    other column, renamed. A given ``format`` sets the separator too (csv: comma, tsv: tab)."""
    require_file(path)
    if format in ("csv", "tsv"):
        format, sep = "csv", ("\t" if format == "tsv" else ",")
    fmt = _format(path, format)
    mapping = dict(columns or {})
    mapping.setdefault(key, key)
    source_key = mapping[key]
    available = _source_columns(path, fmt, sep=sep, encoding=encoding, lenient=lenient) or []
    renames = {source: canonical for canonical, source in mapping.items()}
    for canonical, source in mapping.items():
        if canonical != key and available and source not in available:
            raise DataError(
                f"missing column {source!r} (mapped to {canonical!r})",
                path=path,
                line=1,
                field=source,
            )
    fields = [Field(source_key, "id", rename=key)]
    kind = "str" if fmt == "csv" else "any"
    fields += [
        Field(c, kind, required=False, rename=renames.get(c)) for c in available if c != source_key
    ]
    table = _read(path, fmt, fields, sep=sep, encoding=encoding, lenient=lenient)
    for col, separator in (list_columns or {}).items():
        if col in table.frame.columns:
            values = table.frame[col]
            table.frame[col] = [
                [x.strip() for x in v.split(separator) if x.strip()] if isinstance(v, str) else v
                for v in values
            ]
    what = "item id" if key == "item_id" else "user id"
    return table.drop_duplicates(key, lenient=lenient, what=what, field=source_key)
