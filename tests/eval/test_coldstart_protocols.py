"""The cold-start protocol's options: sampled lists (LLMRank) and title-based preference texts."""

from __future__ import annotations

import numpy as np
import pytest

import hybridrec as hr
from hybridrec.contract import synthetic_dataset
from hybridrec.eval.protocols import ColdStart, ColdStartSampled, _rank_of, titles_text


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset()


def make(data, sampling: str = "random", **kw) -> ColdStartSampled:
    return ColdStartSampled(
        data, frac=0.3, sampling=sampling, negatives=5, seed=0, users=None, k=(1, 5, 10), **kw
    )


def test_lists_hold_the_first_later_liked_item_and_unseen_negatives(data) -> None:
    p = make(data)
    seen = data.matrix("binary").tocsr()
    assert p.candidates.shape == (len(p.users), 6)
    for user, pos, cands in zip(p.users, p.positives, p.candidates, strict=True):
        assert pos in cands and len(set(cands.tolist())) == 6
        negatives = cands[cands != pos]
        assert not seen[user, negatives].toarray().any()  # never interacted with
        assert p.relevant[list(p.users).index(user), pos]  # liked after the seed items
    assert p.name == "cold-start-sampled-random" and p.fit_key == "cold-start"
    assert "NOT comparable" in p.description


def test_positions_are_shuffled_and_seeded(data) -> None:
    p, again = make(data), make(data)
    np.testing.assert_array_equal(p.candidates, again.candidates)
    pairs = zip(p.candidates, p.positives, strict=True)
    places = [int(np.flatnonzero(c == pos)[0]) for c, pos in pairs]
    assert len(set(places)) > 1


def test_an_oracle_scores_one_and_hand_computed_ranks(data) -> None:
    p = make(data, sampling="popularity")

    class Oracle:
        name = "oracle"
        item_ids_ = data.item_ids
        row = 0

        def score(self, ctx, items, on_unused="ignore"):
            want = str(data.item_ids[p.positives[self.row]])
            self.row += 1
            return np.array([1.0 if i == want else 0.0 for i in items])

    ev = p.evaluate(Oracle())  # type: ignore[arg-type]
    assert ev.per_user["ndcg@1"].tolist() == [1.0] * len(p.users)
    assert ev.per_user["mrr"].tolist() == [1.0] * len(p.users)
    rng = np.random.default_rng(0)
    # positive second of four: rank 2; NDCG@5 = 1/log2(3)
    assert _rank_of(np.array([0.5, 0.9, 0.1, 0.2]), np.array([True, False, False, False]), rng) == 2
    assert _rank_of(np.array([np.nan, 0.0]), np.array([True, False]), rng) == 2
    assert 1 <= _rank_of(np.array([1.0, 1.0]), np.array([True, False]), rng) <= 2


def test_popularity_beats_random_with_popularity_weighted_negatives_less(data) -> None:
    train = make(data).fit_data
    pop = hr.create("popularity").fit(train)
    ev = make(data).evaluate(pop)
    assert set(ev.per_user) == {"hr@1", "ndcg@1", "hr@5", "ndcg@5", "mrr"}  # k=10 >= list
    assert np.isfinite(ev.per_user["mrr"]).all()


def test_bad_options_are_refused(data) -> None:
    with pytest.raises(ValueError, match="sampling"):
        make(data, sampling="hard")
    with pytest.raises(ValueError, match="text_from"):
        ColdStart(data, frac=0.3, with_text=True, seed=0, users=None, k=(5,), text_from="x")


def test_title_texts(data) -> None:
    assert titles_text(data, [0, 1]) == "I liked 'Sci-fi 0' and 'Sci-fi 1'."
    p = ColdStart(data, frac=0.3, with_text=True, seed=0, users=None, k=(5,), text_from="titles")
    assert all(t.startswith("I liked '") for t in p.texts)
    assert "titles of their first 3" in p.description
    default = ColdStart(data, frac=0.3, with_text=True, seed=0, users=None, k=(5,))
    assert default.name == "cold-start-text" and default.texts[0].startswith("I enjoy")
