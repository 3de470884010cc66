"""Tests of hybridrec.data.loaders and the format readers: fixtures in the exact published formats,
bad input (line, field and file named; lenient mode counts) and, when present, the real data."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec.data.dataset import Dataset
from hybridrec.data.download import DownloadError
from hybridrec.data.formats.amazon import clean_title
from hybridrec.data.formats.common import Field
from hybridrec.data.formats.delimited import read_delimited
from hybridrec.data.formats.movielens import aggregate_tags, split_title_year
from hybridrec.data.loaders import dataset_names, detect_format, embedded_path, load_dataset
from hybridrec.errors import DataError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def _shared_data() -> Path | None:
    env = os.environ.get("HYBRIDREC_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO / ".." / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


SHARED = _shared_data()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data is absent")


def fixture_copy(tmp_path: Path, name: str) -> Path:
    """A writable copy of a fixture folder."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def edit(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data, (path, old)
    path.write_bytes(data.replace(old, new, 1))


def edit_gz(path: Path, change: Callable[[bytes], bytes]) -> None:
    path.write_bytes(gzip.compress(change(gzip.decompress(path.read_bytes())), mtime=0))


# --------------------------------------------------------------------------- fixtures load right
def test_fixtures_are_in_the_published_formats() -> None:
    latest = FIXTURES / "ml-latest-small"
    for name in ("ratings.csv", "movies.csv", "tags.csv", "links.csv"):
        data = (latest / name).read_bytes()
        assert data.count(b"\r\n") == data.count(b"\n"), name  # CRLF everywhere
    assert b'"American President, The (1995)"' in (latest / "movies.csv").read_bytes()
    assert "Café".encode("latin-1") in (FIXTURES / "ml-100k" / "u.item").read_bytes()
    assert "Misérables".encode("latin-1") in (FIXTURES / "ml-1m" / "movies.dat").read_bytes()
    assert b"::" in (FIXTURES / "ml-1m" / "ratings.dat").read_bytes()


def test_latest_small_fixture() -> None:
    ds = load_dataset(FIXTURES / "ml-latest-small")
    assert isinstance(ds, Dataset)
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (9, 3, 8)
    assert ds.rating_scale == (0.5, 5.0)
    assert ds.like_threshold == 4.0
    assert ds.skipped_rows == 0
    items = ds.items.set_index("item_id")
    # RFC 4180: a comma inside quotes, a doubled quote, UTF-8 text, title kept as published
    assert items.loc["11", "title"] == "American President, The (1995)"
    assert items.loc["7789", "title"] == "11'09\"01 - September 11 (2002)"
    assert items.loc["73", "title"] == "Misérables, Les (1995)"
    assert items.loc["11", "title_clean"] == "American President, The"
    assert items.loc["1", "year"] == 1995
    assert items.loc["171749", "year"] == 2006  # "(2006–2007)"
    assert pd.isna(items.loc["40697", "year"])  # "Babylon 5" has no year
    assert items.loc["1", "genres"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert items.loc["114335", "genres"] == []  # "(no genres listed)"
    # tags: distinct case-insensitively, most frequent first, quotes kept
    assert items.loc["1", "tags"] == ["pixar", "fun"]
    assert items.loc["11", "tags"] == ["politics", '"artsy"', "president"]
    assert items.loc["2", "tags"] == []
    assert items.loc["1", "imdb_id"] == "0114709"  # zero padding kept
    assert items.loc["40697", "tmdb_id"] == ""
    r = ds.interactions
    assert r["rating"].dtype == np.float32
    assert sorted(r["rating"].tolist()) == [0.5, 1.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0, 5.0]
    assert ds.history("1") == ["11", "1", "73"]  # by time
    assert ds.item("11").title == "American President, The (1995)"
    assert "year" not in ds.item("40697").metadata  # a missing year is no metadata
    assert ds.item("1").metadata["year"] == 1995


def test_gzipped_latest_folder_reads_the_same(tmp_path: Path) -> None:
    folder = tmp_path / "gz"
    folder.mkdir()
    for src in (FIXTURES / "ml-latest-small").iterdir():
        (folder / f"{src.name}.gz").write_bytes(gzip.compress(src.read_bytes(), mtime=0))
    a, b = load_dataset(FIXTURES / "ml-latest-small"), load_dataset(folder)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)


def test_ml100k_fixture() -> None:
    ds = load_dataset(FIXTURES / "ml-100k")
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (7, 3, 5)
    assert ds.name == "ml-100k" and ds.rating_scale == (1.0, 5.0)
    items = ds.items.set_index("item_id")
    assert items.loc["4", "title"] == "Café au Lait"  # Latin-1 decoded
    assert items.loc["4", "year"] == 1994  # no year in the title: from the release date
    assert items.loc["3", "title"] == 'Four Rooms, The "Director\'s Cut" (1995)'  # no quoting
    assert items.loc["1", "genres"] == ["Animation", "Children's", "Comedy"]
    assert items.loc["267", "genres"] == ["unknown"]
    assert pd.isna(items.loc["267", "year"])
    users = ds.users.set_index("user_id")
    assert users.loc["2"].to_dict() == {
        "age": 53, "gender": "F", "occupation": "other", "zip_code": "94043"
    }
    assert ds.user_context("1").profile["occupation"] == "technician"


def test_ml100k_without_optional_files(tmp_path: Path) -> None:
    folder = fixture_copy(tmp_path, "ml-100k")
    (folder / "u.user").unlink()
    (folder / "u.genre").unlink()
    ds = load_dataset(folder)
    assert ds.users is None
    assert ds.items.set_index("item_id").loc["2", "genres"] == ["Action", "Adventure", "Thriller"]


def test_ml1m_fixture() -> None:
    ds = load_dataset(FIXTURES / "ml-1m")
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (6, 3, 5)
    items = ds.items.set_index("item_id")
    assert items.loc["2", "title"] == "Star Trek: The Motion Picture (1979)"
    assert items.loc["73", "title"] == "Misérables, Les (1995)"
    assert items.loc["661", "genres"] == ["Animation", "Children's", "Musical"]
    users = ds.users.set_index("user_id")
    assert users.loc["1", "age_group"] == "Under 18"
    assert users.loc["2", "occupation"] == "self-employed"
    assert users.loc["3", "zip_code"] == "55117"


def test_ml1m_title_ending_in_colon(tmp_path: Path) -> None:
    folder = fixture_copy(tmp_path, "ml-1m")
    edit(folder / "movies.dat", b"Drama\n", b"Drama\n9::Odd Title:::Comedy\n")
    items = load_dataset(folder).items.set_index("item_id")
    assert items.loc["9", "title"] == "Odd Title:"
    assert items.loc["9", "genres"] == ["Comedy"]


def test_amazon_fixture(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(FIXTURES / "amazon2018")
    assert "1 repeated (user, item) interactions" in caplog.text
    assert ds.name == "amazon2018:Tiny_Magazines"
    # 7 review lines, one (user, item) pair twice: the latest (5 stars) kept
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (6, 3, 4)
    row = ds.user_rows(ds.user_index("A3"))
    assert row[row["item"] == ds.item_index(["B00005N7OC"])[0]]["rating"].tolist() == [5.0]
    assert ds.load_notes["meta_lines"] == 5
    assert ds.load_notes["meta_duplicate_lines"] == 1
    assert ds.load_notes["items_without_metadata"] == 1
    items = ds.items.set_index("item_id")
    assert "B0NOTRATED" not in items.index  # the catalogue is the reviewed items
    assert items.loc["B00005N7NQ", "title"] == ""  # scraped HTML dropped
    assert items.loc["0345816021", "title"] == ""  # a tag fragment without "<"
    assert items.loc["B00005N7OC", "title"] == "Acoustic Guitar & More"
    assert items.loc["B00005N7NQ", "description"] == (
        "REASON is edited for people interested in economic issues."
    )
    assert items.loc["B00005N7NQ", "category"] == [
        "Magazine Subscriptions", "Arts, Music & Photography"
    ]
    assert items["has_metadata"].tolist() == [True, True, True, False]
    texts = dict(zip(ds.item_ids, ds.item_texts(), strict=True))
    assert "Reason Magazine" in texts["B00005N7NQ"] and "<" not in texts["B00005N7NQ"]
    assert texts["B0NOMETA00"] == ""


def test_amazon_reviews_file_path_and_missing_meta(tmp_path: Path) -> None:
    ds = load_dataset(FIXTURES / "amazon2018" / "Tiny_Magazines_5.json.gz")
    assert ds.n_items == 4
    folder = fixture_copy(tmp_path, "amazon2018")
    (folder / "meta_Tiny_Magazines.json.gz").unlink()
    ds = load_dataset(folder)
    assert ds.n_items == 4 and not ds.items["has_metadata"].any()


def test_generic_csv_with_mapping_and_items() -> None:
    ds = load_dataset(
        FIXTURES / "generic" / "interactions.csv",
        columns={"user_id": "uid", "item_id": "asin", "rating": "stars", "timestamp": "ts"},
        items=FIXTURES / "generic" / "items.csv",
        item_columns={"item_id": "asin", "title": "name", "description": "desc"},
        list_columns={"genres": "|"},
        rating_scale=(1, 5),
    )
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (4, 2, 3)
    assert ds.name == "interactions"
    items = ds.items.set_index("item_id")
    assert items.loc["A", "title"] == "Alpha, the first"
    assert items.loc["A", "description"] == "A long\nmultiline description"
    assert items.loc["A", "genres"] == ["x", "y"]
    assert items.loc["C", "genres"] == []
    assert ds.history("u1") == ["A", "B"]


def test_generic_jsonl_and_implicit_csv(tmp_path: Path) -> None:
    ds = load_dataset(
        FIXTURES / "generic" / "reviews.jsonl",
        columns={"user_id": "user", "item_id": "item", "rating": "stars", "timestamp": "time"},
    )
    assert ds.interactions["rating"].tolist() == [5.0, 2.5, 4.0]
    path = tmp_path / "clicks.tsv"
    path.write_text("user_id\titem_id\nu1\ti1\nu1\ti2\nu2\ti1\n")
    ds = load_dataset(path)
    assert not ds.is_explicit and ds.n_interactions == 3
    assert ds.history("u1") == ["i1", "i2"]  # row order is time


def test_format_override(tmp_path: Path) -> None:
    path = tmp_path / "log.data"
    path.write_text('{"user_id": 1, "item_id": 2}\n')
    with pytest.raises(DataError, match="format"):
        load_dataset(path)
    assert load_dataset(path, format="jsonl").n_interactions == 1
    with pytest.raises(ValueError, match="unknown format"):
        load_dataset(path, format="parquet")


def test_detect_format() -> None:
    assert detect_format(FIXTURES / "ml-latest-small") == "ml-latest"
    assert detect_format(FIXTURES / "ml-100k") == "ml-100k"
    assert detect_format(FIXTURES / "ml-1m") == "ml-1m"
    assert detect_format(FIXTURES / "amazon2018") == "amazon2018"
    assert detect_format(FIXTURES / "generic" / "reviews.jsonl") == "jsonl"
    assert detect_format(FIXTURES / "ml-100k" / "u.data") == "ml-100k"
    with pytest.raises(DataError, match="cannot tell"):
        detect_format(FIXTURES / "generic")


def test_names_and_unknown_options(tmp_path: Path) -> None:
    assert "ml-latest-small" in dataset_names()
    with pytest.raises(DataError, match="not a dataset name"):
        load_dataset("ml-10m-typo")
    with pytest.raises(TypeError, match="tag_limit"):
        load_dataset(FIXTURES / "ml-100k", tag_limit=3)
    with pytest.raises(DownloadError, match="not in the cache"):
        load_dataset("ml-100k", cache_dir=tmp_path, download=False)


def test_like_threshold_and_tag_options() -> None:
    ds = load_dataset(FIXTURES / "ml-latest-small", like_threshold=4.5, tag_limit=1)
    assert ds.like_threshold == 4.5
    assert ds.items.set_index("item_id").loc["1", "tags"] == ["pixar"]
    assert "tags" not in load_dataset(FIXTURES / "ml-latest-small", tags=False).items.columns


def test_helpers() -> None:
    year, clean = split_title_year(pd.Series(["Heat (1995)", "Babylon 5", "X (2006–2007) "]))
    assert year.tolist()[0] == 1995 and pd.isna(year.tolist()[1]) and year.tolist()[2] == 2006
    assert clean.tolist() == ["Heat", "Babylon 5", "X"]
    tags = pd.DataFrame({"item_id": [1, 1, 1, 1, 2], "tag": ["b", "a", "A", " a ", "x"]})
    assert aggregate_tags(tags, pd.Series([1, 2]), limit=10).tolist() == [["a", "b"], ["x"]]
    assert clean_title("<b>Heat</b>") == "Heat"
    assert clean_title("Time Out New York") == "Time Out New York"
    assert clean_title(None) == "" and clean_title("   ") == ""


# --------------------------------------------------------------------------- bad input
# (fixture, file, old bytes, new bytes, line, field, message part, rows left after lenient)
BAD_ROWS = [
    pytest.param("ml-latest-small", "ratings.csv", b"1,73,5.0,964983000", b"1,73,5.0,964983000,9",
                 4, None, "expected 4 fields, found 5", 8, id="latest-extra-field"),
    pytest.param("ml-latest-small", "ratings.csv", b"1,11,3.5,964982224", b"1,11,3.5",
                 3, None, "expected 4 fields, found 3", 8, id="latest-missing-field"),
    pytest.param("ml-latest-small", "ratings.csv", b"2,2,0.5,", b"2,2,abc,",
                 5, "rating", "'abc' is not a number", 8, id="latest-non-numeric-rating"),
    pytest.param("ml-latest-small", "ratings.csv", b"2,2,0.5,", b"2,2,7.5,",
                 5, "rating", "in [0.5, 5]", 8, id="latest-rating-out-of-scale"),
    pytest.param("ml-latest-small", "ratings.csv", b"3,40697,", b"x3,40697,",
                 8, "userId", "not an integer", 8, id="latest-bad-id"),
    pytest.param("ml-100k", "u.data", b"2\t3\t2\t888551000", b"2\t3\t2",
                 5, None, "expected 4 fields, found 3", 6, id="100k-short-row"),
    pytest.param("ml-100k", "u.data", b"3\t4\t5\t", b"3\t4\t6\t",
                 7, "rating", "in [1, 5]", 6, id="100k-rating-out-of-scale"),
    pytest.param("ml-1m", "ratings.dat", b"1::661::3::978302109", b"1::661::3",
                 2, None, "expected 4 fields, found 3", 5, id="1m-short-row"),
    pytest.param("ml-1m", "ratings.dat", b"2::2::2::", b"2::2::two::",
                 5, "Rating", "'two' is not an integer", 5, id="1m-non-numeric"),
    pytest.param("ml-latest-small", "ratings.csv", b"2,2,0.5,", b"2,2,1e39,",
                 5, "rating", "'1e39' is not a number in [0.5, 5]", 8, id="latest-huge-rating"),
    pytest.param("ml-latest-small", "ratings.csv", b"2,2,0.5,", b"2,2,nan,",
                 5, "rating", "'nan' is not a number", 8, id="latest-nan-rating"),
    pytest.param("ml-100k", "u.data", b"3\t4\t5\t", b"3\t4\t1e39\t",
                 7, "rating", "in [1, 5]", 6, id="100k-huge-rating"),
    pytest.param("ml-1m", "ratings.dat", b"1::661::3::978302109", b"1::661::3::" + b"9" * 20,
                 2, "Timestamp", "is not an integer", 5, id="1m-timestamp-out-of-range"),
]


@pytest.mark.parametrize(
    ("fixture", "name", "old", "new", "line", "field", "message", "left"), BAD_ROWS
)
def test_malformed_rows(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fixture: str,
    name: str,
    old: bytes,
    new: bytes,
    line: int,
    field: str | None,
    message: str,
    left: int,
) -> None:
    folder = fixture_copy(tmp_path, fixture)
    edit(folder / name, old, new)
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    err = info.value
    assert Path(str(err.path)).name == name and err.line == line and err.field == field
    assert message in str(err) and f"line {line}" in str(err) and name in str(err)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(folder, lenient=True)
    assert ds.skipped_rows == 1
    assert ds.n_interactions == left
    assert "skipped 1 malformed rows" in caplog.text


@pytest.mark.parametrize(
    ("name", "old", "new", "line", "field", "message"),
    [
        pytest.param("movies.csv", "Misérables".encode(), "Misérables".encode("latin-1"),
                     5, "title", "not valid UTF-8: byte 0xe9", id="latin1-in-utf8"),
        pytest.param("links.csv", b"73,0113828,48750", b"73,0113828",
                     5, None, "expected 3 fields, found 2", id="missing-last-field"),
        pytest.param("movies.csv", b"\"11'09\"\"01", b"\"11'09\"01",
                     6, None, "bad quoting", id="stray-quote"),
        pytest.param("movies.csv", b"2,Jumanji (1995),Adventure|Children|Fantasy\r\n",
                     b"2,Jumanji (1995),Adventure|Children|Fantasy\r\n1,Again (1995),Drama\r\n",
                     4, "movieId", "duplicate movieId 1 (first on line 2)", id="duplicate-id"),
    ],
)
def test_bad_catalogue_rows(
    tmp_path: Path, name: str, old: bytes, new: bytes, line: int, field: str | None, message: str
) -> None:
    folder = fixture_copy(tmp_path, "ml-latest-small")
    edit(folder / name, old, new)
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    assert (info.value.line, info.value.field) == (line, field)
    assert message in str(info.value) and name in str(info.value)
    ds = load_dataset(folder, lenient=True)
    assert ds.skipped_rows == 1
    assert ds.n_interactions == 9 and ds.n_items == 8  # a dropped movie stays as a rated item


def test_missing_column_is_fatal_even_when_lenient(tmp_path: Path) -> None:
    folder = fixture_copy(tmp_path, "ml-latest-small")
    edit(folder / "ratings.csv", b"userId,movieId,rating,", b"userId,movieId,stars,")
    for lenient in (False, True):
        with pytest.raises(DataError, match="missing column 'rating'") as info:
            load_dataset(folder, lenient=lenient)
        assert (info.value.line, info.value.field) == (1, "rating")


def test_missing_file(tmp_path: Path) -> None:
    folder = fixture_copy(tmp_path, "ml-latest-small")
    (folder / "movies.csv").unlink()
    (folder / "ratings.csv").rename(folder / "r.csv")
    with pytest.raises(DataError, match="cannot tell"):
        load_dataset(folder)
    with pytest.raises(DataError, match="ratings.csv: file not found"):
        load_dataset(folder, format="ml-latest", lenient=True)
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nowhere")


def test_every_row_bad_is_an_error_even_when_lenient(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,rating\na,b,x\nc,d,y\n")
    with pytest.raises(DataError, match="no valid rows"):
        load_dataset(path, lenient=True)


def test_lenient_counts_across_files(tmp_path: Path) -> None:
    folder = fixture_copy(tmp_path, "ml-latest-small")
    edit(folder / "ratings.csv", b"2,2,0.5,", b"2,2,abc,")
    edit(folder / "ratings.csv", b"3,40697,2.0,", b"3,40697,2.0,9,")
    edit(folder / "tags.csv", b"1,1,fun,1139045760", b"1,1,fun")
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    assert "(1 more malformed rows)" in str(info.value) and info.value.line == 5
    ds = load_dataset(folder, lenient=True)
    assert ds.skipped_rows == 3 and ds.n_interactions == 7
    assert ds.items.set_index("item_id").loc["1", "tags"] == ["pixar"]


def test_ml100k_bad_flag_and_duplicate_user(tmp_path: Path) -> None:
    folder = fixture_copy(tmp_path, "ml-100k")
    edit(folder / "u.item", b"|0|0|0|1|1|1|0|", b"|0|0|0|1|1|2|0|")
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    assert (info.value.line, info.value.field) == (1, "Comedy")
    folder = fixture_copy(tmp_path / "b", "ml-100k")
    edit(folder / "u.user", b"3|23|", b"2|23|")
    with pytest.raises(DataError, match="duplicate user id 2 .first on line 2.") as info:
        load_dataset(folder)
    assert info.value.line == 3
    assert load_dataset(folder, lenient=True).skipped_rows == 1


def test_ml1m_bad_movie_line_and_occupation(tmp_path: Path) -> None:
    folder = fixture_copy(tmp_path, "ml-1m")
    edit(folder / "movies.dat", b"661::James", b"661:James")
    with pytest.raises(DataError, match="expected MovieID::Title::Genres") as info:
        load_dataset(folder)
    assert info.value.line == 4
    assert load_dataset(folder, lenient=True).skipped_rows == 1
    folder = fixture_copy(tmp_path / "b", "ml-1m")
    edit(folder / "users.dat", b"::16::", b"::26::")
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    assert (info.value.line, info.value.field) == (2, "Occupation")


@pytest.mark.parametrize(
    ("line_no", "change", "field", "message"),
    [
        pytest.param(3, lambda s: s[: len(s) // 2], None, "invalid JSON", id="truncated-json"),
        pytest.param(2, lambda s: s.replace(b'"overall": 4.0, ', b""), "overall", "missing",
                     id="missing-key"),
        pytest.param(4, lambda s: s.replace(b'"overall": 3.0', b'"overall": "three"'), "overall",
                     "'three' is not a number", id="non-numeric"),
        pytest.param(5, lambda s: s.replace(b'"reviewText": "ok"', b'"reviewText": "\xe9"'),
                     "reviewText", "not valid UTF-8", id="bad-utf8"),
        pytest.param(1, lambda s: b"[1, 2]", None, "not a JSON object", id="not-an-object"),
        pytest.param(4, lambda s: s.replace(b'"overall": 3.0', b'"overall": 1e39'), "overall",
                     "1e+39 is not a number in [1, 5]", id="huge-rating"),
        pytest.param(4, lambda s: s.replace(b'"overall": 3.0', b'"overall": NaN'), "overall",
                     "NaN is not a number", id="nan-rating"),
        pytest.param(2, lambda s: s.replace(b'"unixReviewTime": 1393372900',
                                            b'"unixReviewTime": 18446744073709551615'),
                     "unixReviewTime", "is not an integer", id="timestamp-out-of-range"),
    ],
)
def test_amazon_malformed_review_lines(
    tmp_path: Path,
    line_no: int,
    change: Callable[[bytes], bytes],
    field: str | None,
    message: str,
) -> None:
    folder = fixture_copy(tmp_path, "amazon2018")
    path = folder / "Tiny_Magazines_5.json.gz"

    def alter(data: bytes) -> bytes:
        lines = data.split(b"\n")
        lines[line_no - 1] = change(lines[line_no - 1])
        return b"\n".join(lines)

    edit_gz(path, alter)
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    assert (info.value.line, info.value.field) == (line_no, field)
    assert message in str(info.value) and "Tiny_Magazines_5.json.gz" in str(info.value)
    ds = load_dataset(folder, lenient=True)
    assert ds.skipped_rows == 1


def test_amazon_corrupt_gzip_and_bad_meta(tmp_path: Path) -> None:
    folder = fixture_copy(tmp_path, "amazon2018")
    meta = folder / "meta_Tiny_Magazines.json.gz"
    edit_gz(meta, lambda d: d.replace(b'"asin": "B0NOTRATED"', b'"asin": ""'))
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    assert (info.value.line, info.value.field) == (5, "asin")
    assert load_dataset(folder, lenient=True).skipped_rows == 1
    reviews = folder / "Tiny_Magazines_5.json.gz"
    reviews.write_bytes(reviews.read_bytes()[:-20])
    with pytest.raises(DataError, match="Tiny_Magazines_5.json.gz"):
        load_dataset(folder, lenient=True)


def test_multiline_quoted_field_keeps_line_numbers(tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    items.write_bytes(
        b'asin,name\r\nA,"two\r\nlines"\r\nB,"quoted, comma"\r\n\r\nB,again\r\n'
    )
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\nu,A\n")
    with pytest.raises(DataError, match=r"duplicate item id 'B' \(first on line 4\)") as info:
        load_dataset(log, items=items, item_columns={"item_id": "asin"})
    assert info.value.line == 6 and info.value.field == "asin"
    table = read_delimited(items, [Field("asin", "id"), Field("name")])
    assert table.frame["name"].tolist() == ["two\r\nlines", "quoted, comma", "again"]
    assert table.line_of([0, 1, 2]) == [2, 4, 6]


def test_generic_missing_mapped_column_and_missing_json_key(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing column 'score'") as info:
        load_dataset(
            FIXTURES / "generic" / "interactions.csv",
            columns={"user_id": "uid", "item_id": "asin", "rating": "score"},
        )
    assert (info.value.line, info.value.field) == (1, "score")
    path = tmp_path / "r.jsonl"
    path.write_text('{"u": "a", "i": "x"}\n\n{"i": "y"}\n')
    with pytest.raises(DataError) as info:
        load_dataset(path, columns={"user_id": "u", "item_id": "i"})
    assert (info.value.line, info.value.field) == (3, "u")
    with pytest.raises(DataError, match="absent .or null. in every record"):
        load_dataset(path, columns={"user_id": "user", "item_id": "i"})
    with pytest.raises(ValueError, match="unknown column role"):
        load_dataset(path, columns={"user": "u"})


def test_bom_and_crlf_generic_csv(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"\xef\xbb\xbfuser_id,item_id,rating\r\n1,2,4.5\r\n")
    ds = load_dataset(path)
    assert ds.interactions["rating"].tolist() == [4.5]


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz"])
def test_bom_generic_jsonl(tmp_path: Path, name: str) -> None:
    columns = {"user_id": "user", "item_id": "item", "rating": "stars", "timestamp": "time"}
    text = (FIXTURES / "generic" / "reviews.jsonl").read_bytes()
    path = tmp_path / name
    data = b"\xef\xbb\xbf" + text  # as Windows editors save UTF-8, like the CSV above
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    ds = load_dataset(path, columns=columns)
    ref = load_dataset(FIXTURES / "generic" / "reviews.jsonl", columns=columns)
    assert ds.interactions.equals(ref.interactions)
    assert sorted(ds.user_ids) == ["u1", "u2"]
    # the line-by-line pass (lenient, or naming a bad line) skips the mark too
    data = b"\xef\xbb\xbf" + text + b'{"user": "u9", "item": \n'
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataError, match="line 4"):
        load_dataset(path, columns=columns)
    assert load_dataset(path, columns=columns, lenient=True).skipped_rows == 1


def _resaved_as_utf8(tmp_path: Path, name: str, file: str) -> Path:
    folder = fixture_copy(tmp_path, name)
    text = (folder / file).read_bytes().decode("latin-1")
    (folder / file).write_bytes(text.encode("utf-8"))
    return folder


@pytest.mark.parametrize(
    ("name", "file", "item", "title"),
    [
        ("ml-100k", "u.item", "4", "Café au Lait"),
        ("ml-1m", "movies.dat", "73", "Misérables, Les (1995)"),
    ],
)
def test_catalogue_resaved_as_utf8_reads_the_same_titles(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, file: str, item: str, title: str
) -> None:
    latin1 = load_dataset(FIXTURES / name)
    with caplog.at_level(logging.INFO, logger="hybridrec.data.formats.movielens"):
        utf8 = load_dataset(_resaved_as_utf8(tmp_path, name, file))
    assert latin1.item(item).title == utf8.item(item).title == title
    assert latin1.items["title"].tolist() == utf8.items["title"].tolist()
    assert latin1.interactions.equals(utf8.interactions)
    assert any(file in m and "read as UTF-8" in m for m in caplog.messages), caplog.messages
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hybridrec.data.formats.movielens"):
        load_dataset(FIXTURES / name)
    assert any(file in m and "read as Latin-1" in m for m in caplog.messages), caplog.messages
    # an explicit encoding wins (here the wrong one: the UTF-8 bytes read as Latin-1)
    forced = load_dataset(tmp_path / name, encoding="latin-1")
    assert forced.item(item).title == title.encode("utf-8").decode("latin-1")
    with pytest.raises(ValueError, match="unknown encoding 'nope'"):
        load_dataset(tmp_path / name, encoding="nope")


def test_utf8_catalogue_with_a_byte_order_mark(tmp_path: Path) -> None:
    folder = _resaved_as_utf8(tmp_path, "ml-1m", "movies.dat")
    data = (folder / "movies.dat").read_bytes()
    (folder / "movies.dat").write_bytes(b"\xef\xbb\xbf" + data)
    ds = load_dataset(folder)
    assert ds.items["title"].tolist() == load_dataset(FIXTURES / "ml-1m").items["title"].tolist()


# --------------------------------------------------------------------------- embedded + real data
def test_embedded_dataset_loads_fast() -> None:
    load_dataset("ml-latest-small")  # warm imports and caches
    started = time.perf_counter()
    ds = load_dataset("ml-latest-small")
    elapsed = time.perf_counter() - started
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (100_836, 610, 9_742)
    assert elapsed < 2.0, f"ml-latest-small took {elapsed:.2f} s"
    assert ds.info()["rated_items"] == 9_724
    assert ds.item("1").title == "Toy Story (1995)"
    assert int(ds.interactions["timestamp"].min()) == 828124615
    assert int(ds.interactions["timestamp"].max()) == 1537799250
    assert sum(len(t) > 0 for t in ds.items["tags"]) > 1000


@needs_shared
@pytest.mark.realdata
def test_embedded_copy_equals_shared_data() -> None:
    shared = SHARED / "ml-latest-small"
    embedded = embedded_path()
    assert (embedded / "README.txt").read_bytes() == (shared / "README.txt").read_bytes()
    for name in ("ratings.csv", "movies.csv", "tags.csv", "links.csv"):
        packed = (embedded / f"{name}.gz").read_bytes()
        assert gzip.decompress(packed) == (shared / name).read_bytes(), name
        assert packed[4:8] == b"\0\0\0\0"  # gzip -n: no timestamp
    a, b = load_dataset("ml-latest-small"), load_dataset(shared)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)


@needs_shared
@pytest.mark.realdata
def test_real_ml_latest_small_counts() -> None:
    ds = load_dataset(SHARED / "ml-latest-small")
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (100_836, 610, 9_742)
    assert ds.skipped_rows == 0
    assert ds.items["title"].str.contains(",").sum() > 100  # quoted titles parsed
    assert ds.items.set_index("item_id").loc["7789", "title"] == "11'09\"01 - September 11 (2002)"


@needs_shared
@pytest.mark.realdata
def test_real_amazon_magazines(caplog: pytest.LogCaptureFixture) -> None:
    folder = SHARED / "amazon2018-magazine-subscriptions"
    raw = pd.read_json(folder / "Magazine_Subscriptions_5.json.gz", lines=True, dtype=False)
    assert len(raw) == 2_375
    repeated = int(raw.duplicated(["reviewerID", "asin"]).sum())
    assert repeated == 73  # the 5-core file repeats 73 (user, item) pairs
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(folder)
    assert "73 repeated (user, item) interactions" in caplog.text
    assert ds.n_interactions == 2_375 - repeated == 2_302
    assert (ds.n_users, ds.n_items) == (348, 157)
    assert ds.load_notes["meta_lines"] == 3_385
    assert ds.load_notes["meta_lines"] - ds.load_notes["meta_duplicate_lines"] == 2_320
    assert int(ds.items["has_metadata"].sum()) == 151
    texts = ds.item_texts()
    assert sum(bool(t) for t in texts) == 151
    assert not any("<" in t or "a-size-medium" in t for t in texts)
    titles = [t for t in ds.items["title"] if t]
    assert titles and all("<" not in t and '"' not in t[:1] for t in titles)


def test_json_booleans_are_not_ratings(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"u": "a", "i": "x", "r": 4}\n{"u": "b", "i": "x", "r": true}\n')
    with pytest.raises(DataError, match="True is not a number") as info:
        load_dataset(path, columns={"user_id": "u", "item_id": "i", "rating": "r"})
    assert (info.value.line, info.value.field) == (2, "r")


@pytest.mark.parametrize(
    ("fixture", "name", "sep", "line"),
    [("ml-latest-small", "ratings.csv", b",", 2), ("ml-100k", "u.data", b"\t", 1)],
)
def test_every_row_one_field_too_many(
    tmp_path: Path, fixture: str, name: str, sep: bytes, line: int
) -> None:
    """pandas would silently take the first column as the index (or drop the last field)."""
    folder = fixture_copy(tmp_path, fixture)
    path = folder / name
    lines = path.read_bytes().split(b"\n")
    start = 1 if line == 2 else 0
    lines = lines[:start] + [b"9" + sep + x if x.strip() else x for x in lines[start:]]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match="expected 4 fields, found 5") as info:
        load_dataset(folder)
    assert info.value.line == line


# --------------------------------------------------------------------------- reliability fixes
@pytest.mark.parametrize(
    ("suffix", "content", "line", "message"),
    [
        pytest.param(".csv", "user_id,item_id,rating\nu1,i1,5\nu1,i2,1e39\nu2,i1,3\n", 3,
                     "'1e39' is too large (stored as a 32-bit float", id="csv-huge"),
        pytest.param(".csv", "user_id,item_id,rating\nu1,i1,5\nu1,i2,-inf\n", 3,
                     "'-inf' is not a number", id="csv-inf"),
        pytest.param(".csv", "user_id,item_id,rating\nu1,i1,5\nu1,i2,NaN\n", 3,
                     "'NaN' is not a number", id="csv-nan"),
        pytest.param(".jsonl", '{"user_id": "u1", "item_id": "i1", "rating": 5}\n'
                     '{"user_id": "u1", "item_id": "i2", "rating": 1e39}\n', 2,
                     "1e+39 is too large", id="jsonl-huge"),
        pytest.param(".jsonl", '{"user_id": "u1", "item_id": "i1", "rating": 5}\n'
                     '{"user_id": "u1", "item_id": "i2", "rating": Infinity}\n', 2,
                     "inf is not a number", id="jsonl-inf"),
        pytest.param(".jsonl", '{"user_id": "u1", "item_id": "i1", "rating": 5}\n'
                     '{"user_id": "u1", "item_id": "i2", "rating": NaN}\n', 2,
                     "NaN is not a number", id="jsonl-nan"),
    ],
)
def test_ratings_that_do_not_fit_float32_are_refused(
    tmp_path: Path, suffix: str, content: str, line: int, message: str
) -> None:
    path = tmp_path / f"log{suffix}"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_dataset(path)
    assert (info.value.line, info.value.field) == (line, "rating")
    assert message in str(info.value) and f"log{suffix}" in str(info.value)
    ds = load_dataset(path, lenient=True)
    assert ds.skipped_rows == 1 and np.isfinite(ds.interactions["rating"]).all()


def test_generic_timestamps_out_of_range_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,5\nu1,i2,99999999999999999999\n")
    with pytest.raises(DataError, match="line 3, field 'timestamp'"):
        load_dataset(path)
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"user_id": "u1", "item_id": "i1", "timestamp": 1}\n'
        '{"user_id": "u1", "item_id": "i2", "timestamp": 18446744073709551615}\n'
    )
    with pytest.raises(DataError, match="line 2, field 'timestamp'"):
        load_dataset(path)


def test_ids_with_surrounding_space_are_one_id(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,rating\nu1,i1,5\n u1 ,i2,4\nu2,i1 ,3\n")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n i1,One\ni2 ,Two\n")
    ds = load_dataset(path, items=items)
    assert list(ds.user_ids) == ["u1", "u2"] and list(ds.item_ids) == ["i1", "i2"]
    assert ds.item("i2").title == "Two"
    items.write_text("item_id,title\ni1,One\n i1 ,Again\n")
    with pytest.raises(DataError, match="duplicate item id 'i1'"):
        load_dataset(path, items=items)
    jsonl = tmp_path / "log.jsonl"
    jsonl.write_text(
        '{"user_id": "u1", "item_id": "i1"}\n{"user_id": " u1", "item_id": "i2 "}\n'
    )
    assert list(load_dataset(jsonl).user_ids) == ["u1"]
    folder = fixture_copy(tmp_path, "amazon2018")
    edit_gz(
        folder / "Tiny_Magazines_5.json.gz",
        lambda s: s.replace(b'"reviewerID": "A1"', b'"reviewerID": " A1 "', 1),
    )
    assert load_dataset(folder).n_users == load_dataset(FIXTURES / "amazon2018").n_users


def test_unicode_digit_id_loads(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id\n\u00b2,i1\n1,i2\n", encoding="utf-8")
    assert list(load_dataset(path).user_ids) == ["1", "\u00b2"]


def test_a_local_folder_named_like_a_dataset_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copytree(FIXTURES / "ml-100k", tmp_path / "ml-100k")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("ml-100k", download=False)  # no download, no cache needed
    assert ds.n_interactions == 7
    assert "'ml-100k' is a dataset name but also a local folder" in caplog.text
    assert str(tmp_path / "ml-100k") in caplog.text
    assert not (tmp_path / "cache").exists()


def test_failed_download_says_how_to_get_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybridrec.data import download

    # nothing listens on port 9 of this machine: a real "cannot connect"
    monkeypatch.setattr(download, "AMAZON2018_REVIEWS", "http://127.0.0.1:9/{category}_5.json.gz")
    monkeypatch.setattr(download, "AMAZON2018_META", "http://127.0.0.1:9/meta_{category}.json.gz")
    with pytest.raises(DownloadError) as info:
        load_dataset("amazon2018:Gift_Cards", cache_dir=tmp_path, progress=False, timeout=5)
    text = str(info.value)
    assert text.startswith("download failed (http://127.0.0.1:9/Gift_Cards_5.json.gz: cannot")
    assert "download the files yourself from http://127.0.0.1:9/Gift_Cards_5.json.gz and " \
        "http://127.0.0.1:9/meta_Gift_Cards.json.gz into one folder" in text
    assert "hybridrec data info /path/to/folder" in text
    monkeypatch.setitem(
        download.MOVIELENS,
        "ml-1m",
        download.RemoteFile("http://127.0.0.1:9/ml-1m.zip", "ml-1m.zip"),
    )
    with pytest.raises(DownloadError, match=r"download http://127.0.0.1:9/ml-1m.zip yourself, "
                       r"unzip it and pass the folder"):
        load_dataset("ml-1m", cache_dir=tmp_path, progress=False, timeout=5)
    with pytest.raises(DownloadError, match="not in the cache") as info:
        load_dataset("ml-1m", cache_dir=tmp_path, download=False)
    assert "download failed" not in str(info.value)


def test_load_dataset_keeps_the_k_core_on_request() -> None:
    full = load_dataset("ml-latest-small")
    core = load_dataset("ml-latest-small", k_core=5)
    assert core.name == "ml-latest-small-5core" and core.n_users == 610 and core.n_items == 3650
    assert core.n_items < full.n_items
    with pytest.raises(ValueError, match="k must be"):
        load_dataset("ml-latest-small", k_core=0)
