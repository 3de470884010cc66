"""Delimited text files (CSV, tab-, ``|``- and ``::``-separated) read fast and checked exactly.

The fast path is one ``pandas.read_csv`` call with the C engine and a dtype per column. When it
fails, or its result shows a sign of trouble (a short row, a stray quote, a long row pandas
would truncate or turn into an index), a diagnostic pass finds the line (1-based, header counted)
and field of every malformed row: vectorised per line for unquoted text, record by record with
the :mod:`csv` module when quotes may span lines. A clean file never pays for that pass.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.formats.common import (
    Field,
    Problem,
    Table,
    check_fields,
    decode,
    has_escapes,
    read_bytes,
    settle,
)
from hybridrec.errors import DataError

logger = logging.getLogger(__name__)

_UNIT_SEP = "\x1f"  # stands in for a multi-character separator such as MovieLens 1M's "::"


def read_delimited(
    path: Path,
    fields: Sequence[Field],
    *,
    sep: str = ",",
    names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    quoted: bool = True,
    lenient: bool = False,
) -> Table:
    """Read the columns ``fields`` of a delimited file, typed and validated.

    Args:
        path: the file (``.gz`` is decompressed).
        fields: the columns needed, with their types and constraints.
        sep: field separator; a multi-character one (``"::"``) is supported for files whose
            fields cannot contain it (numbers and codes).
        names: the column names of a file without a header line; None means the first line is
            the header.
        encoding: the encoding the format prescribes (``"utf-8"`` files may start with a BOM).
        quoted: RFC 4180 quoting (``"a, b"``, ``""`` for a quote); False reads quotes literally.
        lenient: skip malformed rows (counted in :attr:`Table.skipped`) instead of raising.

    Returns:
        A :class:`Table` whose frame has one column per field (named ``Field.out``).

    Raises:
        DataError: missing file or column, undecodable bytes, malformed row, naming the file,
            line and field.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.csv"
        >>> _ = p.write_bytes(b'id,name\\r\\n1,"Heat, 1995"\\r\\n')
        >>> read_delimited(p, [Field("id", "int"), Field("name")]).frame["name"].tolist()
        ['Heat, 1995']
    """
    data = read_bytes(path)
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # tolerate a byte-order mark; nothing else changes
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE

    file_sep = sep
    header_names = list(names) if names is not None else None

    def field_at(line: bytes, offset: int) -> str | None:
        text = data.decode(encoding, errors="replace").replace(file_sep, _UNIT_SEP)
        cols = header_names or _header(text, _UNIT_SEP, quoting)
        before = line[:offset].decode(encoding, errors="replace")
        index = _field_index(before, file_sep) if quoted else before.count(file_sep)
        return cols[index] if 0 <= index < len(cols) else None

    text, escaped = decode(data, encoding, path=path, lenient=lenient, field_at=field_at)
    if len(sep) > 1:
        text = text.replace(sep, _UNIT_SEP)
        sep = _UNIT_SEP

    if names is None:
        if not text.strip():
            raise DataError("empty file: no header line", path=path, line=1)
        columns = [c.strip() for c in _header(text, sep, quoting)]
        has_header = True
    else:
        columns = list(names)
        has_header = False
    _check_columns(columns, fields, path=path, has_header=has_header)

    if not escaped:
        frame = _fast(text, columns, fields, sep=sep, quoting=quoting, has_header=has_header)
        if frame is not None:
            typed, bad, _ = check_fields(frame, fields)
            if not bad.any():

                def locate() -> np.ndarray | None:
                    rows, lines, problems = _scan(text, sep, quoting, has_header, len(columns))
                    return None if problems else lines

                return Table(typed.reset_index(drop=True), path=path, locate=locate)

    return _diagnose(
        text,
        columns,
        fields,
        sep=sep,
        quoting=quoting,
        has_header=has_header,
        escaped=escaped,
        path=path,
        lenient=lenient,
    )


def _header(text: str, sep: str, quoting: int) -> list[str]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
    try:
        return next(reader)
    except (StopIteration, csv.Error):
        return []


def _field_index(before: str, sep: str) -> int:
    """0-based index of the field that follows ``before`` in an RFC 4180 line."""
    index, in_quotes = 0, False
    for ch in before:
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == sep and not in_quotes:
            index += 1
    return index


def _check_columns(
    columns: list[str], fields: Sequence[Field], *, path: Path, has_header: bool
) -> None:
    seen: set[str] = set()
    for col in columns:
        if col in seen and any(f.name == col for f in fields):
            raise DataError(f"column {col!r} appears twice in the header", path=path, line=1)
        seen.add(col)
    for f in fields:
        if f.name not in columns:
            found = ", ".join(repr(c) for c in columns[:12])
            raise DataError(
                f"missing column {f.name!r} (the header has: {found})",
                path=path,
                line=1 if has_header else None,
                field=f.name,
            )


def _fast(
    text: str,
    columns: list[str],
    fields: Sequence[Field],
    *,
    sep: str,
    quoting: int,
    has_header: bool,
) -> pd.DataFrame | None:
    """One C-engine ``read_csv`` call; None when it fails or a short row may be hiding."""
    kinds = {f.name: f.kind for f in fields}
    dtype: dict[str, object] = {}
    for col in columns:
        kind = kinds.get(col, "str")
        dtype[col] = np.int64 if kind == "int" else np.float64 if kind == "float" else str
    try:
        with warnings.catch_warnings():
            # pandas *warns* when it drops the extra fields of a row: here that is a failure
            warnings.simplefilter("error")
            frame = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                header=0 if has_header else None,
                names=columns,
                index_col=False,  # never take a first column as the index when rows are long
                dtype=dtype,
                quoting=quoting,
                keep_default_na=False,
                na_values=[],
                engine="c",
                skip_blank_lines=True,
            )
    except (ValueError, OverflowError, pd.errors.ParserError, csv.Error, Warning):
        return None
    if list(frame.columns) != columns or not isinstance(frame.index, pd.RangeIndex):
        return None
    # Two things the C parser lets through: a row with too few fields reads as empty strings at
    # its end (so an empty last field may be a missing one), and a stray quote inside a quoted
    # field (``"a"b"``) is glued to its neighbours. The csv module, strict, tells both apart.
    last = frame[columns[-1]]
    short = pd.api.types.is_string_dtype(last.dtype) and bool((last == "").any())
    quotes = quoting != csv.QUOTE_NONE and '"' in text
    if (short or quotes) and not _consistent(
        text, sep, quoting, has_header, len(columns), len(frame)
    ):
        return None
    return frame


def _consistent(
    text: str, sep: str, quoting: int, has_header: bool, n_columns: int, n_rows: int
) -> bool:
    """Whether a strict csv reading finds ``n_rows`` records of ``n_columns`` fields each."""
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=sep,
        quoting=quoting,
        strict=quoting != csv.QUOTE_NONE,
    )
    try:
        rows = list(reader)  # C-level iteration: no Python code per row
    except csv.Error:
        return False
    if has_header:
        rows = rows[1:]
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    blank = lengths == 0
    for i in np.flatnonzero(lengths == 1):  # a blank line with spaces, or a malformed row
        blank[i] = not rows[i][0].strip()
    lengths = lengths[~blank]
    return len(lengths) == n_rows and bool((lengths == n_columns).all())


def _scan(
    text: str, sep: str, quoting: int, has_header: bool, n_columns: int
) -> tuple[list[list[str]], np.ndarray, list[Problem]]:
    """Records of the file with their first line, and the rows with a wrong number of fields."""
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=sep,
        quoting=quoting,
        strict=quoting != csv.QUOTE_NONE,
    )
    rows: list[list[str]] = []
    lines: list[int] = []
    problems: list[Problem] = []
    prev = 0
    first = has_header
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            problems.append(Problem(prev + 1, None, f"bad quoting ({err})"))
            prev = reader.line_num
            continue
        start, prev = prev + 1, reader.line_num
        if first:
            first = False
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != n_columns:
            problems.append(
                Problem(start, None, f"expected {n_columns} fields, found {len(row)}")
            )
            continue
        rows.append(row)
        lines.append(start)
    return rows, np.asarray(lines, dtype=np.int64), problems


def _diagnose(
    text: str,
    columns: list[str],
    fields: Sequence[Field],
    *,
    sep: str,
    quoting: int,
    has_header: bool,
    escaped: bool,
    path: Path,
    lenient: bool,
) -> Table:
    """The exact pass: every malformed row with its line and field."""
    split = None
    if quoting == csv.QUOTE_NONE or '"' not in text:
        split = _split_lines(text, columns, sep=sep, has_header=has_header, escaped=escaped)
    if split is not None:
        frame, lines, problems = split
    else:
        frame, lines, problems = _split_records(
            text, columns, sep=sep, quoting=quoting, has_header=has_header, escaped=escaped
        )
    total = len(frame) + len(problems)  # every non-blank record, one problem each so far
    typed, bad, explain = check_fields(frame, fields)
    for row in np.flatnonzero(bad):
        fld, message = explain(int(row))
        problems.append(Problem(int(lines[row]), fld, message))
    skipped = settle(problems, path=path, lenient=lenient, total=total)
    keep_mask = ~bad
    return Table(
        typed[keep_mask].reset_index(drop=True),
        path=path,
        skipped=skipped,
        lines=lines[keep_mask],
    )


def _split_lines(
    text: str, columns: list[str], *, sep: str, has_header: bool, escaped: bool
) -> tuple[pd.DataFrame, np.ndarray, list[Problem]] | None:
    """Without quoting a record is a line: count fields per line, vectorised, then parse the
    good lines as text. None when the C parser disagrees on the rows (a lone CR, ...)."""
    raw = np.asarray(text.split("\n"), dtype=object)
    numbers = np.arange(1, len(raw) + 1)
    seps, blank = _line_stats(text, sep, len(raw))
    if blank is None:
        lines = pd.Series(raw, dtype=object)
        blank = (lines.str.strip() == "").to_numpy()
        seps = lines.str.count(re.escape(sep)).to_numpy()
    first = 1 if has_header else 0
    keep = ~blank
    keep[:first] = False
    raw, numbers, counts = raw[keep], numbers[keep], seps[keep] + 1
    wrong = counts != len(columns)
    problems = [
        Problem(int(n), None, f"expected {len(columns)} fields, found {int(c)}")
        for n, c in zip(numbers[wrong], counts[wrong], strict=True)
    ]
    raw, numbers = raw[~wrong], numbers[~wrong]
    if escaped:
        enc = np.fromiter(map(has_escapes, raw), dtype=bool, count=len(raw))
        for line, n in zip(raw[enc], numbers[enc], strict=True):
            fields = line.rstrip("\r").split(sep)
            bad = next(j for j, value in enumerate(fields) if has_escapes(value))
            problems.append(Problem(int(n), columns[bad], "not valid UTF-8"))
        raw, numbers = raw[~enc], numbers[~enc]
    if len(raw) == 0:
        return _empty(columns), numbers, problems
    try:
        frame = pd.read_csv(
            io.StringIO("\n".join(raw)),
            sep=sep,
            header=None,
            names=columns,
            dtype=str,
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=[],
            engine="c",
            skip_blank_lines=False,
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if len(frame) != len(raw):
        return None
    return frame, numbers, problems


def _split_records(
    text: str, columns: list[str], *, sep: str, quoting: int, has_header: bool, escaped: bool
) -> tuple[pd.DataFrame, np.ndarray, list[Problem]]:
    """With quoting a record may span lines: read record by record with the csv module."""
    rows, lines, problems = _scan(text, sep, quoting, has_header, len(columns))
    if escaped:
        keep = []
        for i, row in enumerate(rows):
            bad = next((j for j, value in enumerate(row) if has_escapes(value)), None)
            if bad is None:
                keep.append(i)
            else:
                problems.append(Problem(int(lines[i]), columns[bad], "not valid UTF-8"))
        rows = [rows[i] for i in keep]
        lines = lines[keep]
    frame = pd.DataFrame(rows, columns=columns, dtype=object) if rows else _empty(columns)
    return frame, lines, problems


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


_SPACE_BYTES = np.frombuffer(b" \t\r\n\x0b\x0c", dtype=np.uint8)


def _line_stats(text: str, sep: str, n_lines: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Per line of ``text``: separators, and whether it is blank, with numpy on the bytes.

    (None, None) when the separator is not one ASCII character or the text holds escapes.
    """
    if len(sep) != 1 or ord(sep) > 127:
        return np.zeros(0, dtype=np.int64), None
    try:
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    except UnicodeEncodeError:  # escaped bytes (lenient decoding)
        return np.zeros(0, dtype=np.int64), None
    starts = np.concatenate(([0], np.flatnonzero(data == 10) + 1))
    if len(starts) != n_lines:
        return np.zeros(0, dtype=np.int64), None

    ends = np.append(starts[1:], len(data))

    def per_line(mask: np.ndarray) -> np.ndarray:
        total = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
        return total[ends] - total[starts]

    seps = per_line(data == ord(sep))
    content = per_line(~np.isin(data, _SPACE_BYTES))
    return seps, (content == 0) & (seps == 0)
