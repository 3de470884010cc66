"""The ``Recommender`` interface every stage, baseline and plugin implements.

A recommender is fitted on a training :class:`~hybridrec.data.dataset.Dataset` and then answers
for a user given as a known user id or as a :class:`~hybridrec.types.UserContext`:

* a known user id: their training history is used;
* a ``UserContext`` with a history: that history is used (ids must be in the catalogue);
* a ``UserContext`` with no history (cold start) or whose id is known: as above, falling back
  to the user's training history when the context carries none;
* an unknown plain id raises :class:`~hybridrec.errors.UnknownIdError` (a typo should not look
  like a cold-start user); pass ``UserContext(user_id)`` to ask for cold-start behaviour.

Scoring. Every recommender scores *candidates*: given requests and, per request, the items to
score (:meth:`Recommender.score_candidates`; subclasses implement ``_score_candidates``).
Scoring the whole catalogue at once is an optional fast path that classical models declare with
``full_scoring = True`` and implement as ``_score_all`` (dense rows); for them the candidate
path defaults to gathering from the dense rows, and a faster sparse one may override it (the
contract suite checks that both agree). A recommender without full scoring ranks the candidates
of its own source (``_candidates``, described by :attr:`Recommender.candidate_source`), which is
also what the benchmark evaluates it on.

Inputs. A recommender declares in :attr:`Recommender.uses` what it reads from a request
(``history``, ``ratings``, ``order``, ``text``, ``profile``). A request whose free text or
profile would be ignored warns (or raises, ``on_unused="raise"``), and every
:class:`~hybridrec.types.Recommendation` of it lists what was ignored in ``notes``. Requests
with no history that a recommender cannot personalise get the documented popularity fallback
(``cold_start_popularity``); their recommendations carry ``stage="fallback:popularity"``.

Persistence (:class:`~hybridrec.saved.SavedModel`, in :mod:`hybridrec.saved`): subclasses
implement ``_state`` / ``_load_state`` (arrays) and optionally ``_save_extra`` / ``_load_extra``
(other files).
"""

from __future__ import annotations

import inspect
import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from hybridrec.data.dataset import Dataset
from hybridrec.errors import (
    NotFittedError,
    UnknownIdError,
    UnusedInputError,
    UnusedInputWarning,
)
from hybridrec.saved import STATE_FILE, SavedModel, item_ids_checksum  # noqa: F401 - re-exported
from hybridrec.types import Recommendation, UserContext, normalise_id

logger = logging.getLogger(__name__)

UserLike = UserContext | str | int
BATCH_USERS = 256
#: what a recommender may read from a request
INPUTS = ("history", "ratings", "order", "text", "profile")
#: answers to a request carrying input the recommender does not read
ON_UNUSED = ("warn", "raise", "ignore")
#: the ``stage`` of recommendations made by the popularity fallback
FALLBACK_STAGE = "fallback:popularity"


@dataclass(frozen=True, eq=False)
class Request:
    """One request resolved against a fitted recommender's vocabularies.

    Attributes:
        user: the request as given (a normalised user id, a ``UserContext``, or None for
            internal requests built from codes).
        code: the user's code, -1 when unknown at training time.
        history: item codes of the history used (the context's, else the training history).
    """

    user: UserContext | str | None
    code: int
    history: np.ndarray

    @property
    def context(self) -> UserContext | None:
        return self.user if isinstance(self.user, UserContext) else None

    @property
    def text(self) -> str | None:
        """The request's free text, None when blank or absent."""
        ctx = self.context
        return None if ctx is None or _blank(ctx.preference_text) else ctx.preference_text


class Recommender(SavedModel, ABC):
    """Base class of every recommender.

    Example:
        >>> import hybridrec as hr
        >>> split = hr.split(hr.load_dataset("ml-latest-small"), "leave-one-out")
        >>> rec = hr.create("popularity").fit(split.train)
        >>> [r.rank for r in rec.recommend("1", k=3)]
        [1, 2, 3]
    """

    #: registry name; set by subclasses
    name: ClassVar[str] = ""
    #: whether the contract suite can expect this recommender to find the obvious right answer
    #: on its synthetic data (False for random)
    personalised: ClassVar[bool] = True
    #: answer users with an empty history by training popularity (documented fallback)
    cold_start_popularity: ClassVar[bool] = True
    #: scores the whole catalogue at once (implements ``_score_all``)
    full_scoring: ClassVar[bool] = False
    #: what the recommender reads from a request (a subset of :data:`INPUTS`)
    uses: ClassVar[frozenset[str]] = frozenset({"history"})
    #: included when a benchmark config says ``"all"`` (False for stages that train a
    #: language model: minutes to hours on a CPU, so a config names them with their settings)
    in_all: ClassVar[bool] = True

    def __init__(self) -> None:
        self.item_ids_: np.ndarray | None = None
        self.user_ids_: np.ndarray | None = None
        self.seen_: sp.csr_matrix | None = None
        self.popularity_: np.ndarray | None = None
        self._user_lookup: dict[str, int] | None = None
        self._item_lookup: dict[str, int] | None = None
        #: the name of the dataset fitted on and its item titles ("" where none)
        self.catalogue_name_: str | None = None
        self.item_titles_: np.ndarray | None = None

    # ------------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, read from attributes of the same name (sklearn style)."""
        sig = inspect.signature(type(self).__init__)
        return {
            p: getattr(self, p)
            for p in sig.parameters
            if p != "self" and sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    def fit(self, train: Dataset) -> Recommender:
        """Fit on a training dataset; returns ``self``."""
        from hybridrec.checks import check_dataset

        check_dataset(train, "the training data")
        if train.n_interactions == 0:
            raise ValueError(f"cannot fit {self.name or type(self).__name__} on no interactions")
        self.item_ids_ = train.item_ids
        self.user_ids_ = train.user_ids
        self.catalogue_name_ = train.name
        self.item_titles_ = _titles(train)
        self._user_lookup = self._item_lookup = None  # rebuilt for the new vocabularies
        self.seen_ = train.matrix("binary")
        self.popularity_ = train.item_popularity().astype(np.float32)
        self._fit(train)
        return self

    @abstractmethod
    def _fit(self, train: Dataset) -> None:
        """Learn from ``train``; the base class has already stored vocabularies and seen items."""

    @property
    def is_fitted(self) -> bool:
        return self.item_ids_ is not None

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or load()")

    # ------------------------------------------------------------------ scoring
    def _score_candidates(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Scores of each request's candidate item codes: the scoring every recommender provides.

        Recommenders without full scoring must override this. The default, for
        ``full_scoring`` recommenders, gathers the candidates from the dense rows of
        :meth:`_score_all`. The base class replaces the rows of cold requests by popularity
        afterwards (see ``cold_start_popularity``), whichever path scored them.

        Args:
            requests: the resolved requests.
            candidates: per request, the item codes to score (any order, no duplicates).
        """
        if not self.full_scoring:
            raise NotImplementedError(
                f"{type(self).__name__} must implement _score_candidates (or declare "
                "full_scoring = True and implement _score_all)"
            )
        dense = self._score_all_requests(requests)
        return [row[np.asarray(c, np.int64)] for row, c in zip(dense, candidates, strict=True)]

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Dense scores ``(len(users), n_items)``, higher is better: the optional fast path.

        Only recommenders that declare ``full_scoring = True`` implement it.

        Args:
            users: user codes, -1 for users unknown at training time.
            histories: one row per user, a 1 for each item in the history used for the request.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not score the whole catalogue (full_scoring=False); "
            "use score_candidates"
        )

    def _score_all_requests(self, requests: Sequence[Request]) -> np.ndarray:
        """Dense scores for requests as given (before the cold fallback).

        Recommenders that read more of a context than its item codes (ratings, order, free text)
        override this; the default reduces requests to codes and calls :meth:`_score_all`.
        """
        codes, hist = self._request_arrays(requests)
        return np.asarray(self._score_all(codes, hist), dtype=np.float64)

    def _candidates(self, requests: Sequence[Request], exclude_seen: bool) -> list[np.ndarray]:
        """The item codes a recommender without full scoring ranks for each request.

        Recommenders that are not ``full_scoring`` override this with their own candidate
        source (described by :attr:`candidate_source`).
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no candidate source; implement _candidates or declare "
            "full_scoring"
        )

    @property
    def candidate_source(self) -> str | None:
        """What a recommender without full scoring ranks (``"top-20 of embedding"``); else None."""
        return None

    @property
    def candidate_count(self) -> int | None:
        """How many candidates such a recommender scores per request; None with full scoring."""
        return None

    def _is_cold(self, request: Request) -> bool:
        """Whether the documented popularity fallback answers this request: it has no history,
        and no free text that the recommender reads."""
        if not self.cold_start_popularity or len(request.history):
            return False
        return "text" not in self.uses or request.text is None

    def _candidate_scores(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """:meth:`_score_candidates` with cold requests answered by popularity."""
        assert self.popularity_ is not None
        cold = [self._is_cold(r) for r in requests]
        warm = [i for i, c in enumerate(cold) if not c]
        out: list[np.ndarray] = [np.empty(0)] * len(requests)
        if warm:
            scored = self._score_candidates(
                [requests[i] for i in warm], [candidates[i] for i in warm]
            )
            for i, s in zip(warm, scored, strict=True):
                out[i] = np.asarray(s, dtype=np.float64).reshape(len(candidates[i]))
        for i in np.flatnonzero(cold):
            out[i] = self.popularity_[candidates[i]].astype(np.float64)
        return out

    def _dense_scores(self, requests: Sequence[Request]) -> np.ndarray:
        """Dense scores with cold rows answered by popularity."""
        assert self.popularity_ is not None
        scores = self._score_all_requests(requests).astype(np.float64, copy=True)
        for i, r in enumerate(requests):
            if self._is_cold(r):
                scores[i] = self.popularity_
        return scores

    def _top_k(
        self,
        users: np.ndarray,
        histories: sp.csr_matrix,
        k: int,
        exclude: sp.csr_matrix | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Full-scoring top ``k`` for codes and binary histories (codes -1 where fewer exist).

        The harness's fast path for known users (:meth:`recommend_codes`).
        """
        scores = np.array(self._score_all(users, histories), dtype=np.float64)
        if self.cold_start_popularity:
            empty = np.diff(histories.indptr) == 0
            if empty.any():
                scores[empty] = self.popularity_
        if exclude is not None and exclude.nnz:
            rows, cols = exclude.nonzero()
            scores[rows, cols] = -np.inf
        return top_k_rows(scores, k)

    def _top_k_requests(
        self,
        requests: Sequence[Request],
        k: int,
        exclude_seen: bool,
        candidates: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` for resolved requests: item codes and scores, each ``(n, k)``.

        Given ``candidates`` are scored with :meth:`_score_candidates`; otherwise a full-scoring
        recommender ranks the catalogue (:meth:`_top_k`) and any other its own candidates.
        Recommenders with a faster top-k (an index search) override this.
        """
        if candidates is None and self.full_scoring:
            if type(self)._score_all_requests is Recommender._score_all_requests:
                codes, hist = self._request_arrays(requests)  # codes are all it reads
                return self._top_k(codes, hist, k, hist if exclude_seen else None)
            scores = self._dense_scores(requests)
            if exclude_seen:
                for row, r in enumerate(requests):
                    scores[row, r.history] = -np.inf
            return top_k_rows(scores, k)
        if candidates is None:
            lists = self._candidates(requests, exclude_seen)
        else:
            lists = [candidates] * len(requests)
        if exclude_seen:
            lists = [c[~np.isin(c, r.history)] for c, r in zip(lists, requests, strict=True)]
        return rank_lists(lists, self._candidate_scores(requests, lists), k)

    def _request_arrays(self, requests: Sequence[Request]) -> tuple[np.ndarray, sp.csr_matrix]:
        """User codes and the binary history matrix of resolved requests."""
        codes = np.asarray([r.code for r in requests], dtype=np.int64)
        return codes, _rows_matrix([r.history for r in requests], len(self.item_ids_))

    # ------------------------------------------------------------------ requests
    def _resolve(self, user: UserLike) -> Request:
        """The user code (-1 when unknown) and the history item codes for one request."""
        assert self.user_ids_ is not None and self.seen_ is not None
        if isinstance(user, UserContext):
            code = self._user_code(user.user_id) if user.user_id is not None else -1
            if user.history:
                return Request(user, code, self._item_codes(user.history_ids))
            if code >= 0:
                return Request(user, code, self._seen_codes(code))
            return Request(user, code, np.empty(0, dtype=np.int64))
        try:
            uid = normalise_id(user)
        except TypeError as err:
            raise TypeError(
                f"a user must be a user id (str or int) or a UserContext, not {user!r}"
            ) from err
        code = self._user_code(uid)
        if code < 0:
            raise UnknownIdError("user", [uid])
        return Request(uid, code, self._seen_codes(code))

    def _seen_codes(self, code: int) -> np.ndarray:
        assert self.seen_ is not None
        return self.seen_.indices[self.seen_.indptr[code] : self.seen_.indptr[code + 1]]

    def _user_code(self, user_id: str) -> int:
        if getattr(self, "_user_lookup", None) is None:
            self._user_lookup = {u: i for i, u in enumerate(self.user_ids_)}
        return self._user_lookup.get(normalise_id(user_id), -1)

    def _item_code(self, item_id: str) -> int:
        """The code of a normalised item id, -1 when the catalogue does not have it."""
        if getattr(self, "_item_lookup", None) is None:
            self._item_lookup = {it: i for i, it in enumerate(self.item_ids_)}
        return self._item_lookup.get(item_id, -1)

    def _item_codes(self, item_ids: Iterable[object], *, kind: str = "item") -> np.ndarray:
        if isinstance(item_ids, str):
            raise TypeError(f"{kind} ids must be a list of ids, not the string {item_ids!r}")
        ids = [normalise_id(i) for i in item_ids]
        codes = [self._item_code(i) for i in ids]
        unknown = [i for i, c in zip(ids, codes, strict=True) if c < 0]
        if unknown:
            raise UnknownIdError(kind, unknown)
        return np.asarray(codes, dtype=np.int64)

    def unused_inputs(self, user: UserLike) -> tuple[str, ...]:
        """The parts of a request this recommender does not read (see :attr:`uses`).

        Example:
            >>> import hybridrec as hr
            >>> hr.create("ease").unused_inputs(hr.UserContext(preference_text="noir"))
            ('preference_text',)
        """
        if not isinstance(user, UserContext):
            return ()
        out = []
        if "text" not in self.uses and not _blank(user.preference_text):
            out.append("preference_text")
        if "profile" not in self.uses and user.profile:
            out.append("profile")
        return tuple(out)

    def _check_unused(self, users: Sequence[UserLike], on_unused: str) -> list[tuple[str, ...]]:
        if on_unused not in ON_UNUSED:
            raise ValueError(f"on_unused must be one of {ON_UNUSED}, not {on_unused!r}")
        unused = [self.unused_inputs(u) for u in users]
        found = sorted({part for parts in unused for part in parts})
        if found and on_unused != "ignore":
            message = (
                f"{self.name or type(self).__name__} does not read {' or '.join(found)}"
                + (
                    f"; it answers from {', '.join(sorted(self.uses))} only"
                    if self.uses
                    else "; its answer is the same for every user"
                )
            )
            if on_unused == "raise":
                raise UnusedInputError(message)
            warnings.warn(message, UnusedInputWarning, stacklevel=4)
        return unused

    def recommend(
        self,
        user: UserLike,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Sequence[object] | None = None,
        on_unused: str = "warn",
    ) -> list[Recommendation]:
        """The top ``k`` items for one user, best first.

        Args:
            user: a known user id, or a :class:`UserContext` (see the module docstring).
            k: how many items at most.
            exclude_seen: leave out items in the user's history.
            candidates: rank only these item ids (for reranking or sampled evaluation).
            on_unused: what to do when the request carries input this recommender does not read
                (free text, a profile; see :attr:`uses`): ``"warn"`` (an
                :class:`~hybridrec.errors.UnusedInputWarning`, once per place), ``"raise"``
                (:class:`~hybridrec.errors.UnusedInputError`) or ``"ignore"``. Either way each
                :class:`Recommendation` lists what was ignored in ``notes``.
        """
        return self.recommend_batch(
            [user], k, exclude_seen=exclude_seen, candidates=candidates, on_unused=on_unused
        )[0]

    def recommend_batch(
        self,
        users: Sequence[UserLike],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Sequence[object] | None = None,
        on_unused: str = "warn",
    ) -> list[list[Recommendation]]:
        """``recommend`` for many users at once; equal to calling it in a loop, only faster.

        ``k`` larger than the catalogue returns at most the whole catalogue.
        """
        self._check_fitted()
        k = min(check_k(k), len(self.item_ids_))
        users = _as_user_list(users)
        unused = self._check_unused(users, on_unused)
        cand = None
        if candidates is not None:
            cand = np.unique(self._item_codes(candidates, kind="candidate item"))
        out: list[list[Recommendation]] = []
        for start in range(0, len(users), BATCH_USERS):
            chunk = users[start : start + BATCH_USERS]
            requests = [self._resolve(u) for u in chunk]
            items, scores = self._top_k_requests(requests, k, exclude_seen, cand)
            stages = [FALLBACK_STAGE if self._is_cold(r) else self.name for r in requests]
            notes = [
                self._ignored_notes(parts) + self._request_notes(r)
                for parts, r in zip(unused[start : start + len(chunk)], requests, strict=True)
            ]
            out.extend(self._to_recommendations(items, scores, stages, notes))
        return out

    def _ignored_notes(self, parts: Sequence[str]) -> tuple[str, ...]:
        return tuple(
            f"{part} ignored: {self.name or type(self).__name__} does not read it"
            for part in parts
        )

    def _request_notes(self, request: Request) -> tuple[str, ...]:
        """More notes on how a request was answered (a stage's fallback); none by default."""
        return ()

    def score_candidates(
        self,
        users: Sequence[UserLike],
        candidates: Sequence[Sequence[object]],
        *,
        on_unused: str = "warn",
    ) -> list[np.ndarray]:
        """Scores of each user's candidate items, in the order given (higher is better).

        The scoring every recommender provides, whether or not it can score the whole
        catalogue. Seen items are scored like any other. A request the recommender cannot
        personalise (see :attr:`uses`) is scored by the popularity fallback, on another scale
        (interaction counts): compare scores within one request, or check
        :meth:`unused_inputs` first.

        Args:
            users: known user ids or :class:`UserContext` values.
            candidates: per user, a list of item ids.
            on_unused: as in :meth:`recommend`: ``"warn"``, ``"raise"`` or ``"ignore"``.

        Example:
            >>> import hybridrec as hr
            >>> split = hr.split(hr.load_dataset("ml-latest-small"), "leave-one-out")
            >>> rec = hr.create("popularity").fit(split.train)
            >>> [s.tolist() for s in rec.score_candidates(["1"], [["356", "1"]])]
            [[325.0, 215.0]]
        """
        self._check_fitted()
        users = _as_user_list(users)
        self._check_unused(users, on_unused)
        candidates = list(candidates)
        if len(users) != len(candidates):
            raise ValueError(
                f"users ({len(users)}) and candidates ({len(candidates)}) differ in length"
            )
        out: list[np.ndarray] = []
        for start in range(0, len(users), BATCH_USERS):
            stop = start + BATCH_USERS
            requests = [self._resolve(u) for u in users[start:stop]]
            codes = [self._item_codes(c, kind="candidate item") for c in candidates[start:stop]]
            out.extend(self._candidate_scores(requests, codes))
        return out

    def score(
        self, user: UserLike, item_ids: Sequence[object], *, on_unused: str = "warn"
    ) -> np.ndarray:
        """Scores of the given items for one user, in the order given (higher is better)."""
        return self.score_candidates([user], [list(item_ids)], on_unused=on_unused)[0]

    def score_pairs(
        self, users: Sequence[UserLike], item_ids: Sequence[object], *, on_unused: str = "warn"
    ) -> np.ndarray:
        """The score of each (``users[i]``, ``item_ids[i]``) pair, as used by pairwise AUC."""
        users, item_ids = _as_user_list(users), list(item_ids)
        if len(users) != len(item_ids):
            raise ValueError("users and item_ids must have the same length")
        scores = self.score_candidates(users, [[i] for i in item_ids], on_unused=on_unused)
        return np.concatenate(scores) if scores else np.empty(0, np.float64)

    def score_all(self, users: Sequence[UserLike], *, on_unused: str = "warn") -> np.ndarray:
        """Dense scores ``(len(users), n_items)`` of the whole catalogue (item code order).

        Only for recommenders with ``full_scoring``; others score bounded candidate lists
        (:meth:`score_candidates`).

        Raises:
            NotImplementedError: the recommender does not score the whole catalogue.
        """
        self._check_fitted()
        if not self.full_scoring:
            raise NotImplementedError(
                f"{self.name or type(self).__name__} does not score the whole catalogue; "
                "use score_candidates"
            )
        users = _as_user_list(users)
        self._check_unused(users, on_unused)
        rows = []
        for start in range(0, len(users), BATCH_USERS):
            chunk = users[start : start + BATCH_USERS]
            rows.append(self._dense_scores([self._resolve(u) for u in chunk]))
        return np.vstack(rows) if rows else np.empty((0, len(self.item_ids_)))

    def recommend_codes(
        self, users: np.ndarray, k: int, *, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised top-k for known user codes: (items, scores), each (len(users), k).

        The evaluation harness uses this; item codes are -1 where fewer than ``k`` exist (``k``
        is capped at the catalogue size).

        Raises:
            ValueError: a code is not a known user's.
        """
        self._check_fitted()
        k = min(check_k(k), len(self.item_ids_))
        assert self.seen_ is not None and self.user_ids_ is not None
        users = np.asarray(users)
        if users.size and (
            not np.issubdtype(users.dtype, np.integer)
            or users.min() < 0
            or users.max() >= len(self.user_ids_)
        ):
            raise ValueError(
                f"user codes must be integers in [0, {len(self.user_ids_)}), got {users!r}"
            )
        all_items, all_scores = [], []
        for start in range(0, len(users), BATCH_USERS):
            codes = np.asarray(users[start : start + BATCH_USERS], dtype=np.int64)
            if self.full_scoring and type(self)._top_k_requests is Recommender._top_k_requests:
                hist = self.seen_[codes]
                items, scores = self._top_k(codes, hist, k, hist if exclude_seen else None)
            else:
                requests = [
                    Request(str(self.user_ids_[c]), int(c), self._seen_codes(int(c)))
                    for c in codes
                ]
                items, scores = self._top_k_requests(requests, k, exclude_seen, None)
            all_items.append(items)
            all_scores.append(scores)
        if not all_items:
            return np.empty((0, k), np.int64), np.empty((0, k))
        return np.vstack(all_items), np.vstack(all_scores)

    def _to_recommendations(
        self,
        items: np.ndarray,
        scores: np.ndarray,
        stages: Sequence[str] | None = None,
        notes: Sequence[tuple[str, ...]] | None = None,
    ) -> list[list[Recommendation]]:
        out = []
        for row, (row_items, row_scores) in enumerate(zip(items, scores, strict=True)):
            stage = self.name if stages is None else stages[row]
            row_notes = () if notes is None else notes[row]
            recs = []
            for rank, (code, score) in enumerate(zip(row_items, row_scores, strict=True), 1):
                if code < 0:
                    break
                recs.append(
                    Recommendation(
                        str(self.item_ids_[code]), float(score), rank, stage, notes=row_notes
                    )
                )
            out.append(recs)
        return out

def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top ``k`` of a dense score matrix, ties broken by the lower item code.

    ``-inf`` entries are never returned; their places hold code -1 and score -inf.
    """
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if k_eff < n_cols:
        part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
        # argpartition does not break ties by code; widen to every item tied with the k-th
        kth = np.take_along_axis(scores, part, 1).min(axis=1, keepdims=True)
        if np.any(
            (scores == kth).sum(axis=1) > (np.take_along_axis(scores, part, 1) == kth).sum(axis=1)
        ):
            part = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]
    else:
        part = np.tile(np.arange(n_cols), (n_rows, 1))
    part_scores = np.take_along_axis(scores, part, 1)
    order = np.lexsort((part, -part_scores), axis=1)
    items = np.take_along_axis(part, order, 1)
    vals = np.take_along_axis(part_scores, order, 1)
    items = np.where(np.isneginf(vals), -1, items)
    if k_eff < k:
        pad = k - k_eff
        items = np.hstack([items, np.full((n_rows, pad), -1)])
        vals = np.hstack([vals, np.full((n_rows, pad), -np.inf)])
    return items.astype(np.int64), vals


def _rows_matrix(rows: list[np.ndarray], n_cols: int) -> sp.csr_matrix:
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int64) if rows else np.empty(0, np.int64)
    data = np.ones(len(indices), dtype=np.float32)
    m = sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_cols))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _titles(train: Dataset) -> np.ndarray:
    if "title" not in train.items.columns:
        return np.full(len(train.item_ids), "", dtype=object)
    titles = train.items["title"]
    return np.asarray([t if isinstance(t, str) else "" for t in titles], dtype=object)


def rank_lists(
    candidates: Sequence[np.ndarray], scores: Sequence[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of each candidate list by score, ties broken by the lower item code.

    NaN and ``-inf`` scores are never returned; places beyond a list hold code -1 and -inf.

    Example:
        >>> items, scores = rank_lists([np.array([7, 3, 5])], [np.array([0.5, 0.5, 0.9])], 2)
        >>> items.tolist()
        [[5, 3]]
    """
    items = np.full((len(candidates), k), -1, dtype=np.int64)
    vals = np.full((len(candidates), k), -np.inf)
    for row, (codes, s) in enumerate(zip(candidates, scores, strict=True)):
        codes = np.asarray(codes, dtype=np.int64)
        s = np.asarray(s, dtype=np.float64)
        keep = np.isfinite(s) | (s == np.inf)
        codes, s = codes[keep], s[keep]
        order = np.lexsort((codes, -s))[:k]
        items[row, : len(order)] = codes[order]
        vals[row, : len(order)] = s[order]
    return items, vals


def check_k(k: object) -> int:
    """``k`` as a positive int, or a clear error (``"5"``, ``2.5``, ``None`` and ``0`` are refused).

    Example:
        >>> check_k(np.int64(3))
        3
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be a positive integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return int(k)


def _as_user_list(users: object) -> list[Any]:
    if isinstance(users, str | int | UserContext) or users is None:
        raise TypeError(f"users must be a list of user ids or contexts, not {users!r}")
    return list(users)  # type: ignore[call-overload]


def _blank(text: str | None) -> bool:
    """No usable text: None, or only whitespace, control or format characters."""
    from hybridrec.retrieval.embedder import is_blank

    return is_blank(text)
