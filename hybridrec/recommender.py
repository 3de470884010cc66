"""The ``Recommender`` and ``Reranker`` interfaces every stage, baseline and plugin implements.

A recommender is fitted on a training :class:`~hybridrec.data.dataset.Dataset` and then answers
for a user given as a known user id or as a :class:`~hybridrec.types.UserContext`:

* a known user id: their training history is used;
* a ``UserContext`` with a history: that history is used (ids must be in the catalogue);
* a ``UserContext`` with no history (cold start) or whose id is known: as above, falling back
  to the user's training history when the context carries none;
* an unknown plain id raises :class:`~hybridrec.errors.UnknownIdError` (a typo should not look
  like a cold-start user); pass ``UserContext(user_id)`` to ask for cold-start behaviour.

Subclasses implement ``_fit`` and ``_score`` (dense scores for a batch of users) and, for
persistence, ``_state`` / ``_load_state``. Retrieval-style recommenders that never materialise a
dense score row override ``_top_k`` instead.
"""

from __future__ import annotations

import inspect
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from hybridrec.data.dataset import Dataset
from hybridrec.errors import ModelFileError, NotFittedError, UnknownIdError
from hybridrec.persistence import (
    atomic_directory,
    library_versions,
    load_arrays,
    read_manifest,
    save_arrays,
    write_manifest,
)
from hybridrec.types import Item, Recommendation, UserContext, normalise_id

logger = logging.getLogger(__name__)

UserLike = UserContext | str | int
STATE_FILE = "state.npz"
BATCH_USERS = 256


class Recommender(ABC):
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

    def __init__(self) -> None:
        self.item_ids_: np.ndarray | None = None
        self.user_ids_: np.ndarray | None = None
        self.seen_: sp.csr_matrix | None = None
        self.popularity_: np.ndarray | None = None
        self._user_lookup: dict[str, int] | None = None
        self._item_lookup: dict[str, int] | None = None

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
        if train.n_interactions == 0:
            raise ValueError(f"cannot fit {self.name or type(self).__name__} on no interactions")
        self.item_ids_ = train.item_ids
        self.user_ids_ = train.user_ids
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
    @abstractmethod
    def _score(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Dense scores, shape (len(users), n_items); higher is better.

        Args:
            users: user codes, -1 for users unknown at training time.
            histories: one row per user, a 1 for each item in the history used for the request.
        """

    def _top_k(
        self,
        users: np.ndarray,
        histories: sp.csr_matrix,
        k: int,
        exclude: sp.csr_matrix | None,
        candidates: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item codes and scores of the top ``k`` per user (codes -1 where fewer exist)."""
        scores = self._cold_fallback(self._score(users, histories), histories)
        if candidates is not None:
            allowed = np.zeros(scores.shape[1], bool)
            allowed[candidates] = True
            scores[:, ~allowed] = -np.inf
        if exclude is not None and exclude.nnz:
            rows, cols = exclude.nonzero()
            scores[rows, cols] = -np.inf
        return top_k_rows(scores, k)

    def _top_k_requests(
        self,
        users: Sequence[UserLike],
        resolved: list[tuple[int, np.ndarray]],
        k: int,
        exclude_seen: bool,
        candidates: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` for requests as given (ids or contexts) with their resolved histories.

        Recommenders that need more of a context than its item codes (ratings, order, free
        text) override this; the default reduces requests to codes and calls ``_top_k``.
        """
        codes, hist = self._request_arrays(resolved)
        return self._top_k(codes, hist, k, hist if exclude_seen else None, candidates)

    def _score_requests(
        self, users: Sequence[UserLike], resolved: list[tuple[int, np.ndarray]]
    ) -> np.ndarray:
        """Dense scores for requests as given; the counterpart of ``_top_k_requests``."""
        codes, hist = self._request_arrays(resolved)
        return self._cold_fallback(self._score(codes, hist), hist)

    def _request_arrays(
        self, resolved: list[tuple[int, np.ndarray]]
    ) -> tuple[np.ndarray, sp.csr_matrix]:
        """User codes and the binary history matrix of resolved requests."""
        codes = np.asarray([c for c, _ in resolved], dtype=np.int64)
        return codes, _rows_matrix([h for _, h in resolved], len(self.item_ids_))

    def _cold_fallback(self, scores: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Rows with an empty history get training popularity (see ``cold_start_popularity``)."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.cold_start_popularity:
            empty = np.diff(histories.indptr) == 0
            if empty.any():  # no history to personalise from: most popular first
                scores[empty] = self.popularity_
        return scores

    # ------------------------------------------------------------------ requests
    def _resolve(self, user: UserLike) -> tuple[int, np.ndarray]:
        """The user code (-1 when unknown) and the history item codes for one request."""
        assert self.user_ids_ is not None and self.seen_ is not None
        if isinstance(user, UserContext):
            code = self._user_code(user.user_id) if user.user_id is not None else -1
            if user.history:
                return code, self._item_codes(user.history_ids)
            if code >= 0:
                return code, self.seen_.indices[
                    self.seen_.indptr[code] : self.seen_.indptr[code + 1]
                ]
            return code, np.empty(0, dtype=np.int64)
        uid = normalise_id(user)
        code = self._user_code(uid)
        if code < 0:
            raise UnknownIdError("user", [uid])
        return code, self.seen_.indices[self.seen_.indptr[code] : self.seen_.indptr[code + 1]]

    def _user_code(self, user_id: str) -> int:
        if getattr(self, "_user_lookup", None) is None:
            self._user_lookup = {u: i for i, u in enumerate(self.user_ids_)}
        return self._user_lookup.get(normalise_id(user_id), -1)

    def _item_codes(self, item_ids: Iterable[object], *, kind: str = "item") -> np.ndarray:
        if getattr(self, "_item_lookup", None) is None:
            self._item_lookup = {it: i for i, it in enumerate(self.item_ids_)}
        ids = [normalise_id(i) for i in item_ids]
        codes = [self._item_lookup.get(i, -1) for i in ids]
        unknown = [i for i, c in zip(ids, codes, strict=True) if c < 0]
        if unknown:
            raise UnknownIdError(kind, unknown)
        return np.asarray(codes, dtype=np.int64)

    def recommend(
        self,
        user: UserLike,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Sequence[object] | None = None,
    ) -> list[Recommendation]:
        """The top ``k`` items for one user, best first.

        Args:
            user: a known user id, or a :class:`UserContext` (see the module docstring).
            k: how many items at most.
            exclude_seen: leave out items in the user's history.
            candidates: rank only these item ids (for reranking or sampled evaluation).
        """
        return self.recommend_batch([user], k, exclude_seen=exclude_seen, candidates=candidates)[0]

    def recommend_batch(
        self,
        users: Sequence[UserLike],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Sequence[object] | None = None,
    ) -> list[list[Recommendation]]:
        """``recommend`` for many users at once; equal to calling it in a loop, only faster."""
        self._check_fitted()
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        cand = None if candidates is None else self._item_codes(candidates, kind="candidate item")
        out: list[list[Recommendation]] = []
        for start in range(0, len(users), BATCH_USERS):
            chunk = users[start : start + BATCH_USERS]
            resolved = [self._resolve(u) for u in chunk]
            items, scores = self._top_k_requests(chunk, resolved, k, exclude_seen, cand)
            out.extend(self._to_recommendations(items, scores))
        return out

    def score(self, user: UserLike, item_ids: Sequence[object]) -> np.ndarray:
        """Scores of the given items for one user, in the order given (higher is better)."""
        return self.score_pairs([user] * len(item_ids), item_ids)

    def score_pairs(self, users: Sequence[UserLike], item_ids: Sequence[object]) -> np.ndarray:
        """The score of each (``users[i]``, ``item_ids[i]``) pair, as used by pairwise AUC."""
        self._check_fitted()
        if len(users) != len(item_ids):
            raise ValueError("users and item_ids must have the same length")
        items = self._item_codes(item_ids)
        out = np.empty(len(items), dtype=np.float64)
        for start in range(0, len(items), BATCH_USERS):
            stop = min(start + BATCH_USERS, len(items))
            chunk = users[start:stop]
            scores = self._score_requests(chunk, [self._resolve(u) for u in chunk])
            out[start:stop] = scores[np.arange(stop - start), items[start:stop]]
        return out

    def recommend_codes(
        self, users: np.ndarray, k: int, *, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised top-k for known user codes: (items, scores), each (len(users), k).

        The evaluation harness uses this; item codes are -1 where fewer than ``k`` exist.
        """
        self._check_fitted()
        assert self.seen_ is not None
        all_items, all_scores = [], []
        for start in range(0, len(users), BATCH_USERS):
            codes = np.asarray(users[start : start + BATCH_USERS], dtype=np.int64)
            hist = self.seen_[codes]
            items, scores = self._top_k(codes, hist, k, hist if exclude_seen else None, None)
            all_items.append(items)
            all_scores.append(scores)
        return np.vstack(all_items), np.vstack(all_scores)

    def _to_recommendations(
        self, items: np.ndarray, scores: np.ndarray
    ) -> list[list[Recommendation]]:
        out = []
        for row_items, row_scores in zip(items, scores, strict=True):
            recs = []
            for rank, (code, score) in enumerate(zip(row_items, row_scores, strict=True), 1):
                if code < 0:
                    break
                recs.append(
                    Recommendation(str(self.item_ids_[code]), float(score), rank, self.name)
                )
            out.append(recs)
        return out

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (besides vocabularies and seen items, which the base saves)."""
        return {}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:  # noqa: B027 - optional hook
        """Restore what ``_state`` returned."""

    def _extra_manifest(self) -> dict[str, Any]:
        return {}

    def save(self, path: str | Path) -> Path:
        """Save to a folder (atomically): ``manifest.json`` plus ``state.npz`` (no pickle)."""
        self._check_fitted()
        assert self.seen_ is not None and self.popularity_ is not None
        path = Path(path)
        arrays = {
            "item_ids": self.item_ids_.astype(str),
            "user_ids": self.user_ids_.astype(str),
            "seen_indptr": self.seen_.indptr,
            "seen_indices": self.seen_.indices,
            "popularity": self.popularity_,
        }
        own = self._state()
        clash = set(own) & set(arrays)
        if clash:
            raise ValueError(f"state keys {sorted(clash)} are reserved")
        arrays.update({f"model.{k}": v for k, v in own.items()})
        with atomic_directory(path) as tmp:
            save_arrays(tmp / STATE_FILE, arrays)
            self._save_extra(tmp)
            write_manifest(
                tmp,
                {
                    "recommender": self.name,
                    "class": f"{type(self).__module__}:{type(self).__qualname__}",
                    "params": _jsonable(self.get_params()),
                    "n_items": len(self.item_ids_),
                    "n_users": len(self.user_ids_),
                    "versions": library_versions(),
                    **self._extra_manifest(),
                },
            )
        return path

    def _save_extra(self, folder: Path) -> None:  # noqa: B027 - optional hook
        """Hook for recommenders that save more than arrays (indexes, model weights)."""

    def _load_extra(self, folder: Path, manifest: dict[str, Any]) -> None:  # noqa: B027
        """Counterpart of ``_save_extra``."""

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a recommender saved with :meth:`save`, checking manifest and checksums.

        Raises:
            ModelFileError: missing, corrupted, or saved by another recommender class.
        """
        path = Path(path)
        manifest = read_manifest(path)
        if cls.name and manifest.get("recommender") != cls.name:
            raise ModelFileError(
                f"{path}: holds a {manifest.get('recommender')!r} recommender, not {cls.name!r}"
            )
        try:
            obj = cls(**manifest.get("params", {}))
        except TypeError as err:
            raise ModelFileError(
                f"{path}: saved parameters do not fit {cls.__name__}: {err}"
            ) from err
        arrays = load_arrays(path / STATE_FILE)
        try:
            obj._user_lookup = obj._item_lookup = None
            obj.item_ids_ = arrays["item_ids"].astype(object)
            obj.user_ids_ = arrays["user_ids"].astype(object)
            n_users, n_items = len(obj.user_ids_), len(obj.item_ids_)
            indices = arrays["seen_indices"]
            obj.seen_ = sp.csr_matrix(
                (np.ones(len(indices), np.float32), indices, arrays["seen_indptr"]),
                shape=(n_users, n_items),
            )
            obj.popularity_ = arrays["popularity"]
            obj._load_state({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        except (KeyError, ValueError) as err:
            raise ModelFileError(f"{path}: incomplete or inconsistent state ({err})") from err
        obj._load_extra(path, manifest)
        return obj


class Reranker(ABC):
    """Scores a user's candidate items; ``rerank`` orders them.

    Example:
        >>> # scores = reranker.score(user_context, items)
        >>> # best = reranker.rerank(user_context, items, k=10)
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def score(self, user: UserContext, items: Sequence[Item]) -> np.ndarray:
        """One score per item (higher is better), in the order given."""

    def rerank(self, user: UserContext, items: Sequence[Item], k: int = 10) -> list[Recommendation]:
        """The ``k`` best of ``items`` by :meth:`score`, best first (ties keep input order)."""
        scores = np.asarray(self.score(user, items), dtype=np.float64)
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            Recommendation(items[i].item_id, float(scores[i]), rank, self.name)
            for rank, i in enumerate(order, 1)
        ]


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


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(params)
    except TypeError as err:
        raise TypeError(f"parameters must be JSON-serialisable to save: {err}") from err
    return params
