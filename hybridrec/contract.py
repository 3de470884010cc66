"""The contract every registered recommender (plugins included) must pass.

Use it from pytest by subclassing :class:`RecommenderContract` and defining ``make``::

    class TestMine(RecommenderContract):
        def make(self):
            return hybridrec.create("mine")

Rerankers subclass :class:`RerankerContract` the same way (``make`` returns an unfitted reranker).

The synthetic data has a known right answer: two taste groups (space sci-fi, romance) with
textual descriptions; probe user ``probe-a`` has seen every sci-fi item but ``a0``, and ``a0`` is
also the most popular item the probe has not seen, so any non-random recommender must put ``a0``
first. Personalised recommenders must also put ``b0`` first for ``probe-b``, whose unseen items
are dominated in popularity by the other group. Each group user watches its group's items in a
rotated order (user ``u`` starts at item ``u``), so that a sequence-aware recommender sees every
item both following and followed: with one shared order, ``a0`` would never be anyone's next
item, and a next-item model could not learn the answer.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from hybridrec.data.dataset import Dataset
from hybridrec.errors import ModelFileError, UnknownIdError, UnusedInputError, UnusedInputWarning
from hybridrec.recommender import FALLBACK_STAGE, INPUTS, Recommender
from hybridrec.registry import load
from hybridrec.reranker import Reranker
from hybridrec.types import Interaction, Item, UserContext

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
                rows.append((user, f"{group}{(i + u) % 10}", 5.0, t))
        for i in range(1, 10):  # the probe has seen everything of its group but item 0
            t += 1
            rows.append((f"probe-{group}", f"{group}{i}", 5.0, t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Dataset.from_frames(frame, items, name="contract")


def assert_corruption_is_refused(folder: Path) -> None:
    """Flip a byte in a saved folder's ``state.npz``: loading must refuse it, naming the file."""
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


class RecommenderContract:
    """Mixin of pytest tests; subclasses define ``make()`` returning an unfitted recommender.

    ``atol`` is the tolerance between two scoring paths of the same scores (batched against
    one by one, candidates against the full catalogue); a language model's float32 scores
    move by about 1e-5 with the batch they are computed in, so it sets ``atol = 1e-4``.
    """

    k = 5
    atol = 1e-6

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

    def test_declares_its_inputs_and_scoring(self) -> None:
        rec = self.make()
        assert set(rec.uses) <= set(INPUTS), rec.uses
        assert isinstance(rec.full_scoring, bool)
        if not rec.full_scoring:
            rec, _ = self.fitted()
            assert rec.candidate_count and rec.candidate_count > 0
            assert isinstance(rec.candidate_source, str) and rec.candidate_source

    def _requests(self, data: Dataset) -> list:
        return [
            "probe-a",
            "b-user3",
            UserContext(history=(Interaction("a1", 5.0), Interaction("b2", 2.0))),
            UserContext("a-user1", history=(Interaction("b4", 5.0),)),
            UserContext(),  # cold: the documented fallback
        ]

    def test_candidate_scoring_agrees_with_full_scoring(self) -> None:
        rec, data = self.fitted()
        requests = self._requests(data)
        items = list(data.item_ids)
        rng = np.random.default_rng(0)
        lists = [list(rng.permutation(items)[: 3 + i]) for i in range(len(requests))]
        scored = rec.score_candidates(requests, lists)
        assert [len(s) for s in scored] == [len(c) for c in lists]
        for user, cands, scores in zip(requests, lists, scored, strict=True):
            np.testing.assert_allclose(
                rec.score(user, cands), scores, rtol=self.atol, atol=self.atol
            )
        pairs = rec.score_pairs(requests, [c[0] for c in lists])
        np.testing.assert_allclose(pairs, [s[0] for s in scored], rtol=self.atol, atol=self.atol)
        if rec.full_scoring:
            dense = rec.score_all(requests)
            assert dense.shape == (len(requests), len(items))
            codes = {item: i for i, item in enumerate(items)}
            for row, cands, scores in zip(dense, lists, scored, strict=True):
                np.testing.assert_allclose(
                    row[[codes[c] for c in cands]], scores, rtol=10 * self.atol, atol=10 * self.atol
                )
        else:
            try:
                rec.score_all(requests)
            except NotImplementedError:
                pass
            else:
                raise AssertionError("score_all must refuse without full_scoring")

    def test_top_k_scores_equal_candidate_scores(self) -> None:
        rec, data = self.fitted()
        for user in self._requests(data):
            recs = rec.recommend(user, k=self.k)
            got = rec.score(user, [r.item_id for r in recs])
            np.testing.assert_allclose(
                got, [r.score for r in recs], rtol=10 * self.atol, atol=10 * self.atol
            )

    def test_cold_fallback_is_marked(self) -> None:
        rec, _ = self.fitted()
        recs = rec.recommend(UserContext(), k=3)
        if rec.cold_start_popularity:
            assert {r.stage for r in recs} == {FALLBACK_STAGE}
        warm = rec.recommend("probe-a", k=3)
        assert FALLBACK_STAGE not in {r.stage for r in warm}

    def test_text_it_cannot_read_is_reported(self) -> None:
        rec, _ = self.fitted()
        ctx = UserContext(history=(Interaction("a1", 5.0),), preference_text="romance in Paris")
        if "text" in rec.uses:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UnusedInputWarning)
                recs = rec.recommend(ctx, k=3)
            assert all(not r.notes for r in recs)
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            recs = rec.recommend(ctx, k=3)
        assert any(issubclass(w.category, UnusedInputWarning) for w in caught)
        assert recs and all("preference_text" in " ".join(r.notes) for r in recs)
        try:
            rec.recommend(ctx, k=3, on_unused="raise")
        except UnusedInputError as err:
            assert "preference_text" in str(err)
        else:
            raise AssertionError("on_unused='raise' must raise")
        quiet = rec.recommend(ctx, k=3, on_unused="ignore")
        assert [r.item_id for r in quiet] == [r.item_id for r in recs]

    def test_bad_k_is_refused(self) -> None:
        rec, _ = self.fitted()
        for bad in ("5", None, 2.5, 0, -1, True):
            try:
                rec.recommend("probe-a", k=bad)  # type: ignore[arg-type]
            except (TypeError, ValueError) as err:
                assert "k must" in str(err)
            else:
                raise AssertionError(f"k={bad!r} must be refused")

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
        assert_corruption_is_refused(rec.save(tmp_path / "model"))


class RerankerContract:
    """Mixin of pytest tests for rerankers; subclasses define ``make()`` (an unfitted reranker).

    The right answer: for ``probe-a`` (a sci-fi fan) the unseen sci-fi item ``a0`` outranks
    romance items, whether candidates are given by id or as raw text outside the catalogue.
    """

    atol = 1e-6  # as RecommenderContract.atol

    def make(self) -> Reranker:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def fitted(self) -> tuple[Reranker, Dataset]:
        data = synthetic_dataset()
        rr = self.make()
        assert isinstance(rr, Reranker)
        assert rr.fit(data) is rr
        return rr, data

    def test_known_right_answer(self) -> None:
        rr, _ = self.fitted()
        ranked = rr.rerank("probe-a", ["b3", "a0", "b4"], k=3)
        assert [r.rank for r in ranked] == [1, 2, 3]
        assert ranked[0].item_id == "a0"
        assert {r.item_id for r in ranked} == {"a0", "b3", "b4"}
        assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
        assert len(rr.rerank("probe-a", ["b3", "a0", "b4"], k=1)) == 1

    def test_raw_texts_need_no_catalogue_entry(self) -> None:
        rr, _ = self.fitted()
        outside = [
            Item("new-romance", text="Two lovers marry after a whirlwind romance in Venice"),
            Item("new-space", text="Astronauts pilot a starship to an alien planet"),
        ]
        ranked = rr.rerank("probe-a", outside)
        assert ranked[0].item_id == "new-space"
        mixed = rr.score_candidates(["probe-a"], [["b3", *outside]])[0]
        assert mixed.shape == (3,) and np.isfinite(mixed).all()

    def test_batch_equals_loop(self) -> None:
        rr, data = self.fitted()
        users = list(data.user_ids[:6])
        lists = [["a0", "b0", "a5"], ["b1"], ["a2", "b9"], [], ["a0"], ["b0", "a0"]]
        batch = rr.score_candidates(users, lists)
        for user, cands, scores in zip(users, lists, batch, strict=True):
            np.testing.assert_allclose(
                rr.score(user, cands), scores, rtol=self.atol, atol=self.atol
            )
        assert rr.rerank(users[0], []) == []

    def test_bad_input(self) -> None:
        rr, _ = self.fitted()
        for call in (
            lambda: rr.rerank("probe-a", ["zzz"]),
            lambda: rr.rerank("no-such-user", ["a0"]),
        ):
            try:
                call()
            except UnknownIdError:
                pass
            else:
                raise AssertionError("unknown ids must raise UnknownIdError")
        try:
            rr.rerank("probe-a", "a0")  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            raise AssertionError("a bare string is not a candidate list")
        try:
            rr.recommend("probe-a", k=3)  # no candidates: a reranker has no source of its own
        except ValueError as err:
            assert "candidates" in str(err)
        else:
            raise AssertionError("a reranker needs candidates")

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        rr, data = self.fitted()
        rr.save(tmp_path / "reranker")
        again = load(tmp_path / "reranker")
        assert type(again) is type(rr)
        lists = [["a0", "b0", "a5"], ["b1", "a1"]]
        users = ["probe-a", "probe-b"]
        for a, b in zip(
            rr.score_candidates(users, lists), again.score_candidates(users, lists), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=self.atol, atol=self.atol)

    def test_corrupted_save_is_refused(self, tmp_path: Path) -> None:
        rr, _ = self.fitted()
        assert_corruption_is_refused(rr.save(tmp_path / "reranker"))
