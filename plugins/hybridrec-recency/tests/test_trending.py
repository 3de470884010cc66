"""The plugin passes hybridrec's contract and ranks recent interactions above old ones."""

from __future__ import annotations

import pandas as pd

import hybridrec as hr
from hybridrec.contract import RecommenderContract


class TestTrendingContract(RecommenderContract):
    def make(self) -> hr.Recommender:
        return hr.create("trending")


def test_registered_as_a_plugin() -> None:
    from hybridrec.registry import entries

    assert entries()["trending"].source == "plugin:hybridrec-recency"


def test_recent_beats_old_popularity() -> None:
    day = 86_400
    rows = [(u, "old", 5.0, 0) for u in range(3)]  # three interactions 400 days ago
    rows += [(10, "new", 5.0, 400 * day), (11, "new", 5.0, 400 * day)]  # two today
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    ds = hr.Dataset.from_frames(frame)
    assert hr.create("popularity").fit(ds).recommend(hr.UserContext(), k=1)[0].item_id == "old"
    trend = hr.create("trending", half_life_days=30.0).fit(ds)
    # 3 * 0.5 ** (400 / 30) is far below 2
    assert trend.recommend(hr.UserContext(), k=1)[0].item_id == "new"
