"""The ``Reranker`` interface: score and order a user's candidate items, given by id or as text.

A reranker has the lifecycle of a recommender (it *is* a
:class:`~hybridrec.recommender.Recommender` without full scoring and without a candidate source
of its own): ``fit`` on a :class:`~hybridrec.data.dataset.Dataset`, ``save``/``load`` with a
checked manifest, a registry (:func:`hybridrec.registry.create_reranker`, entry-point group
``hybridrec.rerankers``) and a contract suite (:class:`hybridrec.contract.RerankerContract`).

Its one batched scoring method is :meth:`Reranker.score_candidates`: per request, candidates given
as catalogue item ids or as :class:`~hybridrec.types.Item` values whose ``text`` is scored as is
(items outside the catalogue are fine: their text is all the reranker reads).
:meth:`Reranker.rerank` orders them. Subclasses implement ``_score_texts``.

Example:
    >>> import hybridrec as hr
    >>> split = hr.split(hr.load_dataset("ml-latest-small"), "leave-one-out")
    >>> rr = hr.create_reranker("similarity").fit(split.train)  # doctest: +SKIP
    >>> rr.rerank("1", ["1", "2", hr.Item("new", text="A space opera")], k=2)  # doctest: +SKIP
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hybridrec.data.dataset import Dataset
from hybridrec.data.text import ItemTextBuilder
from hybridrec.recommender import Recommender, Request, UserLike, _as_user_list, check_k
from hybridrec.types import Item, Recommendation

Candidate = Item | str | int


class Reranker(Recommender):
    """Base class of rerankers: scores candidate items for a user (higher is better).

    Subclasses implement ``_fit`` and ``_score_texts``. The catalogue texts the reranker reads
    for item ids are the dataset's item texts (:meth:`Dataset.item_texts`), stored at fit time.
    """

    #: rerankers rank given candidates; the recommender interface's full scoring is not offered
    full_scoring: ClassVar[bool] = False
    uses: ClassVar[frozenset[str]] = frozenset({"history"})

    def __init__(self) -> None:
        super().__init__()
        self.item_texts_: list[str] | None = None

    def fit(self, train: Dataset) -> Reranker:
        """Fit on a training dataset (stores the catalogue texts); returns ``self``."""
        from hybridrec.checks import check_dataset

        check_dataset(train, "the training data")
        self.item_texts_ = train.item_texts(self._text_builder())
        super().fit(train)
        return self

    def _text_builder(self) -> ItemTextBuilder | None:
        """The item-text builder (None: the dataset default); subclasses may choose fields."""
        return None

    @abstractmethod
    def _score_texts(
        self, requests: Sequence[Request], texts: Sequence[list[str]], codes: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Scores of each request's candidates, given as texts and catalogue codes (-1: none).

        Args:
            requests: the resolved requests (history as catalogue codes).
            texts: per request, the text of every candidate.
            codes: per request, the catalogue code of every candidate, -1 for an outside item.
        """

    def _score_candidates(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        assert self.item_texts_ is not None
        texts = [[self.item_texts_[c] for c in codes] for codes in candidates]
        return self._score_texts(requests, texts, [np.asarray(c, np.int64) for c in candidates])

    def _candidates(self, requests: Sequence[Request], exclude_seen: bool) -> list[np.ndarray]:
        raise ValueError(
            f"the reranker {self.name!r} ranks given candidates: pass candidates=[...], use "
            "rerank(), or put it behind a candidate source with create('two-stage', "
            f"reranker={self.name!r})"
        )

    def _is_cold(self, request: Request) -> bool:
        return False  # a reranker scores what it is given; it never answers with popularity

    # ------------------------------------------------------------------ public API
    def score_candidates(
        self,
        users: Sequence[UserLike],
        candidates: Sequence[Sequence[Candidate]],
        *,
        on_unused: str = "warn",
    ) -> list[np.ndarray]:
        """Scores of each user's candidates, in the order given (higher is better).

        Args:
            users: known user ids or :class:`~hybridrec.types.UserContext` values.
            candidates: per user, catalogue item ids and/or :class:`~hybridrec.types.Item`
                values (an ``Item`` with text is scored by its text, even outside the catalogue;
                one without text must be in the catalogue).
            on_unused: as in :meth:`Recommender.recommend`, for request input the reranker
                does not read (see :attr:`uses`).
        """
        self._check_fitted()
        users = _as_user_list(users)
        self._check_unused(users, on_unused)
        candidates = [self._check_candidates(c) for c in candidates]
        if len(users) != len(candidates):
            raise ValueError(
                f"users ({len(users)}) and candidates ({len(candidates)}) differ in length"
            )
        requests = [self._resolve(u) for u in users]
        texts, codes = [], []
        for cands in candidates:
            t, c = self._texts_and_codes(cands)
            texts.append(t)
            codes.append(c)
        out: list[np.ndarray] = [np.empty(0, np.float64) for _ in requests]
        todo = [i for i, c in enumerate(codes) if len(c)]
        if todo:
            scored = self._score_texts(
                [requests[i] for i in todo], [texts[i] for i in todo], [codes[i] for i in todo]
            )
            for i, s in zip(todo, scored, strict=True):
                out[i] = np.asarray(s, dtype=np.float64).reshape(len(codes[i]))
        return out

    def rerank(
        self,
        user: UserLike,
        candidates: Sequence[Candidate],
        k: int | None = None,
        *,
        on_unused: str = "warn",
    ) -> list[Recommendation]:
        """The ``k`` best of ``candidates`` (all when ``k`` is None), best first.

        Ties keep the order given. An empty candidate list gives an empty answer; a candidate
        given twice (the same item id) is ranked once, at its first place. An ``Item`` with
        blank text stands for its catalogue entry (unknown id: ``UnknownIdError``). Input of the
        request the reranker does not read is handled as ``on_unused`` says and listed in
        ``notes``.

        Example:
            >>> # rr.rerank(hr.UserContext(preference_text="heists"), ["1", "2"], k=1)
        """
        cands = list(
            {_candidate_id(c): c for c in reversed(self._check_candidates(candidates))}.values()
        )[::-1]
        k = len(cands) if k is None else check_k(k)
        scores = self.score_candidates([user], [cands], on_unused=on_unused)[0]
        order = best_first(scores, k)
        ids = [_candidate_id(c) for c in cands]
        notes = self._ignored_notes(self.unused_inputs(user))
        return [
            Recommendation(ids[i], float(scores[i]), rank, self.name, notes=notes)
            for rank, i in enumerate(order, 1)
        ]

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_candidates(candidates: Any) -> list[Candidate]:
        if isinstance(candidates, str | int | Item) or candidates is None:
            raise TypeError(f"candidates must be a list of item ids or Items, not {candidates!r}")
        return list(candidates)

    def _texts_and_codes(self, candidates: Sequence[Candidate]) -> tuple[list[str], np.ndarray]:
        assert self.item_texts_ is not None
        texts: list[str] = []
        codes = np.full(len(candidates), -1, dtype=np.int64)
        for pos, cand in enumerate(candidates):
            if isinstance(cand, Item) and cand.text.strip():
                texts.append(cand.text)
                known = self._item_code(cand.item_id)
                codes[pos] = known
                continue
            item_id = cand.item_id if isinstance(cand, Item) else cand
            code = int(self._item_codes([item_id], kind="candidate item")[0])
            codes[pos] = code
            texts.append(self.item_texts_[code])
        return texts, codes

    def _state(self) -> dict[str, np.ndarray]:
        assert self.item_texts_ is not None
        return {"item_texts": np.asarray(self.item_texts_, dtype=str)}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_texts_ = [str(t) for t in arrays["item_texts"]]
        if len(self.item_texts_) != len(self.item_ids_):
            raise ValueError("item texts do not match the catalogue")

    def _extra_manifest(self) -> dict[str, Any]:
        return {"kind": "reranker"}


def _candidate_id(candidate: Candidate) -> str:
    from hybridrec.types import normalise_id

    return candidate.item_id if isinstance(candidate, Item) else normalise_id(candidate)


def best_first(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first; ties keep the order given, NaN last.

    Example:
        >>> best_first(np.array([0.5, np.nan, 0.9, 0.5]), 3).tolist()
        [2, 0, 3]
    """
    return np.argsort(-np.where(np.isnan(scores), -np.inf, scores), kind="stable")[:k]

