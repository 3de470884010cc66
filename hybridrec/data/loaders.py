"""``load_dataset``: a dataset by name (embedded, cached or downloaded) or from a local path.

Names:

* ``"ml-latest-small"``: MovieLens latest-small, embedded in hybridrec (no network needed).
* ``"ml-100k"``, ``"ml-1m"``: MovieLens 100K / 1M from the cache, downloaded from GroupLens if
  missing (see :mod:`hybridrec.data.download`).
* ``"amazon2018:<Category>"``, e.g. ``"amazon2018:Magazine_Subscriptions"``: Amazon Review Data
  2018, 5-core reviews plus metadata, from the cache or downloaded.

Paths (a :class:`~pathlib.Path`, or a string that is not one of the names) are read in the format
detected from their content, or the one given with ``format=``:

=============== ===================================================================
format          what is detected
=============== ===================================================================
``ml-latest``   a folder with ``ratings.csv`` and ``movies.csv`` (or ``.csv.gz``)
``ml-100k``     a folder with ``u.data`` and ``u.item``
``ml-1m``       a folder with ``ratings.dat`` and ``movies.dat``
``amazon2018``  a folder with ``*_5.json.gz`` (and ``meta_*.json.gz``), or such a file
``csv``         a ``.csv`` / ``.tsv`` file (``.gz`` too): see ``columns=``
``jsonl``       a ``.jsonl`` / ``.json`` / ``.ndjson`` file (``.gz`` too): see ``columns=``
=============== ===================================================================

In every format, white space around user and item ids is removed (``" u1 "`` is the user
``"u1"``), ratings must be finite numbers that fit a float32 (``1e39``, ``inf`` and ``nan`` are
malformed rows) and timestamps integers within 2**53 seconds. Files without a time column
(generic CSV / JSON lines) give a dataset with ``has_timestamps`` False: a warning is logged,
the row order stands in for time, and the time-based splits hold out at random (see
:mod:`hybridrec.data.splits`).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybridrec.data.dataset import Dataset
from hybridrec.data.formats.amazon import REVIEW_SUFFIX, read_amazon2018
from hybridrec.data.formats.common import Frames
from hybridrec.data.formats.generic import file_format, read_generic
from hybridrec.data.formats.movielens import (
    find_file,
    read_ml_1m,
    read_ml_100k,
    read_ml_latest,
)
from hybridrec.errors import DataError

logger = logging.getLogger(__name__)

EMBEDDED = ("ml-latest-small",)
"""Datasets shipped inside hybridrec."""

DOWNLOADABLE = ("ml-100k", "ml-1m")
"""Named datasets fetched from their publishers (plus ``amazon2018:<Category>``)."""

AMAZON_PREFIX = "amazon2018:"

DEFAULT_LIKE_THRESHOLD = 4.0

READERS: dict[str, Callable[..., Frames]] = {
    "ml-latest": read_ml_latest,
    "ml-100k": read_ml_100k,
    "ml-1m": read_ml_1m,
    "amazon2018": read_amazon2018,
    "csv": read_generic,
    "jsonl": read_generic,
}
"""Format name -> reader (a folder or file in, :class:`Frames` out)."""

_ALIASES = {
    "ml-latest-small": "ml-latest",
    "movielens-latest": "ml-latest",
    "ml-25m": "ml-latest",
    "ml-32m": "ml-latest",
    "amazon": "amazon2018",
    "tsv": "csv",
    "json": "jsonl",
    "ndjson": "jsonl",
}

_FOLDER_FORMATS = ("ml-latest", "ml-100k", "ml-1m", "amazon2018")


def dataset_names() -> list[str]:
    """The names :func:`load_dataset` knows.

    Example:
        >>> dataset_names()
        ['ml-latest-small', 'ml-100k', 'ml-1m', 'amazon2018:<Category>']
    """
    return [*EMBEDDED, *DOWNLOADABLE, f"{AMAZON_PREFIX}<Category>"]


def embedded_path(name: str = "ml-latest-small") -> Path:
    """The folder of a dataset embedded in hybridrec.

    Example:
        >>> sorted(p.name for p in embedded_path().iterdir())
        ['README.txt', 'links.csv.gz', 'movies.csv.gz', 'ratings.csv.gz', 'tags.csv.gz']
    """
    if name not in EMBEDDED:
        raise ValueError(f"no embedded dataset {name!r}; embedded: {', '.join(EMBEDDED)}")
    folder = Path(__file__).resolve().parent.parent / "datasets" / name
    if not folder.is_dir():
        raise DataError("embedded dataset missing (was hybridrec installed with its data?)",
                        path=folder)
    return folder


def detect_format(path: Path) -> str:
    """The format of a folder or file, from the files it holds or its name.

    Raises:
        DataError: nothing recognisable.

    Example:
        >>> detect_format(embedded_path())
        'ml-latest'
    """
    if path.is_dir():
        if find_file(path, "ratings.csv") and find_file(path, "movies.csv"):
            return "ml-latest"
        if find_file(path, "u.data") and find_file(path, "u.item"):
            return "ml-100k"
        if find_file(path, "ratings.dat") and find_file(path, "movies.dat"):
            return "ml-1m"
        if any(path.glob(f"*{REVIEW_SUFFIX}")):
            return "amazon2018"
        raise DataError(
            "cannot tell the dataset format of this folder (expected ratings.csv+movies.csv, "
            "u.data+u.item, ratings.dat+movies.dat or *_5.json.gz); pass format=...",
            path=path,
        )
    if not path.exists():
        raise DataError("no such file or folder", path=path)
    if path.name.endswith(REVIEW_SUFFIX):
        return "amazon2018"
    try:
        parent = detect_format(path.parent)
    except DataError:
        parent = None
    if parent in ("ml-latest", "ml-100k", "ml-1m"):
        return parent
    fmt = file_format(path)
    if fmt is None:
        raise DataError(
            "cannot tell the format of this file (expected .csv, .tsv, .jsonl or .json, "
            "optionally .gz); pass format='csv' or format='jsonl'",
            path=path,
        )
    return fmt


def load_dataset(
    name_or_path: str | Path,
    *,
    format: str | None = None,
    like_threshold: float | None = None,
    lenient: bool = False,
    cache_dir: str | Path | None = None,
    download: bool = True,
    k_core: int | None = None,
    **kwargs: Any,
) -> Dataset:
    """Load a dataset by name or from a folder or file.

    A string that is one of the names (see :func:`dataset_names`) is that dataset, unless a
    file or folder of that name exists (relative to the current folder): then that local copy
    is read, and a warning says so. A :class:`~pathlib.Path` is always a path.

    Args:
        name_or_path: a dataset name or a path.
        format: the format of a path (default: detected). One of ``ml-latest``, ``ml-100k``,
            ``ml-1m``, ``amazon2018``, ``csv``, ``jsonl``; ``tsv`` is ``csv`` split on tabs
            (unless ``sep=`` says otherwise), for any file name (``.dat``, ``.txt``, ...).
        like_threshold: ratings at or above it count as liked (default 4.0).
        lenient: skip malformed rows (logged with their count, and recorded in
            ``dataset.skipped_rows``) instead of raising :class:`DataError`.
        cache_dir: the download cache (default ``$HYBRIDREC_CACHE/datasets``, or
            ``~/.cache/hybridrec/datasets`` when the variable is unset).
        download: fetch a named dataset missing from the cache.
        k_core: keep the k-core (users and items with at least this many interactions, see
            :meth:`Dataset.k_core`); None keeps all.
        **kwargs: options of the format reader, for example ``columns={"user_id": "uid",
            "item_id": "asin", "rating": "stars", "timestamp": "ts"}``, ``items=``,
            ``item_columns=``, ``sep=`` for ``csv``/``jsonl``; ``tags=``, ``tag_limit=`` for
            ``ml-latest``; ``category=`` for ``amazon2018``; ``progress=`` and ``timeout=`` for
            downloads.

    Returns:
        The :class:`Dataset`, with ``skipped_rows`` (malformed rows skipped in lenient mode) and
        ``load_notes`` (counts such as repeated metadata lines) set.

    Raises:
        DataError: a missing file or column, a malformed row, undecodable bytes, duplicate ids:
            the message names the file, line and field.
        DownloadError: a named dataset could not be fetched; the message names the URLs to
            download by hand and how to pass the folder instead.
        TypeError: an option the format does not take.

    Example:
        >>> ds = load_dataset("ml-latest-small")
        >>> ds.n_interactions, ds.n_users, ds.n_items
        (100836, 610, 9742)
        >>> ds.item("1").title
        'Toy Story (1995)'
    """
    started = time.perf_counter()
    progress = kwargs.pop("progress", None)
    timeout = kwargs.pop("timeout", 60.0)
    name: str | None = None
    if (
        isinstance(name_or_path, str)
        and _is_name(name_or_path)
        and Path(name_or_path).expanduser().exists()
    ):
        logger.warning(
            "%r is a dataset name but also a local %s (%s); reading the local one (run from "
            "another folder to use the named dataset)",
            name_or_path,
            "folder" if Path(name_or_path).expanduser().is_dir() else "file",
            Path(name_or_path).expanduser().resolve(),
        )
        name_or_path = Path(name_or_path)
    if isinstance(name_or_path, str) and _is_name(name_or_path):
        name = name_or_path
        path, fmt = _resolve_name(
            name, cache_dir=cache_dir, download=download, progress=progress, timeout=timeout
        )
        if fmt == "amazon2018":
            kwargs.setdefault("category", name[len(AMAZON_PREFIX) :])
        if format is not None and _format_name(format) != fmt:
            raise ValueError(f"{name!r} is in format {fmt!r}, not {format!r}")
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise DataError(
                f"no such file or folder, and not a dataset name "
                f"(known names: {', '.join(dataset_names())})",
                path=path,
            )
        fmt = _format_name(format) if format is not None else detect_format(path)
        if fmt in _FOLDER_FORMATS and path.is_file():
            if fmt == "amazon2018" and path.name.endswith(REVIEW_SUFFIX):
                kwargs.setdefault("category", path.name[: -len(REVIEW_SUFFIX)])
            path = path.parent
    if fmt in ("csv", "jsonl"):
        kwargs["format"] = fmt
        if format == "tsv" and kwargs.get("sep") is None:
            kwargs["sep"] = "\t"  # format="tsv" means tab-separated, whatever the file's name
    frames = _call_reader(fmt, path, lenient=lenient, kwargs=kwargs)
    if name is not None:
        frames.name = name
    dataset = Dataset.from_frames(
        frames.interactions,
        frames.items,
        frames.users,
        name=frames.name,
        like_threshold=DEFAULT_LIKE_THRESHOLD if like_threshold is None else like_threshold,
        rating_scale=frames.rating_scale,
        source=frames.source,
    )
    dataset.skipped_rows = int(frames.skipped_rows)
    dataset.load_notes = {
        **frames.notes,
        "rows_read": len(frames.interactions),
        "repeated_pairs_dropped": len(frames.interactions) - dataset.n_interactions,
    }
    if frames.skipped_rows:
        logger.warning(
            "%s: %d malformed rows skipped (lenient mode)", frames.source, frames.skipped_rows
        )
    logger.info(
        "loaded %r in %.2f s: %d users, %d items, %d interactions",
        dataset.name,
        time.perf_counter() - started,
        dataset.n_users,
        dataset.n_items,
        dataset.n_interactions,
    )
    if k_core is not None:
        dataset = dataset.k_core(k_core)
    return dataset


def _is_name(value: str) -> bool:
    return value in EMBEDDED or value in DOWNLOADABLE or value.startswith(AMAZON_PREFIX)


def _format_name(format: str) -> str:
    fmt = _ALIASES.get(format, format)
    if fmt not in READERS:
        known = ", ".join(READERS)
        raise ValueError(f"unknown format {format!r}; known formats: {known}")
    return fmt


def _resolve_name(
    name: str,
    *,
    cache_dir: str | Path | None,
    download: bool,
    progress: bool | None,
    timeout: float,
) -> tuple[Path, str]:
    if name in EMBEDDED:
        return embedded_path(name), "ml-latest"
    from hybridrec.data.download import DownloadError, fetch_dataset

    try:
        folder = fetch_dataset(
            name,
            Path(cache_dir) if cache_dir is not None else None,
            download=download,
            progress=progress,
            timeout=timeout,
        )
    except DownloadError as err:
        if not download:
            raise  # "not in the cache": its message already says what to do
        raise type(err)(f"download failed ({err}); {_manual_download_hint(name)}") from err
    return folder, ("amazon2018" if name.startswith(AMAZON_PREFIX) else name)


def _manual_download_hint(name: str) -> str:
    """How to get a named dataset by hand (when downloading fails, e.g. without network)."""
    from hybridrec.data.download import MOVIELENS, amazon2018_files

    then = (
        "and pass the folder: hybridrec data info /path/to/folder "
        "(in Python: load_dataset(Path('/path/to/folder')))"
    )
    if name.startswith(AMAZON_PREFIX):
        try:
            urls = " and ".join(f.url for f in amazon2018_files(name[len(AMAZON_PREFIX) :]))
        except ValueError:
            return f"download the files yourself {then}"
        return f"download the files yourself from {urls} into one folder {then}"
    if name in MOVIELENS:
        return f"download {MOVIELENS[name].url} yourself, unzip it {then}"
    return f"download the files yourself {then}"


def _call_reader(fmt: str, path: Path, *, lenient: bool, kwargs: dict[str, Any]) -> Frames:
    reader = READERS[fmt]
    accepted = [
        p for p in inspect.signature(reader).parameters if p not in ("folder", "path", "lenient")
    ]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"format {fmt!r} takes no option(s) {unknown}; its options: {', '.join(accepted)}"
        )
    return reader(path, lenient=lenient, **kwargs)
