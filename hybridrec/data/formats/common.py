"""Shared machinery of the format readers: typed fields, line-numbered problems, file reading.

Every reader follows the same pattern: a fast, vectorised pass that is right for clean files, and
only when something is wrong a diagnostic pass that finds the exact line and field of every bad
row. Bad rows are then either an error (:class:`~hybridrec.errors.DataError`, the default) or,
with ``lenient=True``, skipped and counted.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from hybridrec.errors import DataError

logger = logging.getLogger(__name__)

Kind = Literal["int", "float", "id", "str", "any"]

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Field:
    """One column (or JSON key) a reader needs, how to type it and what makes it valid.

    Args:
        name: the column name in the file (or the positional name of a header-less file, or the
            JSON key).
        kind: ``"int"`` (int64; at most 2**53 in magnitude, so that no value was rounded on
            the way), ``"float"`` (float64, finite and within the float32 range, since
            ratings are stored as float32: ``1e39``, ``inf`` and ``nan`` are malformed),
            ``"id"`` (a non-empty string with surrounding white space removed, so ``" u1 "``
            is ``"u1"``; integral numbers are accepted and written as strings), ``"str"`` (text,
            missing is ``""``) or ``"any"`` (left as parsed, for JSON lists).
        required: whether the value must be present and non-empty.
        min / max: inclusive bounds of numeric values.
        rename: the column name in the output frame (default: ``name``).

    Example:
        >>> Field("rating", "float", min=0.5, max=5.0).out
        'rating'
    """

    name: str
    kind: Kind = "str"
    required: bool = True
    min: float | None = None
    max: float | None = None
    rename: str | None = None

    @property
    def out(self) -> str:
        """Name of the column in the frame a reader returns."""
        return self.rename or self.name


@dataclass(frozen=True)
class Problem:
    """A malformed row: where (1-based line of the file, header counted) and what."""

    line: int | None
    field: str | None
    message: str


@dataclass
class Frames:
    """What a format reader returns: external-id frames ready for ``Dataset.from_frames``.

    Attributes:
        interactions: ``user_id``, ``item_id``, ``rating`` and ``timestamp`` columns.
        items: the catalogue (``item_id`` plus text columns), or None.
        users: user profiles (``user_id`` plus profile columns), or None.
        name: short name of the dataset.
        rating_scale: (min, max) of the ratings, or None for implicit feedback.
        skipped_rows: malformed rows skipped in lenient mode, all files together.
        notes: counts worth knowing about the load (for example duplicate metadata lines).
        source: the file or folder read, named in errors.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    name: str
    rating_scale: tuple[float, float] | None
    skipped_rows: int = 0
    notes: dict[str, int] = field(default_factory=dict)
    source: Path | None = None


class Table:
    """A parsed file: typed frame, how many rows were skipped, and the line of every row.

    ``lines`` is known after a diagnostic pass; otherwise :meth:`line_of` computes it on demand
    (only needed to name the line of a later problem such as a duplicate id).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        path: Path,
        skipped: int = 0,
        lines: np.ndarray | None = None,
        locate: Callable[[], np.ndarray | None] | None = None,
    ) -> None:
        self.frame = frame
        self.path = path
        self.skipped = skipped
        self._lines = lines
        self._locate = locate

    def line_of(self, rows: Sequence[int] | np.ndarray) -> list[int | None]:
        """The 1-based file line of each row position of :attr:`frame`."""
        if self._lines is None and self._locate is not None:
            lines = self._locate()
            if lines is not None and len(lines) == len(self.frame):
                self._lines = lines
            self._locate = None
        if self._lines is None:
            return [None for _ in rows]
        return [int(self._lines[r]) for r in rows]

    def drop_duplicates(
        self, column: str, *, lenient: bool, what: str, field: str | None = None
    ) -> Table:
        """Refuse (or, leniently, skip) rows whose ``column`` repeats an earlier row's value.

        ``what`` names the id in messages; ``field`` is the column's name in the file (default
        ``column``).
        """
        dup = self.frame[column].duplicated(keep="first").to_numpy()
        if not dup.any():
            return self
        rows = np.flatnonzero(dup)
        if not lenient:
            row = int(rows[0])
            value = self.frame[column].iloc[row]
            first = int(np.flatnonzero((self.frame[column] == value).to_numpy())[0])
            value = value.item() if isinstance(value, np.generic) else value
            line, first_line = self.line_of([row, first])
            where = f" (first on line {first_line})" if first_line is not None else ""
            more = f"; {len(rows) - 1} more duplicate rows" if len(rows) > 1 else ""
            raise DataError(
                f"duplicate {what} {value!r}{where}{more}",
                path=self.path,
                line=line,
                field=field or column,
            )
        logger.warning(
            "%s: skipped %d rows that repeat an earlier %s", self.path, len(rows), what
        )
        keep = ~dup
        lines = None if self._lines is None else self._lines[keep]
        return Table(
            self.frame[keep].reset_index(drop=True),
            path=self.path,
            skipped=self.skipped + len(rows),
            lines=lines,
        )


# --------------------------------------------------------------------------- reading bytes
def read_bytes(path: Path) -> bytes:
    """The whole content of a file, gunzipped when its name ends in ``.gz``.

    Raises:
        DataError: the file is missing, unreadable or not valid gzip.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise DataError("file not found", path=path) from err
    except IsADirectoryError as err:
        raise DataError("is a folder, not a file", path=path) from err
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path=path) from err
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"not a valid gzip file ({err})", path=path) from err
    return data


def require_file(path: Path) -> Path:
    """``path`` if it is an existing file; a :class:`DataError` otherwise."""
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", path=path)
    return path


def encoding_label(encoding: str) -> str:
    """Human name of an encoding for messages (``utf-8-sig`` is UTF-8)."""
    enc = encoding.lower().replace("_", "-")
    if enc in ("utf-8", "utf8", "utf-8-sig"):
        return "UTF-8"
    return encoding


def decode(
    data: bytes,
    encoding: str,
    *,
    path: Path,
    lenient: bool,
    field_at: Callable[[bytes, int], str | None] | None = None,
) -> tuple[str, bool]:
    """Decode ``data`` strictly; in lenient mode escape bad bytes so that rows can be skipped.

    Args:
        data: the file's bytes.
        encoding: the encoding the format prescribes.
        path: named in errors.
        lenient: escape undecodable bytes (as lone surrogates) instead of raising.
        field_at: given the bad line's bytes and the 0-based byte offset in it, the name of the
            field there (for the error message).

    Returns:
        The text and whether undecodable bytes were escaped.

    Raises:
        DataError: undecodable bytes, naming the line, column and field.
    """
    try:
        return data.decode(encoding), False
    except UnicodeDecodeError as err:
        if lenient:
            return data.decode(encoding, errors="surrogateescape"), True
        start = data.rfind(b"\n", 0, err.start) + 1
        end = data.find(b"\n", err.start)
        line_bytes = data[start : end if end >= 0 else len(data)]
        line = data.count(b"\n", 0, err.start) + 1
        fld = field_at(line_bytes, err.start - start) if field_at else None
        raise DataError(
            f"not valid {encoding_label(encoding)}: byte 0x{data[err.start]:02x} at column "
            f"{err.start - start + 1}",
            path=path,
            line=line,
            field=fld,
        ) from err


def has_escapes(text: str) -> bool:
    """Whether ``text`` holds bytes escaped by :func:`decode` in lenient mode."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


# --------------------------------------------------------------------------- typed fields
def check_fields(
    frame: pd.DataFrame, fields: Sequence[Field]
) -> tuple[pd.DataFrame, np.ndarray, Callable[[int], tuple[str, str]]]:
    """Type and validate the columns ``fields`` of ``frame``, vectorised.

    Returns:
        The typed frame (columns renamed to ``Field.out``), a boolean mask of bad rows and a
        function giving, for a bad row position, the field and the message of its first problem.
    """
    out: dict[str, Any] = {}
    bad = np.zeros(len(frame), dtype=bool)
    issues: list[tuple[Field, np.ndarray, Callable[[int], str]]] = []
    for f in fields:
        raw = frame[f.name]
        values, fail, describe = _convert(raw, f)
        out[f.out] = values
        if fail is not None and fail.any():
            bad |= fail
            issues.append((f, fail, describe))

    def explain(row: int) -> tuple[str, str]:
        for f, fail, describe in issues:
            if fail[row]:
                return f.name, describe(row)
        return "", "malformed row"

    return pd.DataFrame(out, index=frame.index), bad, explain


def _convert(
    raw: pd.Series, f: Field
) -> tuple[Any, np.ndarray | None, Callable[[int], str]]:
    """Typed values of one column, the mask of bad rows and a message for a bad row."""
    n = len(raw)

    def show(row: int) -> str:
        value = raw.iloc[row]
        if isinstance(value, float) and np.isnan(value) and raw.dtype == object:
            return "NaN"  # JSON's NaN, given explicitly (null is None)
        return "missing" if _missing(value) else repr(value)

    if f.kind in ("int", "float"):
        huge = np.zeros(n, dtype=bool)
        if f.kind == "int" and pd.api.types.is_signed_integer_dtype(raw.dtype):
            num = raw.to_numpy(np.int64)
            fail = np.zeros(n, dtype=bool)
        elif f.kind == "float" and pd.api.types.is_float_dtype(raw.dtype):
            num = raw.to_numpy(np.float64)
            fail = ~np.isfinite(num)
        else:
            as_num = pd.to_numeric(raw, errors="coerce")  # surrounding spaces are accepted
            num = as_num.to_numpy(np.float64, na_value=np.nan)
            fail = ~np.isfinite(num) | _booleans(raw)
            if f.kind == "int":
                fail |= np.mod(np.where(fail, 0, num), 1) != 0
                fail |= np.abs(np.where(fail, 0, num)) > 2**53
                num = np.where(fail, 0, num).astype(np.int64)
        if f.kind == "float":
            huge = ~fail & (np.abs(np.where(fail, 0, num)) > FLOAT32_MAX)
            fail = fail | huge
        if f.kind == "int" and num.dtype != np.int64:
            num = num.astype(np.int64)
        if f.min is not None:
            fail = fail | (num < f.min)
        if f.max is not None:
            fail = fail | (num > f.max)
        kind = "an integer" if f.kind == "int" else "a number"
        bounds = f" in [{f.min:g}, {f.max:g}]" if f.min is not None and f.max is not None else ""

        def describe(row: int) -> str:
            if huge[row] and not bounds:
                return (
                    f"{show(row)} is too large (stored as a 32-bit float: at most "
                    f"{FLOAT32_MAX:.4g})"
                )
            return f"{show(row)} is not {kind}{bounds}"

        return num, fail, describe

    if f.kind == "any":
        fail = raw.isna().to_numpy() if f.required else None
        return raw.to_numpy(dtype=object), fail, lambda row: "missing value"

    # "id" and "str": strings; missing is "" (and a failure when required)
    missing = raw.isna().to_numpy()
    if _is_text(raw):
        strings = raw.fillna("").astype(object)
        if f.kind == "id" and n:
            strings = strings.str.strip()  # " u1 " and "u1" are one id
        nonstr = np.zeros(n, dtype=bool)
    else:  # JSON: numbers, lists, ... in a column that should hold strings
        kind = pd.api.types.infer_dtype(raw, skipna=True)
        strings = raw.where(~raw.isna(), "").astype(str).astype(object)
        nonstr = np.zeros(n, dtype=bool)
        if kind not in ("string", "empty", "integer", "mixed-integer"):
            nonstr = ~raw.map(lambda v: isinstance(v, (str, int, np.integer))).to_numpy() & ~missing
        if f.kind == "id" and n:
            strings = strings.str.strip()
    empty = (strings.str.strip() == "").to_numpy() if n else np.zeros(0, dtype=bool)
    fail = nonstr.copy()
    if f.required:
        fail |= missing | empty

    def describe_str(row: int) -> str:
        if nonstr[row]:
            return f"{show(row)} is not a string"
        return "missing value" if missing[row] else "empty value"

    return strings.to_numpy(dtype=object), fail, describe_str


def _booleans(values: pd.Series) -> np.ndarray:
    """Where JSON gave ``true``/``false``: not numbers, though pandas would read 1 and 0."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.ones(len(values), dtype=bool)
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in (
        "boolean",
        "mixed",
        "mixed-integer",
    ):
        return np.fromiter(
            (isinstance(v, (bool, np.bool_)) for v in values), dtype=bool, count=len(values)
        )
    return np.zeros(len(values), dtype=bool)


def _is_text(values: pd.Series) -> bool:
    if not pd.api.types.is_string_dtype(values.dtype):
        return False
    return values.dtype != object or pd.api.types.infer_dtype(values, skipna=True) in (
        "string",
        "empty",
    )


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


# --------------------------------------------------------------------------- problems
def settle(
    problems: list[Problem], *, path: Path, lenient: bool, total: int
) -> int:
    """Raise the first problem, or in lenient mode log them and return how many rows to skip.

    Args:
        problems: every malformed row found (one per row).
        path: the file, named in messages.
        lenient: skip instead of raising.
        total: number of data rows read, to refuse a file in which nothing is valid.

    Raises:
        DataError: the first problem by line (strict), or every row bad (lenient too).
    """
    if not problems:
        return 0
    problems = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
    first = problems[0]
    more = f" ({len(problems) - 1} more malformed rows)" if len(problems) > 1 else ""
    if not lenient or len(problems) >= total:
        prefix = "no valid rows; first: " if lenient else ""
        raise DataError(
            prefix + first.message + more, path=path, line=first.line, field=first.field
        )
    where = f"line {first.line}" if first.line is not None else "a row"
    fld = f", field {first.field!r}" if first.field else ""
    logger.warning(
        "%s: skipped %d malformed rows (first at %s%s: %s)",
        path,
        len(problems),
        where,
        fld,
        first.message,
    )
    return len(problems)
