"""Dataset construction, lookups, matrices and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hybridrec as hr
from hybridrec.data.text import ItemTextBuilder, clean_text


def frame(**cols) -> pd.DataFrame:
    return pd.DataFrame(cols)


@pytest.fixture
def ds() -> hr.Dataset:
    inter = frame(
        user_id=[2, 2, 1, 1, 1, 10],
        item_id=[30, 10, 10, 20, 30, 20],
        rating=[4.0, 2.0, 5.0, 3.5, 1.0, 4.5],
        timestamp=[20, 10, 5, 6, 7, 1],
    )
    items = frame(item_id=[10, 20, 30, 40], title=["A (1990)", "B", "C", "D"])
    return hr.Dataset.from_frames(inter, items, name="toy")


def test_codes_and_order(ds: hr.Dataset) -> None:
    assert list(ds.user_ids) == ["1", "2", "10"]  # numeric ids in numeric order
    assert list(ds.item_ids) == ["10", "20", "30", "40"]  # catalogue order, unrated kept
    assert ds.history("2") == ["10", "30"]  # oldest first
    assert ds.user_index(10) == 2
    assert ds.n_interactions == 6 and ds.is_explicit


def test_matrices(ds: hr.Dataset) -> None:
    binary = ds.matrix("binary").toarray()
    assert binary.sum() == 6 and binary[0].tolist() == [1, 1, 1, 0]
    liked = ds.matrix("liked").toarray()
    assert liked[0].tolist() == [1, 0, 0, 0]  # 5.0 liked; 3.5 and 1.0 not
    assert ds.matrix("rating").toarray()[2, 1] == 4.5
    with pytest.raises(ValueError):
        ds.matrix("weird")


def test_info(ds: hr.Dataset) -> None:
    info = ds.info()
    assert info["users"] == 3 and info["items"] == 4 and info["rated_items"] == 3
    assert info["density"] == pytest.approx(6 / 12)
    assert info["rating_histogram"] == {"1": 1, "2": 1, "3.5": 1, "4": 1, "4.5": 1, "5": 1}


def test_unknown_ids_are_named(ds: hr.Dataset) -> None:
    with pytest.raises(hr.UnknownIdError, match="unknown user id\\(s\\): '99'"):
        ds.user_index(99)
    with pytest.raises(hr.UnknownIdError, match="'77', '78'"):
        ds.item_index([10, 77, 78])
    assert ds.item_index([10, 77], strict=False).tolist() == [0, -1]


def test_user_context_and_item(ds: hr.Dataset) -> None:
    ctx = ds.user_context("1", preference_text="thrillers")
    assert ctx.history_ids == ["10", "20", "30"] and ctx.history[0].rating == 5.0
    assert ctx.preference_text == "thrillers"
    assert ds.item(10).title == "A (1990)"


def test_missing_column_is_named() -> None:
    with pytest.raises(hr.DataError, match="missing column 'item_id'"):
        hr.Dataset.from_frames(frame(user_id=[1]), source="x.csv")


def test_duplicate_catalogue_ids_are_refused() -> None:
    with pytest.raises(hr.DataError, match="duplicate item ids in the catalogue: '1'"):
        hr.Dataset.from_frames(frame(user_id=[1], item_id=[1]), frame(item_id=[1, 1]))


def test_bad_rating_names_the_row() -> None:
    with pytest.raises(hr.DataError, match="rating 'five' in row 1 is not a number"):
        hr.Dataset.from_frames(frame(user_id=[1, 1], item_id=[1, 2], rating=["4", "five"]))


def test_empty_id_is_refused() -> None:
    with pytest.raises(hr.DataError, match="empty id"):
        hr.Dataset.from_frames(frame(user_id=["a", ""], item_id=[1, 2]))


def test_repeated_pairs_keep_the_latest(caplog: pytest.LogCaptureFixture) -> None:
    inter = frame(user_id=[1, 1, 1], item_id=[5, 5, 6], rating=[1.0, 5.0, 3.0], timestamp=[1, 9, 5])
    ds = hr.Dataset.from_frames(inter)
    assert ds.n_interactions == 2
    assert ds.matrix("rating").toarray()[0, ds.item_index([5])[0]] == 5.0
    assert "repeated (user, item)" in caplog.text


def test_implicit_feedback_counts_as_liked() -> None:
    ds = hr.Dataset.from_frames(frame(user_id=[1, 2], item_id=[1, 1]))
    assert not ds.is_explicit and ds.liked_mask.all()


def test_item_text_builder_strips_html_and_caps_length() -> None:
    items = frame(
        title=['<span class="a-size-medium"', "Heat (1995)"],
        genres=[["News"], ["Crime", "Thriller"]],
        description=["<p>Weekly &amp; monthly</p>", "x " * 1000],
    )
    texts = ItemTextBuilder(max_chars=120).build(items)
    assert texts[0] == "Genres: News. Description: Weekly & monthly"
    assert texts[1].startswith("Heat (1995). Genres: Crime, Thriller. Description: x x")
    assert len(texts[1]) <= 120 and texts[1].endswith("…")
    assert clean_text(np.nan) == "" and clean_text("a\x00b\r\n c") == "a b c"


def test_ids_are_stripped_of_surrounding_space() -> None:
    d = hr.Dataset.from_frames(
        frame(user_id=["u1", " u1 ", "u2\t"], item_id=["i1", "i2", " i1"]),
        frame(item_id=["i1 ", "i2"], title=["One", "Two"]),
    )
    assert list(d.user_ids) == ["u1", "u2"] and list(d.item_ids) == ["i1", "i2"]
    assert d.history("u1") == ["i1", "i2"]
    with pytest.raises(hr.DataError, match="empty id"):
        hr.Dataset.from_frames(frame(user_id=["u1", "  "], item_id=["i1", "i2"]))


def test_unicode_digit_ids_do_not_crash() -> None:
    d = hr.Dataset.from_frames(frame(user_id=["\u00b2", "10", "9", "\u0663"], item_id=[1, 2, 3, 4]))
    assert list(d.user_ids) == ["9", "10", "\u00b2", "\u0663"]  # numbers first, by value
    assert d.history("\u00b2") == ["1"]


def test_ratings_must_fit_float32() -> None:
    for bad in (1e39, float("inf"), -float("inf"), "1e39"):
        with pytest.raises(hr.DataError, match="row 1 is infinite or too large"):
            hr.Dataset.from_frames(frame(user_id=[1, 1], item_id=[1, 2], rating=[5.0, bad]))
    implicit = hr.Dataset.from_frames(
        frame(user_id=[1, 1], item_id=[1, 2], rating=[5.0, np.nan])  # NaN: implicit event
    )
    assert np.isnan(implicit.interactions["rating"].iloc[1])
    assert np.isfinite(
        hr.Dataset.from_frames(frame(user_id=[1], item_id=[1], rating=[3.4e38])).interactions[
            "rating"
        ]
    ).all()


def test_timestamps_out_of_range_are_refused() -> None:
    for bad in (1e19, float("inf"), -9.3e18):
        with pytest.raises(hr.DataError, match="out of range"):
            hr.Dataset.from_frames(frame(user_id=[1, 1], item_id=[1, 2], timestamp=[1.0, bad]))


def test_has_timestamps(ds: hr.Dataset) -> None:
    assert ds.has_timestamps and ds.info()["timestamps"] is True
    untimed = hr.Dataset.from_frames(frame(user_id=[1, 1], item_id=[1, 2]))
    assert not untimed.has_timestamps
    assert untimed.info()["timestamps"] is False and untimed.info()["first_timestamp"] is None


# --------------------------------------------------------------------------- k-core
def test_k_core_drops_until_stable() -> None:
    # item 30 has 1 interaction; dropping it leaves user 3 with 1, so user 3 goes too, and then
    # item 20 (held by users 1 and 3) has 1 left and goes, leaving user 1 with one: a cascade
    inter = frame(
        user_id=[1, 1, 2, 2, 2, 3, 3, 4, 4],
        item_id=[10, 20, 10, 40, 50, 20, 30, 40, 50],
        timestamp=[1, 2, 3, 4, 5, 6, 7, 8, 9],
    )
    items = frame(item_id=[10, 20, 30, 40, 50, 60], title=["A", "B", "C", "D", "E", "F"])
    ds = hr.Dataset.from_frames(inter, items, name="toy")
    core = ds.k_core(2)
    assert core.name == "toy-2core"
    assert list(core.user_ids) == ["2", "4"] and list(core.item_ids) == ["40", "50"]
    assert list(core.items["title"]) == ["D", "E"]  # the catalogue's text of kept items
    assert core.history("2") == ["40", "50"] and core.n_interactions == 4
    assert core.item_popularity().min() >= 2
    assert np.bincount(core.interactions["user"]).min() >= 2
    # the original is untouched; k=1 keeps every user and item with an interaction
    assert ds.n_items == 6 and ds.k_core(1).n_items == 5


def test_k_core_keeps_profiles_and_time_order() -> None:
    inter = frame(user_id=[1, 1, 2, 2], item_id=[10, 20, 20, 10], timestamp=[5, 1, 2, 9])
    users = frame(user_id=[1, 2, 3], age=[30, 40, 50])
    ds = hr.Dataset.from_frames(inter, users=users, name="p")
    core = ds.k_core(2)
    assert list(core.user_ids) == ["1", "2"] and list(core.users["age"]) == [30, 40]
    assert core.history("1") == ["20", "10"]  # oldest first, as in the source


@pytest.mark.parametrize("bad", [0, -1, 2.5, "5", True, None])
def test_k_core_refuses_a_bad_k(ds: hr.Dataset, bad: object) -> None:
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        ds.k_core(bad)  # type: ignore[arg-type]


def test_k_core_that_leaves_nothing_is_an_error(ds: hr.Dataset) -> None:
    with pytest.raises(ValueError, match="3-core of 'toy' is empty"):
        ds.k_core(3)


def test_k_core_of_ml_latest_small() -> None:
    core = hr.load_dataset("ml-latest-small").k_core(5)
    # LlamaRec's table: 610 users, 3,650 items after 5-core filtering
    assert (core.n_users, core.n_items, core.name) == (610, 3650, "ml-latest-small-5core")
    assert core.item("1").title == "Toy Story (1995)"
