"""JSON lines files (one object a line, optionally gzipped), read fast and checked exactly.

The fast path is ``pandas.read_json(lines=True)`` in chunks, keeping only the keys needed. When
it fails or a value is wrong, a diagnostic pass decodes the file line by line to name the line and
key of every malformed record.
"""

from __future__ import annotations

import codecs
import gzip
import json
import logging
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from hybridrec.data.formats.common import (
    Field,
    Problem,
    Table,
    check_fields,
    require_file,
    settle,
)
from hybridrec.errors import DataError

logger = logging.getLogger(__name__)


def read_jsonl(
    path: Path,
    fields: Sequence[Field],
    *,
    lenient: bool = False,
    chunksize: int = 100_000,
) -> Table:
    """Read the keys ``fields`` of a JSON lines file (UTF-8, ``.gz`` decompressed).

    A UTF-8 byte-order mark at the start of the file is skipped, as for CSV files.

    Args:
        path: the file.
        fields: the keys needed, with their types and constraints.
        lenient: skip malformed records (counted in :attr:`Table.skipped`) instead of raising.
        chunksize: records parsed at a time, to bound memory on large files.

    Returns:
        A :class:`Table` with one column per field (named ``Field.out``).

    Raises:
        DataError: missing file, corrupt gzip, undecodable bytes, invalid JSON, a missing or
            wrong value, naming the file, line and key.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.jsonl"
        >>> _ = p.write_text('{"u": "a", "i": 1}\\n{"u": "b", "i": 2}\\n')
        >>> read_jsonl(p, [Field("u", "id"), Field("i", "int")]).frame["i"].tolist()
        [1, 2]
    """
    require_file(path)
    frame = _fast(path, fields, chunksize)
    if frame is not None:
        typed, bad, _ = check_fields(frame, fields)
        if not bad.any():
            return Table(
                typed.reset_index(drop=True),
                path=path,
                locate=lambda: _diagnose(path, fields, lenient=True, quiet=True)[1],
            )
    table, _ = _diagnose(path, fields, lenient=lenient)
    return table


def _fast(path: Path, fields: Sequence[Field], chunksize: int) -> pd.DataFrame | None:
    names = [f.name for f in fields]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # odd records are found and named by _diagnose
            parts = _read_chunks(path, names, chunksize)
    except (ValueError, TypeError, UnicodeDecodeError, OSError, EOFError, zlib.error):
        return None
    if not parts:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in names})
    return pd.concat(parts, ignore_index=True)


def _read_chunks(path: Path, names: list[str], chunksize: int) -> list[pd.DataFrame]:
    parts: list[pd.DataFrame] = []
    with pd.read_json(
        path,
        lines=True,
        dtype=False,
        chunksize=chunksize,
        compression="gzip" if path.name.endswith(".gz") else None,
        encoding="utf-8-sig",  # a byte-order mark is skipped
        encoding_errors="strict",
    ) as reader:
        for chunk in reader:
            if chunk.empty:
                continue
            for name in names:
                if name not in chunk.columns:
                    chunk[name] = None
            parts.append(chunk[names])
    return parts


def _open(path: Path) -> IO[bytes]:
    """The file's bytes (decompressed if ``.gz``), after a UTF-8 byte-order mark if any."""
    gz = path.name.endswith(".gz")
    fh: IO[bytes] = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115
    try:
        if fh.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            fh.seek(0)
    except BaseException:
        fh.close()
        raise
    return fh  # closed by the caller's with-block


def _diagnose(
    path: Path, fields: Sequence[Field], *, lenient: bool, quiet: bool = False
) -> tuple[Table, np.ndarray | None]:
    """Line by line: every malformed record with its line and key."""
    values: dict[str, list[Any]] = {f.name: [] for f in fields}
    present = {f.name: False for f in fields}
    lines: list[int] = []
    problems: list[Problem] = []
    total = 0
    try:
        with _open(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                total += 1
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    problems.append(
                        Problem(
                            lineno,
                            _key_before(raw, err.start),
                            f"not valid UTF-8: byte 0x{raw[err.start]:02x} at column "
                            f"{err.start + 1}",
                        )
                    )
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as err:
                    problems.append(
                        Problem(lineno, None, f"invalid JSON ({err.msg} at column {err.colno})")
                    )
                    continue
                if not isinstance(obj, dict):
                    problems.append(Problem(lineno, None, "not a JSON object"))
                    continue
                for name, column in values.items():
                    value = obj.get(name)
                    column.append(value)
                    if value is not None:
                        present[name] = True
                lines.append(lineno)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read the file ({err})", path=path) from err
    for f in fields:
        if f.required and lines and not present[f.name]:
            raise DataError(
                f"missing key {f.name!r}: absent (or null) in every record",
                path=path,
                line=lines[0],
                field=f.name,
            )
    line_arr = np.asarray(lines, dtype=np.int64)
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in values.items()})
    typed, bad, explain = check_fields(frame, fields)
    for row in np.flatnonzero(bad):
        key, message = explain(int(row))
        problems.append(Problem(int(line_arr[row]), key, message))
    if quiet:
        return Table(typed, path=path), (line_arr if not problems else None)
    skipped = settle(problems, path=path, lenient=lenient, total=total)
    keep = ~bad
    table = Table(
        typed[keep].reset_index(drop=True), path=path, skipped=skipped, lines=line_arr[keep]
    )
    return table, line_arr[keep]


def _key_before(raw: bytes, offset: int) -> str | None:
    """The JSON key whose value holds byte ``offset`` of a line, when it can be told."""
    head = raw[:offset].decode("utf-8", errors="replace")
    pos = head.rfind('":')
    if pos < 0:
        return None
    start = head.rfind('"', 0, pos)
    return head[start + 1 : pos] if start >= 0 else None

