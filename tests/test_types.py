"""Typed values: id normalisation and immutability."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hybridrec.types import Interaction, Item, Recommendation, UserContext, normalise_id


def test_ids_normalise_to_strings() -> None:
    assert normalise_id(7) == "7"
    assert normalise_id(np.int64(7)) == "7"
    assert normalise_id(7.0) == "7"
    assert normalise_id("B00005N7P0") == "B00005N7P0"
    for bad in (7.5, None, True):
        with pytest.raises(TypeError):
            normalise_id(bad)


def test_values_are_frozen() -> None:
    item = Item(1, "Heat", metadata={"year": 1995})
    assert item.item_id == "1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.title = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        item.metadata["year"] = 2000  # type: ignore[index]
    rec = Recommendation("1", 0.5, 1, "ease")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.score = 1.0  # type: ignore[misc]


def test_user_context_accepts_plain_ids_in_history() -> None:
    ctx = UserContext(3, history=("10", Interaction(11, 4.0, 5)))
    assert ctx.user_id == "3"
    assert ctx.history_ids == ["10", "11"]
    assert ctx.history[1].rating == 4.0
