"""MovieLens in its three published layouts: "latest" (CSV), 100K (``u.*``) and 1M (``*.dat``).

* latest / latest-small (also 25M, 32M): UTF-8 RFC 4180 CSV with CRLF line ends,
  ``ratings.csv`` (userId,movieId,rating,timestamp; 0.5-5 stars), ``movies.csv``
  (movieId,title,genres with ``|``), optional ``tags.csv`` and ``links.csv``. Every file may also
  be gzipped (``ratings.csv.gz``), as in the copy embedded in hybridrec.
* 100K: ``u.data`` (tab-separated user, item, rating, timestamp), ``u.item`` (Latin-1,
  ``|``-separated, 19 genre flags), ``u.user`` (id|age|gender|occupation|zip), ``u.genre``.
* 1M: Latin-1, ``::``-separated ``ratings.dat``, ``movies.dat`` and ``users.dat``.

The 100K and 1M catalogues (``u.item``, ``movies.dat``) are Latin-1 as published, but copies
re-saved as UTF-8 circulate: a catalogue whose bytes are valid UTF-8 and not all ASCII is read
as UTF-8 (a Latin-1 text is practically never valid multi-byte UTF-8), any other as Latin-1;
which one is logged (info). An explicit ``encoding=`` is used for every file instead.

Ids are integers in every layout (white space around them is accepted and ignored); ratings are
checked against the published scale, timestamps must be integers.

Catalogue columns: ``item_id``, ``title`` (as published, year included), ``title_clean``
(without the year), ``year`` (nullable Int64), ``genres`` (list of str), plus ``tags``,
``imdb_id``, ``tmdb_id`` (latest) or ``release_date``, ``imdb_url`` (100K).
"""

from __future__ import annotations

import codecs
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.formats.common import (
    Field,
    Frames,
    Problem,
    Table,
    check_fields,
    decode,
    read_bytes,
    settle,
)
from hybridrec.data.formats.delimited import read_delimited
from hybridrec.errors import DataError

logger = logging.getLogger(__name__)

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""Genre names of the 19 flags of ``u.item``, in the order of ``u.genre``."""

ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
"""Occupation names of the codes 0-20 of ``users.dat`` (from the 1M README)."""

ML1M_AGE_GROUPS = {1: "Under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49",
                   50: "50-55", 56: "56+"}
"""Age-group labels of the age codes of ``users.dat`` (from the 1M README)."""

NO_GENRES = "(no genres listed)"

_YEAR = re.compile(r"\s*\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")


def find_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or its gzipped copy ``folder/name.gz``, whichever exists."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def catalogue_encoding(path: Path, data: bytes, encoding: str | None = None) -> str:
    """The encoding to read a 100K/1M catalogue (``u.item``, ``movies.dat``) with.

    ``encoding`` when given; else UTF-8 when ``data`` is valid UTF-8 and not all ASCII (a copy
    re-saved as UTF-8: valid multi-byte UTF-8 sequences are practically never intended
    Latin-1 text), else Latin-1, the published encoding. The choice is logged (info).

    Example:
        >>> catalogue_encoding(Path("u.item"), "Misérables".encode("utf-8"))
        'utf-8-sig'
        >>> catalogue_encoding(Path("u.item"), "Misérables".encode("latin-1"))
        'latin-1'
    """
    if encoding is not None:
        logger.info("%s: read as %s (the encoding given)", path, encoding)
        utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        return "utf-8-sig" if utf8 else encoding
    if data.isascii():
        return "latin-1"  # the same text in either
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        logger.info("%s: read as Latin-1, the published encoding of this file", path)
        return "latin-1"
    logger.info(
        "%s: read as UTF-8: its text is valid UTF-8 and not all ASCII, so it is a copy "
        "re-saved as UTF-8 (the published encoding is Latin-1; pass encoding= to override)",
        path,
    )
    return "utf-8-sig"  # a byte-order mark, if any, is not part of the first line


def _check_encoding(encoding: str | None) -> None:
    if encoding is None:
        return
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"unknown encoding {encoding!r}") from None


def _need(folder: Path, name: str) -> Path:
    found = find_file(folder, name)
    if found is None:
        raise DataError("file not found", path=folder / name)
    return found


def split_title_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The year at the end of MovieLens titles and the titles without it.

    Example:
        >>> year, clean = split_title_year(pd.Series(["Heat (1995)", "Babylon 5"]))
        >>> year.tolist(), clean.tolist()
        ([1995, <NA>], ['Heat', 'Babylon 5'])
    """
    text = titles.astype(str)
    year = pd.to_numeric(text.str.extract(_YEAR, expand=False), errors="coerce").astype("Int64")
    clean = text.str.replace(_YEAR, "", regex=True).str.strip()
    return year, clean.astype(object)


def _interactions(table: Table) -> pd.DataFrame:
    f = table.frame
    return pd.DataFrame(
        {
            "user_id": f["user_id"].to_numpy(),
            "item_id": f["item_id"].to_numpy(),
            "rating": f["rating"].to_numpy(np.float32),
            "timestamp": f["timestamp"].to_numpy(np.int64),
        }
    )


def _require_rows(table: Table, what: str) -> None:
    if len(table.frame) == 0:
        raise DataError(f"no {what} in the file", path=table.path)


# --------------------------------------------------------------------------- latest
def read_ml_latest(
    folder: Path, *, lenient: bool = False, tags: bool = True, tag_limit: int = 10
) -> Frames:
    """Read a MovieLens "latest" folder (latest-small, 25M, 32M; files plain or gzipped).

    Args:
        folder: the folder with ``ratings.csv`` and ``movies.csv`` (``.gz`` accepted).
        lenient: skip malformed rows instead of raising.
        tags: aggregate ``tags.csv`` into a ``tags`` column of the catalogue. Tags carry
            timestamps; a strict temporal protocol may want ``tags=False``.
        tag_limit: most tags kept per movie (distinct, case-insensitive, most frequent first).

    Example:
        >>> from hybridrec.data.loaders import embedded_path
        >>> frames = read_ml_latest(embedded_path("ml-latest-small"))
        >>> len(frames.interactions), len(frames.items)
        (100836, 9742)
    """
    ratings = read_delimited(
        _need(folder, "ratings.csv"),
        [
            Field("userId", "int", rename="user_id"),
            Field("movieId", "int", rename="item_id"),
            Field("rating", "float", min=0.5, max=5.0),
            Field("timestamp", "int"),
        ],
        lenient=lenient,
    )
    _require_rows(ratings, "ratings")
    movies = read_delimited(
        _need(folder, "movies.csv"),
        [
            Field("movieId", "int", rename="item_id"),
            Field("title"),
            Field("genres"),
        ],
        lenient=lenient,
    ).drop_duplicates("item_id", lenient=lenient, what="movieId", field="movieId")
    skipped = ratings.skipped + movies.skipped

    m = movies.frame
    year, clean = split_title_year(m["title"])
    genres = [[] if g == NO_GENRES else [x for x in g.split("|") if x] for g in m["genres"]]
    items = pd.DataFrame(
        {
            "item_id": m["item_id"].to_numpy(),
            "title": m["title"].to_numpy(dtype=object),
            "title_clean": clean.to_numpy(dtype=object),
            "year": year.array,
            "genres": pd.Series(genres, dtype=object).to_numpy(),
        }
    )

    tags_path = find_file(folder, "tags.csv")
    if tags and tags_path is not None:
        tag_table = read_delimited(
            tags_path,
            [
                Field("userId", "int", rename="user_id"),
                Field("movieId", "int", rename="item_id"),
                Field("tag"),
                Field("timestamp", "int"),
            ],
            lenient=lenient,
        )
        skipped += tag_table.skipped
        items["tags"] = aggregate_tags(tag_table.frame, items["item_id"], limit=tag_limit)

    links_path = find_file(folder, "links.csv")
    if links_path is not None:
        links = read_delimited(
            links_path,
            [
                Field("movieId", "int", rename="item_id"),
                Field("imdbId", required=False, rename="imdb_id"),
                Field("tmdbId", required=False, rename="tmdb_id"),
            ],
            lenient=lenient,
        ).drop_duplicates("item_id", lenient=lenient, what="movieId", field="movieId")
        skipped += links.skipped
        linked = links.frame.set_index("item_id").reindex(items["item_id"])
        items["imdb_id"] = linked["imdb_id"].fillna("").to_numpy(dtype=object)
        items["tmdb_id"] = linked["tmdb_id"].fillna("").to_numpy(dtype=object)

    return Frames(
        interactions=_interactions(ratings),
        items=items,
        users=None,
        name=folder.name,
        rating_scale=(0.5, 5.0),
        skipped_rows=skipped,
        source=folder,
    )


def aggregate_tags(tags: pd.DataFrame, item_ids: pd.Series, *, limit: int = 10) -> np.ndarray:
    """Per item, its distinct tags (case-insensitive), most frequent first, at most ``limit``.

    Ties keep the order in which the tags first appear; the first spelling seen is shown.

    Example:
        >>> t = pd.DataFrame({"item_id": [1, 1, 1, 2], "tag": ["dark", "funny", "Funny", "x"]})
        >>> aggregate_tags(t, pd.Series([1, 2, 3])).tolist()
        [['funny', 'dark'], ['x'], []]
    """
    out = np.empty(len(item_ids), dtype=object)
    for i in range(len(out)):
        out[i] = []
    if len(tags) == 0:
        return out
    t = pd.DataFrame(
        {
            "item_id": tags["item_id"].to_numpy(),
            "tag": tags["tag"].astype(str).str.strip().to_numpy(dtype=object),
        }
    )
    t = t[t["tag"] != ""]
    t["key"] = t["tag"].str.lower()
    t["order"] = np.arange(len(t))
    grouped = (
        t.groupby(["item_id", "key"], sort=False)
        .agg(n=("tag", "size"), tag=("tag", "first"), order=("order", "min"))
        .reset_index()
        .sort_values(["item_id", "n", "order"], ascending=[True, False, True], kind="stable")
    )
    grouped = grouped.groupby("item_id", sort=False).head(limit)
    lists = grouped.groupby("item_id", sort=False)["tag"].agg(list)
    pos = pd.Index(item_ids).get_indexer(lists.index)
    unknown = int((pos < 0).sum())
    if unknown:
        logger.info("%d tagged movies are not in the catalogue; their tags are ignored", unknown)
    for p, value in zip(pos, lists.to_numpy(), strict=True):
        if p >= 0:
            out[p] = value
    return out


# --------------------------------------------------------------------------- 100K
def read_ml_100k(folder: Path, *, lenient: bool = False, encoding: str | None = None) -> Frames:
    """Read a MovieLens 100K folder (``u.data``, ``u.item``, optional ``u.user``, ``u.genre``).

    Args:
        folder: the folder.
        lenient: skip malformed rows instead of raising.
        encoding: the encoding of every file; default Latin-1 as published, with ``u.item``
            read as UTF-8 when it is valid UTF-8 (see :func:`catalogue_encoding`).

    Example:
        >>> frames = read_ml_100k(Path("ml-100k"))  # doctest: +SKIP
        >>> len(frames.interactions)  # doctest: +SKIP
        100000
    """
    _check_encoding(encoding)
    ratings = read_delimited(
        _need(folder, "u.data"),
        [
            Field("user_id", "int"),
            Field("item_id", "int"),
            Field("rating", "int", min=1, max=5),
            Field("timestamp", "int"),
        ],
        sep="\t",
        names=["user_id", "item_id", "rating", "timestamp"],
        encoding=encoding or "latin-1",
        quoted=False,
        lenient=lenient,
    )
    _require_rows(ratings, "ratings")
    genres = _ml100k_genres(folder, lenient=lenient, encoding=encoding)
    item_path = _need(folder, "u.item")
    flag_names = list(genres)  # the flag columns are named after their genre
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *flag_names]
    movies = read_delimited(
        item_path,
        [
            Field("item_id", "int"),
            Field("title"),
            Field("release_date", required=False),
            Field("imdb_url", required=False),
            *[Field(n, "int", min=0, max=1) for n in flag_names],
        ],
        sep="|",
        names=names,
        encoding=catalogue_encoding(item_path, read_bytes(item_path), encoding),
        quoted=False,
        lenient=lenient,
    ).drop_duplicates("item_id", lenient=lenient, what="movie id")
    skipped = ratings.skipped + movies.skipped

    m = movies.frame
    year, clean = split_title_year(m["title"])
    released = pd.to_datetime(m["release_date"], format="%d-%b-%Y", errors="coerce")
    year = year.fillna(pd.Series(released.dt.year, index=year.index).astype("Int64"))
    flags = m[flag_names].to_numpy(dtype=bool)
    names_arr = np.asarray(genres, dtype=object)
    genre_lists = np.empty(len(m), dtype=object)
    for i, row in enumerate(flags):  # one per movie, not per rating
        genre_lists[i] = names_arr[row].tolist()
    items = pd.DataFrame(
        {
            "item_id": m["item_id"].to_numpy(),
            "title": m["title"].to_numpy(dtype=object),
            "title_clean": clean.to_numpy(dtype=object),
            "year": year.array,
            "genres": genre_lists,
            "release_date": m["release_date"].to_numpy(dtype=object),
            "imdb_url": m["imdb_url"].to_numpy(dtype=object),
        }
    )

    users = None
    user_path = find_file(folder, "u.user")
    if user_path is not None:
        table = read_delimited(
            user_path,
            [
                Field("user_id", "int"),
                Field("age", "int", min=0, max=150),
                Field("gender"),
                Field("occupation"),
                Field("zip_code", required=False),
            ],
            sep="|",
            names=["user_id", "age", "gender", "occupation", "zip_code"],
            encoding=encoding or "latin-1",
            quoted=False,
            lenient=lenient,
        ).drop_duplicates("user_id", lenient=lenient, what="user id")
        skipped += table.skipped
        users = table.frame
    return Frames(
        interactions=_interactions(ratings),
        items=items,
        users=users,
        name="ml-100k",
        rating_scale=(1.0, 5.0),
        skipped_rows=skipped,
        source=folder,
    )


def _ml100k_genres(folder: Path, *, lenient: bool, encoding: str | None) -> tuple[str, ...]:
    """Genre names in flag order: from ``u.genre`` when present, else the published list."""
    path = find_file(folder, "u.genre")
    if path is None:
        return ML100K_GENRES
    table = read_delimited(
        path,
        [Field("genre"), Field("index", "int", min=0)],
        sep="|",
        names=["genre", "index"],
        encoding=encoding or "latin-1",
        quoted=False,
        lenient=lenient,
    )
    g = table.frame.sort_values("index")
    if g["index"].tolist() != list(range(len(g))) or not len(g):
        raise DataError("genre indexes are not 0, 1, 2, ...", path=path, field="index")
    return tuple(g["genre"])


# --------------------------------------------------------------------------- 1M
def read_ml_1m(folder: Path, *, lenient: bool = False, encoding: str | None = None) -> Frames:
    """Read a MovieLens 1M folder (``ratings.dat``, ``movies.dat``, optional ``users.dat``).

    Args:
        folder: the folder.
        lenient: skip malformed rows instead of raising.
        encoding: the encoding of every file; default Latin-1 as published, with
            ``movies.dat`` read as UTF-8 when it is valid UTF-8 (see
            :func:`catalogue_encoding`).

    Example:
        >>> frames = read_ml_1m(Path("ml-1m"))  # doctest: +SKIP
        >>> len(frames.interactions)  # doctest: +SKIP
        1000209
    """
    _check_encoding(encoding)
    ratings = read_delimited(
        _need(folder, "ratings.dat"),
        [
            Field("UserID", "int", rename="user_id"),
            Field("MovieID", "int", rename="item_id"),
            Field("Rating", "int", min=1, max=5, rename="rating"),
            Field("Timestamp", "int", rename="timestamp"),
        ],
        sep="::",
        names=["UserID", "MovieID", "Rating", "Timestamp"],
        encoding=encoding or "latin-1",
        quoted=False,
        lenient=lenient,
    )
    _require_rows(ratings, "ratings")
    movies = read_ml1m_movies(
        _need(folder, "movies.dat"), lenient=lenient, encoding=encoding
    ).drop_duplicates("item_id", lenient=lenient, what="MovieID", field="MovieID")
    skipped = ratings.skipped + movies.skipped
    m = movies.frame
    year, clean = split_title_year(m["title"])
    genres = [[x for x in g.split("|") if x] for g in m["genres"]]
    items = pd.DataFrame(
        {
            "item_id": m["item_id"].to_numpy(),
            "title": m["title"].to_numpy(dtype=object),
            "title_clean": clean.to_numpy(dtype=object),
            "year": year.array,
            "genres": pd.Series(genres, dtype=object).to_numpy(),
        }
    )

    users = None
    user_path = find_file(folder, "users.dat")
    if user_path is not None:
        table = read_delimited(
            user_path,
            [
                Field("UserID", "int", rename="user_id"),
                Field("Gender", rename="gender"),
                Field("Age", "int", min=0, max=150, rename="age"),
                Field("Occupation", "int", min=0, max=len(ML1M_OCCUPATIONS) - 1,
                      rename="occupation"),
                Field("Zip-code", required=False, rename="zip_code"),
            ],
            sep="::",
            names=["UserID", "Gender", "Age", "Occupation", "Zip-code"],
            encoding=encoding or "latin-1",
            quoted=False,
            lenient=lenient,
        ).drop_duplicates("user_id", lenient=lenient, what="UserID", field="UserID")
        skipped += table.skipped
        u = table.frame
        users = pd.DataFrame(
            {
                "user_id": u["user_id"].to_numpy(),
                "gender": u["gender"].to_numpy(dtype=object),
                "age": u["age"].to_numpy(),
                "age_group": u["age"].map(ML1M_AGE_GROUPS).fillna("").to_numpy(dtype=object),
                "occupation": np.asarray(ML1M_OCCUPATIONS, dtype=object)[u["occupation"]],
                "zip_code": u["zip_code"].to_numpy(dtype=object),
            }
        )
    return Frames(
        interactions=_interactions(ratings),
        items=items,
        users=users,
        name="ml-1m",
        rating_scale=(1.0, 5.0),
        skipped_rows=skipped,
        source=folder,
    )


_ML1M_MOVIE = re.compile(r"^(\d+)::(.*)::([^:]*)$")


def read_ml1m_movies(path: Path, *, lenient: bool = False, encoding: str | None = None) -> Table:
    """Read ``movies.dat`` (``MovieID::Title::Genres``; Latin-1, or UTF-8 when the file is valid
    UTF-8, or ``encoding``: see :func:`catalogue_encoding`).

    Titles may contain ``:`` (even end with one), so each line is matched as "digits, ``::``,
    anything, ``::``, genres without a colon" instead of being split on every ``::``.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "movies.dat"
        >>> _ = p.write_bytes("1::Star Trek: Nemesis (2002)::Sci-Fi\\n".encode("latin-1"))
        >>> read_ml1m_movies(p).frame["title"].tolist()
        ['Star Trek: Nemesis (2002)']
    """
    data = read_bytes(path)
    text, _ = decode(data, catalogue_encoding(path, data, encoding), path=path, lenient=lenient)
    lines = pd.Series(text.split("\n"), dtype=object).str.rstrip("\r")
    numbers = np.arange(1, len(lines) + 1)
    blank = (lines.str.strip() == "").to_numpy()
    lines, numbers = lines[~blank], numbers[~blank]
    parts = lines.str.extract(_ML1M_MOVIE)
    unmatched = parts[0].isna().to_numpy()
    problems = [
        Problem(int(n), None, "expected MovieID::Title::Genres") for n in numbers[unmatched]
    ]
    parts, numbers = parts[~unmatched], numbers[~unmatched]
    frame = pd.DataFrame(
        {
            "MovieID": parts[0].to_numpy(dtype=object),
            "Title": parts[1].to_numpy(dtype=object),
            "Genres": parts[2].to_numpy(dtype=object),
        }
    )
    typed, bad, explain = check_fields(
        frame,
        [
            Field("MovieID", "int", rename="item_id"),
            Field("Title", rename="title"),
            Field("Genres", required=False, rename="genres"),
        ],
    )
    for row in np.flatnonzero(bad):
        fld, message = explain(int(row))
        problems.append(Problem(int(numbers[row]), fld, message))
    skipped = settle(problems, path=path, lenient=lenient, total=len(lines))
    return Table(
        typed[~bad].reset_index(drop=True), path=path, skipped=skipped, lines=numbers[~bad]
    )
