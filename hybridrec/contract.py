"""The contract every registered recommender (plugins included) must pass.

Use it from pytest by subclassing :class:`RecommenderContract` and defining ``make``::

    class TestMine(RecommenderContract):
        def make(self):
            return hybridrec.create("mine")

The synthetic data has a known right answer: two taste groups (space sci-fi, romance) with
textual descriptions; probe user ``probe-a`` has seen every sci-fi item but ``a0``, and ``a0`` is
also the most popular item the probe has not seen, so any non-random recommender must put ``a0``
first. Personalised recommenders must also put ``b0`` first for ``probe-b``, whose unseen items
are dominated in popularity by the other group.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.dataset import Dataset
from hybridrec.errors import ModelFileError, UnknownIdError
from hybridrec.recommender import Recommender
from hybridrec.registry import load
from hybridrec.types import Interaction, UserContext

SCI_FI = [
    "Astronauts travel through a wormhole to find a new home for humanity",
    "A starship crew explores distant galaxies and alien worlds",
    "Space marines fight aliens on a remote planet colony",
    "A lone astronaut is stranded on Mars and must survive",
    "An interstellar war between galactic empires and rebel pilots",
    "Robots and androids rebel aboard a space station orbiting Jupiter",
    "First contact with an alien civilisation from another star system",
    "A spaceship's computer turns against the crew on a mission to Saturn",
    "Time-travelling scientists race across the cosmos in a rocket",
    "Colonists terraform a frozen moon in the outer solar system",
]
ROMANCE = [
    "Two strangers fall in love during a summer in Paris",
    "A wedding planner falls for the groom's best friend",
    "Childhood sweethearts reunite years later in their home town",
    "A romantic comedy about a bookshop owner and a famous actor",
    "Love letters lead a young widow to a new romance",
    "A heartwarming love story between two rival chefs",
    "Star-crossed lovers from feuding families marry in secret",
    "A dating app mix-up turns into true love",
    "A holiday romance on a Greek island changes two lives",
    "An old couple remembers how they fell in love",
]


def synthetic_dataset() -> Dataset:
    """The contract's synthetic dataset (20 group-A users, 10 group-B users, 20 items)."""
    items = pd.DataFrame(
        {
            "item_id": [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)],
            "title": [f"Sci-fi {i}" for i in range(10)] + [f"Romance {i}" for i in range(10)],
            "description": SCI_FI + ROMANCE,
            "genres": [["Sci-Fi"]] * 10 + [["Romance"]] * 10,
        }
    )
    rows = []
    t = 1_000_000
    for group, n_users in (("a", 20), ("b", 10)):
        for u in range(n_users):
            user = f"{group}-user{u}"
            for i in range(10):
                t += 1
                rows.append((user, f"{group}{i}", 5.0, t))
        for i in range(1, 10):  # the probe has seen everything of its group but item 0
            t += 1
            rows.append((f"probe-{group}", f"{group}{i}", 5.0, t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset.from_frames(frame, items, name="contract")


class RecommenderContract:
    """Mixin of pytest tests; subclasses define ``make()`` returning an unfitted recommender."""

    k = 5

    def make(self) -> Recommender:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def fitted(self) -> tuple[Recommender, Dataset]:
        data = synthetic_dataset()
        rec = self.make()
        assert rec.fit(data) is rec
        return rec, data

    def test_lists_are_well_formed(self) -> None:
        rec, data = self.fitted()
        for user in data.user_ids:
            recs = rec.recommend(user, k=self.k)
            assert 0 < len(recs) <= self.k
            assert [r.rank for r in recs] == list(range(1, len(recs) + 1))
            scores = [r.score for r in recs]
            assert scores == sorted(scores, reverse=True)
            ids = [r.item_id for r in recs]
            assert len(set(ids)) == len(ids)
            assert set(ids) <= set(data.item_ids)

    def test_seen_items_are_excluded(self) -> None:
        rec, data = self.fitted()
        for user in data.user_ids:
            seen = set(data.history(user))
            recs = rec.recommend(user, k=20)
            assert not seen & {r.item_id for r in recs}
            assert len(recs) == 20 - len(seen)
        with_seen = rec.recommend("probe-a", k=20, exclude_seen=False)
        assert len(with_seen) == 20

    def test_known_right_answer(self) -> None:
        rec, _ = self.fitted()
        if rec.name == "random":
            return
        assert rec.recommend("probe-a", k=1)[0].item_id == "a0"
        if rec.personalised:
            assert rec.recommend("probe-b", k=1)[0].item_id == "b0"

    def test_unknown_and_cold_users(self) -> None:
        rec, data = self.fitted()
        try:
            rec.recommend("no-such-user", k=3)
        except UnknownIdError as err:
            assert "no-such-user" in str(err)
        else:
            raise AssertionError("an unknown plain user id must raise UnknownIdError")
        cold = rec.recommend(UserContext(), k=3)  # documented fallback, never an error
        assert len(cold) == 3
        anon = rec.recommend(UserContext(history=(Interaction("a1", 5.0),)), k=3)
        assert "a1" not in {r.item_id for r in anon}
        try:
            rec.recommend(UserContext(history=(Interaction("zzz"),)), k=3)
        except UnknownIdError as err:
            assert "zzz" in str(err)
        else:
            raise AssertionError("an unknown item in a history must raise UnknownIdError")

    def test_batch_equals_loop(self) -> None:
        rec, data = self.fitted()
        users = list(data.user_ids)
        assert rec.recommend_batch(users, k=self.k) == [rec.recommend(u, k=self.k) for u in users]

    def test_candidates_restrict_the_ranking(self) -> None:
        rec, _ = self.fitted()
        candidates = ["a0", "b3", "b4"]
        recs = rec.recommend("probe-a", k=10, candidates=candidates)
        assert {r.item_id for r in recs} == set(candidates)

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        rec, data = self.fitted()
        rec.save(tmp_path / "model")
        again = load(tmp_path / "model")
        assert type(again) is type(rec)
        users = list(data.user_ids)
        before = rec.recommend_batch(users, k=self.k)
        after = again.recommend_batch(users, k=self.k)
        assert [[r.item_id for r in row] for row in before] == [
            [r.item_id for r in row] for row in after
        ]
        assert np.allclose(
            [r.score for row in before for r in row], [r.score for row in after for r in row]
        )

    def test_corrupted_save_is_refused(self, tmp_path: Path) -> None:
        rec, _ = self.fitted()
        folder = rec.save(tmp_path / "model")
        state = folder / "state.npz"
        blob = bytearray(state.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        state.write_bytes(bytes(blob))
        try:
            load(folder)
        except ModelFileError as err:
            assert "state.npz" in str(err)
        else:
            raise AssertionError("a corrupted model file must be refused")
