"""``EmbeddingRetriever``: the retrieval stage as a :class:`~hybridrec.recommender.Recommender`.

Fitting embeds every catalogue item's text (:meth:`Dataset.item_texts`) with a
sentence-transformers model (cached on disk, see :mod:`hybridrec.retrieval.embedder`) and puts
the unit vectors in a FAISS index (see :mod:`hybridrec.retrieval.index`), item code = FAISS id.

Items without text: a text that is empty, or only whitespace, control or format characters
(:func:`~hybridrec.retrieval.embedder.is_blank`), says nothing about its item, so the item gets
a zero vector instead of the vector of an empty string (which would make all such items look
alike, and like every query near it): it is neutral to every query and to the user vectors it
is part of, and it is found only through the popularity prior. Fitting logs a warning naming
how many items that is (``empty_texts_``). A catalogue in which *every* item text is empty
(no title, description, ... columns, or ``text_fields`` naming none that is filled) is refused
with a :class:`~hybridrec.errors.DataError`: content retrieval cannot tell its items apart.
Hostile texts (megabytes long, NUL and other control characters, lone surrogates, bidi
marks) are cleaned and capped before encoding (:func:`~hybridrec.retrieval.embedder.sanitize_text`).

A user becomes one unit vector:

* **history**: the recency-weighted mean of the embeddings of the items they liked, minus
  ``dislike_weight`` times the recency-weighted mean of those they disliked. An item's recency
  weight is ``0.5 ** (age / recency_half_life)``, where ``age`` counts the user's interactions
  after it (0 for the latest). The half-life is counted in interactions, not days: it works the
  same for histories without timestamps (a ``UserContext`` lists its history oldest first) and
  is not thrown off by rating sessions in which hundreds of ratings share one second.
  ``recency_half_life=None`` weighs every item equally. Liked means rated at or above the
  training data's ``like_threshold``; implicit events and context interactions without a rating
  count as liked. A user with no liked item at all is represented by all their items, so a
  harsh rater still gets recommendations near what they watch.
* **free text**: the embedding of ``UserContext.preference_text``, the user's own words.
* **both**: ``(1 - text_weight) * history + text_weight * text``, renormalised.

An item's score is ``cos(user, item) + w * bias(item)``, where ``bias`` is the item's training
popularity on a log scale in [0, 1] (:func:`popularity_bias`) and ``w`` is
``popularity_weight`` times the history's share of the user vector (so a text-only request,
and :meth:`EmbeddingRetriever.search`, rank by pure cosine similarity). Content similarity
alone ranks obscure look-alikes of a user's films above the films people actually watch next;
the prior fixes much of that. The index stores each item as its embedding plus the bias as
one extra coordinate and each query carries ``w`` there, so FAISS computes the full score.

Defaults (``recency_half_life=5``, ``popularity_weight=0.5``) were chosen on the *validation*
items of ml-latest-small's leave-one-out split (``benchmarks/retrieval``); the test items were
not used. The criterion was Recall@100, the candidate stage's job (putting the next item among
the candidates a reranker sees), not NDCG@10, whose best setting was a half-life of 2.

Top-``k`` is a FAISS search with the user's history excluded *inside* the search (an
``IDSelector``: a seen item is never returned, and ``k`` results come back whenever ``k`` items
are allowed; see :mod:`hybridrec.retrieval.index` for how approximate indexes keep their recall
when the excluded items crowd the user's neighbourhood). Approximate indexes' scores are
replaced by exact scores of the returned items. With ``candidates`` the given items are
scored densely instead (``_score``). A user with neither history nor text (text of only
whitespace, control or format characters counts as none) gets the popularity ranking
(``fallback="popularity"``; the scores are then interaction counts) or a
:class:`~hybridrec.errors.DataError` (``fallback="error"``), in :meth:`recommend` and
:meth:`score` alike.

A saved retriever records the identity of its embedding model
(:func:`hybridrec.models.model_identity`): the hub id, or a local folder's absolute path and
the fingerprint of its files. It loads from any working directory, even when the model was
given as a relative path, and refuses to load when the folder is gone or its files changed.

Example:
    >>> import hybridrec as hr
    >>> split = hr.split(hr.load_dataset("ml-latest-small"), "leave-one-out")
    >>> rec = hr.create("embedding").fit(split.train)  # doctest: +SKIP
    >>> rec.recommend(hr.UserContext(preference_text="space adventure"), k=3)  # doctest: +SKIP
    >>> rec.search("slow-burning sci-fi with strong female leads", k=5)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from hybridrec.data.dataset import Dataset
from hybridrec.data.text import DEFAULT_FIELDS, ItemTextBuilder
from hybridrec.errors import DataError, ModelFileError
from hybridrec.models import (
    DEFAULT_SENTENCE_TRANSFORMER,
    canonical_model_name,
    model_identity,
    split_model_identity,
)
from hybridrec.persistence import library_versions, read_manifest
from hybridrec.recommender import Recommender, Request, UserLike, check_k, top_k_rows
from hybridrec.retrieval.embedder import Embedder, is_blank, l2_normalise, sanitize_text
from hybridrec.retrieval.index import IndexParams, VectorIndex
from hybridrec.types import Recommendation, UserContext, normalise_id

logger = logging.getLogger(__name__)

INDEX_FOLDER = "index"
FALLBACKS = ("popularity", "error")
NO_INPUT = (
    "a user has no history (or only items without text) and no preference text; give either, "
    "or use fallback='popularity'"
)


def recency_weights(
    groups: np.ndarray,
    age: np.ndarray,
    liked: np.ndarray,
    *,
    half_life: float | None,
    dislike_weight: float,
) -> np.ndarray:
    """Signed weights of history entries, vectorised over many users' histories.

    Within each group (user), the liked entries' weights are ``0.5 ** (age / half_life)``
    normalised to sum to 1; the disliked entries' weights are the same decay normalised to sum
    to ``-dislike_weight``. A group with no liked entry treats all its entries as liked.

    Args:
        groups: group (user) index of each entry, ``0 .. n_groups - 1``.
        age: interactions after the entry within its group (0 = the latest).
        liked: whether each entry is liked.
        half_life: age at which the weight halves; ``None`` for equal weights.
        dislike_weight: how strongly disliked entries push the user vector away (0 = ignored).

    Example:
        >>> recency_weights(np.zeros(3, int), np.array([2, 1, 0]), np.array([True, False, True]),
        ...                 half_life=1.0, dislike_weight=0.5).round(3).tolist()
        [0.2, -0.5, 0.8]
    """
    groups = np.asarray(groups, dtype=np.int64)
    liked = np.asarray(liked, dtype=bool)
    if len(groups) == 0:
        return np.zeros(0, np.float64)
    decay = (
        np.ones(len(groups))
        if half_life is None
        else np.power(0.5, np.asarray(age, dtype=np.float64) / float(half_life))
    )
    n_groups = int(groups.max()) + 1
    has_liked = np.bincount(groups, weights=liked.astype(np.float64), minlength=n_groups) > 0
    positive = liked | ~has_liked[groups]
    pos_sum = np.bincount(groups, weights=decay * positive, minlength=n_groups)
    neg_sum = np.bincount(groups, weights=decay * ~positive, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(
            positive,
            decay / pos_sum[groups],
            -float(dislike_weight) * decay / neg_sum[groups],
        )
    return np.nan_to_num(weights, nan=0.0, posinf=0.0, neginf=0.0)


def popularity_bias(popularity: np.ndarray) -> np.ndarray:
    """Per-item popularity prior in [0, 1]: ``log1p(count) / log1p(max count)``.

    Example:
        >>> popularity_bias(np.array([0, 1, 3])).round(2).tolist()
        [0.0, 0.5, 1.0]
    """
    pop = np.asarray(popularity, dtype=np.float64)
    top = np.log1p(pop.max()) if len(pop) and pop.max() > 0 else 1.0
    return (np.log1p(np.maximum(pop, 0)) / top).astype(np.float32)


def _item_digests(texts: Sequence[str]) -> np.ndarray:
    """sha256 of each text as an ``(n, 32)`` uint8 array."""
    blob = b"".join(hashlib.sha256(sanitize_text(t).encode("utf-8")).digest() for t in texts)
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(texts), 32).copy()


def _blank_mask(texts: Sequence[object]) -> np.ndarray:
    """Which texts are empty (see :func:`~hybridrec.retrieval.embedder.is_blank`)."""
    return np.fromiter((is_blank(t) for t in texts), bool, len(texts))


def _shown_ids(ids: Sequence[object], limit: int = 5) -> str:
    shown = ", ".join(repr(str(i)) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _no_text_message(train: Dataset, fields: Sequence[str] | None) -> str:
    """Why a catalogue has no item text at all, and what to do (the fit's ``DataError``)."""
    chosen = list(fields) if fields is not None else list(DEFAULT_FIELDS)
    columns = [str(c) for c in getattr(train.items, "columns", [])]
    present = [f for f in chosen if f in columns]
    if present:
        why = f"its column(s) {present} are empty for every item"
    else:
        why = "the catalogue has none of the columns the text builder reads"
    others = [c for c in columns if c != "item_id" and c not in present]
    hint = "give items a text (title, description, ...)"
    hint += (
        f", or choose text_fields among the catalogue's other columns {others[:10]}"
        if others
        else ", or choose text_fields naming the columns that hold it"
    )
    return (
        f"every item text is empty ({train.n_items} items): {why} (text_fields={chosen}); "
        f"{hint}. An embedding retriever cannot tell items without text apart"
    )


def catalogue_checksum(digests: np.ndarray) -> str:
    """sha256 of the catalogue texts, from the per-item text digests in item-code order."""
    return hashlib.sha256(np.ascontiguousarray(digests, dtype=np.uint8).tobytes()).hexdigest()


class EmbeddingRetriever(Recommender):
    """Retrieval by text embeddings of items in a FAISS index (registry name ``embedding``).

    Args:
        model: sentence-transformers model: alias, hub id or local folder (default the offline
            all-MiniLM-L6-v2).
        index: index kind (``"auto"``, ``"flat"``, ``"hnsw"``, ``"ivf-flat"``, ``"ivf-sq8"``,
            ``"ivf-pq"``); ``"auto"`` is exact up to 100,000 items.
        index_params: more :class:`~hybridrec.retrieval.index.IndexParams` fields
            (``{"ef_search": 256}``).
        recency_half_life: in interactions (see the module docstring); ``None`` = no decay.
        dislike_weight: how far disliked items push the user vector away (0 ignores them).
        text_weight: share of the free-text vector when a user has both history and text.
        popularity_weight: weight of the popularity prior added to the cosine score of
            history-based requests (0 = pure content similarity; see the module docstring).
        fallback: ``"popularity"`` or ``"error"`` for a user with no history and no text.
        batch_size: texts per encoder batch.
        show_progress: progress bar while embedding; ``None`` = when stderr is a terminal.
        cache: embedding cache: ``True`` (:func:`hybridrec.paths.cache_dir` ``("embeddings")``,
            under ``$HYBRIDREC_CACHE`` or ``~/.cache/hybridrec``), a folder, or ``False``.
        device: encoder device; ``None`` = CUDA when available.
        text_fields: catalogue columns the item text is built from (see
            :class:`~hybridrec.data.text.ItemTextBuilder`); ``None`` = the builder's default
            (title, year, genres, tags, brand, category, description).

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("embedding", recency_half_life=10)
        >>> # rec.fit(train).recommend("1", k=100)  -> 100 candidates, seen items excluded
    """

    name: ClassVar[str] = "embedding"
    full_scoring: ClassVar[bool] = True
    uses: ClassVar[frozenset[str]] = frozenset({"history", "ratings", "order", "text"})

    def __init__(
        self,
        model: str = DEFAULT_SENTENCE_TRANSFORMER,
        index: str = "auto",
        index_params: Mapping[str, Any] | None = None,
        recency_half_life: float | None = 5.0,
        dislike_weight: float = 0.0,
        text_weight: float = 0.5,
        popularity_weight: float = 0.5,
        fallback: str = "popularity",
        batch_size: int = 64,
        show_progress: bool | None = None,
        cache: bool | str = True,
        device: str | None = None,
        text_fields: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, not {fallback!r}")
        if recency_half_life is not None and recency_half_life <= 0:
            raise ValueError(f"recency_half_life must be positive or None, got {recency_half_life}")
        if dislike_weight < 0:
            raise ValueError(f"dislike_weight must be >= 0, got {dislike_weight}")
        if not 0.0 <= text_weight <= 1.0:
            raise ValueError(f"text_weight must be in [0, 1], got {text_weight}")
        if popularity_weight < 0:
            raise ValueError(f"popularity_weight must be >= 0, got {popularity_weight}")
        self.model = model
        self.index = index
        self.index_params = dict(index_params) if index_params else None
        self._index_config = IndexParams.from_dict(self.index_params, kind=index)  # validates
        self.recency_half_life = recency_half_life
        self.dislike_weight = dislike_weight
        self.text_weight = text_weight
        self.popularity_weight = popularity_weight
        self.fallback = fallback
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.cache = cache
        self.device = device
        self.text_fields = list(text_fields) if text_fields is not None else None
        self.embeddings_: np.ndarray | None = None
        self.index_: VectorIndex | None = None
        self.user_weights_: sp.csr_matrix | None = None
        self.item_bias_: np.ndarray | None = None
        self.like_threshold_: float = 4.0
        self.text_digests_: np.ndarray | None = None
        self.model_id_: str | None = None
        self._embedder: Embedder | None = None

    # ------------------------------------------------------------------ parts
    @property
    def model_id(self) -> str:
        """Identity of the embedding model (what manifests and caches record).

        Once fitted or loaded, the identity of the model the item vectors were made with
        (``model_id_``); before, that of ``model`` now (see
        :func:`hybridrec.models.model_identity`).
        """
        return self.model_id_ if self.model_id_ is not None else model_identity(self.model)

    @property
    def embedder(self) -> Embedder:
        """The text encoder (created on first use; loads the model only to encode)."""
        if self._embedder is None:
            self._embedder = Embedder(
                self.model,
                device=self.device,
                batch_size=self.batch_size,
                cache=self.cache,
                show_progress=self.show_progress,
            )
        return self._embedder

    @property
    def dim(self) -> int:
        self._check_fitted()
        assert self.embeddings_ is not None
        return int(self.embeddings_.shape[1])

    @property
    def texts_sha256(self) -> str:
        """Checksum of the catalogue texts the index was built from."""
        assert self.text_digests_ is not None
        return catalogue_checksum(self.text_digests_)

    @property
    def empty_texts_(self) -> int | None:
        """How many items have no text (a zero vector; ``None`` before fitting).

        Counted from the embeddings, so it holds after :meth:`update_item_texts` and loading
        too (a retriever saved before items without text got zero vectors counts 0).
        """
        if self.embeddings_ is None:
            return None
        return int((~np.any(self.embeddings_ != 0, axis=1)).sum())

    # ------------------------------------------------------------------ fitting
    def _fit(self, train: Dataset) -> None:
        builder = None if self.text_fields is None else ItemTextBuilder(fields=self.text_fields)
        texts = train.item_texts(builder)
        blank = _blank_mask(texts)
        if len(texts) and blank.all():
            self.item_ids_ = None  # the base class stored the vocabularies: not fitted now
            raise DataError(_no_text_message(train, self.text_fields), field="text_fields")
        if blank.any():
            logger.warning(
                "%d of %d item texts are empty (item(s) %s): those items get no text vector "
                "and can only be found through the popularity prior; give them a title or "
                "description, or choose text_fields (now %s)",
                int(blank.sum()), len(texts), _shown_ids(list(train.item_ids[blank])),
                self.text_fields if self.text_fields is not None else list(DEFAULT_FIELDS),
            )
        self.like_threshold_ = float(train.like_threshold)
        self.text_digests_ = _item_digests(texts)
        logger.info("embedding %d item texts with %s", len(texts), self.embedder.model_id)
        todo = np.flatnonzero(~blank)
        vectors = self.embedder.encode([texts[i] for i in todo])  # some: not all are blank
        self.embeddings_ = np.zeros((len(texts), vectors.shape[1]), np.float32)
        self.embeddings_[todo] = vectors
        self.model_id_ = self.embedder.model_id
        self.item_bias_ = popularity_bias(self.popularity_)
        self.index_ = VectorIndex(self.embeddings_.shape[1] + 1, self._index_config).build(
            self._index_vectors(np.arange(len(texts))), np.arange(len(texts), dtype=np.int64)
        )
        self.user_weights_ = self._training_weights(train)

    def _index_vectors(self, codes: np.ndarray) -> np.ndarray:
        """What the index stores for items: the embedding plus the popularity bias."""
        assert self.embeddings_ is not None and self.item_bias_ is not None
        return np.hstack([self.embeddings_[codes], self.item_bias_[codes, None]])

    def _training_weights(self, train: Dataset) -> sp.csr_matrix:
        inter = train.interactions  # sorted by user, then time
        users = inter["user"].to_numpy().astype(np.int64)
        counts = np.bincount(users, minlength=train.n_users)
        ends = np.cumsum(counts)
        age = ends[users] - 1 - np.arange(len(users))
        weights = recency_weights(
            users,
            age,
            train.liked_mask,
            half_life=self.recency_half_life,
            dislike_weight=self.dislike_weight,
        )
        matrix = sp.csr_matrix(
            (weights.astype(np.float32), (users, inter["item"].to_numpy())),
            shape=(train.n_users, train.n_items),
        )
        matrix.sort_indices()
        return matrix

    # ------------------------------------------------------------------ user vectors
    def _encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.encode(list(texts), show_progress=False, use_cache=False)

    def _history_vector(self, codes: np.ndarray, liked: np.ndarray) -> np.ndarray:
        """Unit vector of one ordered history (oldest first)."""
        assert self.embeddings_ is not None
        age = len(codes) - 1 - np.arange(len(codes))
        w = recency_weights(
            np.zeros(len(codes), np.int64),
            age,
            liked,
            half_life=self.recency_half_life,
            dislike_weight=self.dislike_weight,
        )
        return l2_normalise((w.astype(np.float32) @ self.embeddings_[codes])[None, :])[0]

    def _known_vectors(self, codes: np.ndarray) -> np.ndarray:
        assert self.user_weights_ is not None and self.embeddings_ is not None
        return l2_normalise(np.asarray(self.user_weights_[codes] @ self.embeddings_))

    def _mix(self, hist: np.ndarray, has_hist: np.ndarray, texts: dict[int, str]) -> np.ndarray:
        """Queries from history vectors and free texts: ``(n, dim + 1)``, see :meth:`_queries`.

        Rows with neither history nor text stay zero. The popularity prior is scaled by the
        history's share of the vector (none for a text-only user).
        """
        vectors = hist.copy()
        share = has_hist.astype(np.float32)
        if texts:
            rows = np.asarray(list(texts), dtype=np.int64)
            tvec = self._encode_queries([texts[r] for r in rows])
            alpha = np.where(has_hist[rows], self.text_weight, 1.0).astype(np.float32)
            vectors[rows] = l2_normalise((1 - alpha[:, None]) * hist[rows] + alpha[:, None] * tvec)
            share[rows] = 1.0 - alpha
        return self._queries(vectors, share * self.popularity_weight)

    @staticmethod
    def _queries(vectors: np.ndarray, prior: np.ndarray | float) -> np.ndarray:
        """Search queries: the user vector plus the popularity-prior weight as a last column.

        The index stores each item as its embedding plus its popularity bias (``item_bias_``),
        so a query's inner product is ``cos(user, item) + prior * bias(item)``.
        """
        out = np.empty((len(vectors), vectors.shape[1] + 1), np.float32)
        out[:, :-1] = vectors
        out[:, -1] = prior
        return out

    def _context_vectors(self, requests: Sequence[Request]) -> np.ndarray:
        """One query per request (zero rows: no history and no text); see :meth:`_mix`."""
        hist = np.zeros((len(requests), self.dim), np.float32)
        texts: dict[int, str] = {}
        known_rows, known_codes = [], []
        for row, request in enumerate(requests):
            user, code, items = request.user, request.code, request.history
            if isinstance(user, UserContext):
                if not is_blank(user.preference_text):
                    texts[row] = user.preference_text
                if user.history:
                    threshold = self.like_threshold_
                    liked = np.asarray(
                        [h.rating is None or h.rating >= threshold for h in user.history], bool
                    )
                    hist[row] = self._history_vector(items, liked)
                    continue
            if code >= 0 and len(items):
                known_rows.append(row)
                known_codes.append(code)
        if known_rows:
            hist[known_rows] = self._known_vectors(np.asarray(known_codes, np.int64))
        has_hist = np.linalg.norm(hist, axis=1) > 0
        return self._mix(hist, has_hist, texts)

    def _code_vectors(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Queries from user codes and binary history rows (no text, no order)."""
        assert self.seen_ is not None and self.embeddings_ is not None
        out = np.zeros((len(users), self.dim), np.float32)
        histories = sp.csr_matrix(histories)
        for row, code in enumerate(np.asarray(users, dtype=np.int64)):
            items = np.sort(histories.indices[histories.indptr[row] : histories.indptr[row + 1]])
            if not len(items):
                continue
            if code >= 0:
                seen = self.seen_.indices[self.seen_.indptr[code] : self.seen_.indptr[code + 1]]
                seen = np.sort(seen)
                if np.array_equal(items, seen):
                    out[row] = self._known_vectors(np.asarray([code]))[0]
                    continue
            out[row] = l2_normalise(self.embeddings_[items].mean(axis=0, keepdims=True))[0]
        has_hist = np.linalg.norm(out, axis=1) > 0
        return self._queries(out, has_hist * np.float32(self.popularity_weight))

    def user_vector(self, user: UserLike) -> np.ndarray:
        """The unit vector representing a user (zeros: no history and no text).

        Example:
            >>> # rec.user_vector(hr.UserContext(preference_text="heist movies")).shape -> (384,)
        """
        self._check_fitted()
        return self._context_vectors([self._resolve(user)])[0, :-1].copy()

    # ------------------------------------------------------------------ ranking
    def _rank(
        self,
        vectors: np.ndarray,
        k: int,
        exclude: list[np.ndarray] | None,
        candidates: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self.embeddings_ is not None and self.index_ is not None
        n = len(vectors)
        items = np.full((n, k), -1, np.int64)
        scores = np.full((n, k), -np.inf, np.float64)
        ok = np.linalg.norm(vectors[:, :-1], axis=1) > 0
        self._check_fallback(~ok)
        rows = np.flatnonzero(ok)
        if len(rows) and candidates is None:
            excl = None if exclude is None else [exclude[r] for r in rows]
            s, i = self.index_.search(vectors[rows], k, exclude=excl, rerank=self._exact_scores)
            items[rows], scores[rows] = i, s
        elif len(rows):
            dense = np.full((len(rows), len(self.item_ids_)), -np.inf)
            dense[:, candidates] = self._dense(vectors[rows], candidates)
            self._mask(dense, rows, exclude)
            items[rows], scores[rows] = top_k_rows(dense, k)
        rest = np.flatnonzero(~ok)
        if len(rest):
            items[rest], scores[rest] = self._popular(rest, k, exclude, candidates)
        return items, scores

    def _check_fallback(self, empty: np.ndarray) -> None:
        """Refuse users with neither history nor text when ``fallback="error"``."""
        if self.fallback == "error" and np.asarray(empty).any():
            raise DataError(NO_INPUT, field="history")

    def _dense(self, queries: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
        """Scores of queries against items (all, or ``codes``): cosine + prior * bias."""
        assert self.embeddings_ is not None and self.item_bias_ is not None
        emb = self.embeddings_ if codes is None else self.embeddings_[codes]
        bias = self.item_bias_ if codes is None else self.item_bias_[codes]
        return queries[:, :-1] @ emb.T + queries[:, -1:] * bias[None, :]

    def _exact_scores(self, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact scores of the items an approximate index returned (for re-ranking them)."""
        assert self.embeddings_ is not None and self.item_bias_ is not None
        safe = np.maximum(ids, 0)
        exact = np.einsum("qkd,qd->qk", self.embeddings_[safe], queries[:, :-1])
        exact += queries[:, -1:] * self.item_bias_[safe]
        return np.where(ids >= 0, exact, -np.inf).astype(np.float32)

    @staticmethod
    def _mask(dense: np.ndarray, rows: np.ndarray, exclude: list[np.ndarray] | None) -> None:
        if exclude is None:
            return
        for j, r in enumerate(rows):
            if len(exclude[r]):
                dense[j, exclude[r]] = -np.inf

    def _popular(
        self,
        rows: np.ndarray,
        k: int,
        exclude: list[np.ndarray] | None,
        candidates: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self.popularity_ is not None
        base = self.popularity_.astype(np.float64)
        if candidates is not None:
            allowed = np.full(len(base), -np.inf)
            allowed[candidates] = base[candidates]
            base = allowed
        dense = np.tile(base, (len(rows), 1))
        self._mask(dense, rows, exclude)
        return top_k_rows(dense, k)

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        assert self.embeddings_ is not None and self.popularity_ is not None
        return self._scores_for(self._code_vectors(users, histories))

    def _is_cold(self, request: Request) -> bool:
        # no history and no text: popularity answers (fallback="error" raises instead)
        return self.fallback == "popularity" and not len(request.history) and request.text is None

    def _top_k_requests(
        self,
        requests: Sequence[Request],
        k: int,
        exclude_seen: bool,
        candidates: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A FAISS search (or dense scores of ``candidates``) with each context's ratings,
        order and free text (the base sees only item codes)."""
        vectors = self._context_vectors(requests)
        exclude = [np.asarray(r.history, np.int64) for r in requests] if exclude_seen else None
        cand = None if candidates is None else np.unique(candidates)
        return self._rank(vectors, k, exclude, cand)

    def _score_all_requests(self, requests: Sequence[Request]) -> np.ndarray:
        return self._scores_for(self._context_vectors(requests))

    def _score_candidates(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        vectors = self._context_vectors(requests)
        empty = np.linalg.norm(vectors[:, :-1], axis=1) == 0
        self._check_fallback(empty)
        assert self.popularity_ is not None
        return [
            self.popularity_[c].astype(np.float64)
            if empty[i]
            else self._dense(vectors[i : i + 1], np.asarray(c, np.int64))[0].astype(np.float64)
            for i, c in enumerate(candidates)
        ]

    def _scores_for(self, queries: np.ndarray) -> np.ndarray:
        """Dense scores of queries; rows with no history and no text get popularity."""
        assert self.popularity_ is not None
        empty = np.linalg.norm(queries[:, :-1], axis=1) == 0
        self._check_fallback(empty)
        scores = self._dense(queries).astype(np.float64)
        scores[empty] = self.popularity_
        return scores

    def search(
        self, text: str, k: int = 10, *, exclude: Sequence[object] | None = None
    ) -> list[Recommendation]:
        """Items nearest to a free-text query, best first (scores are cosine similarities).

        Args:
            text: what to look for ("slow-burning sci-fi with strong female leads").
            k: how many items.
            exclude: item ids not to return.

        Raises:
            ValueError: ``text`` is empty (only whitespace, control or format characters).

        Example:
            >>> # [r.item_id for r in rec.search("space adventure", k=3)]
        """
        self._check_fitted()
        k = check_k(k)
        if not isinstance(text, str) or is_blank(text):
            raise ValueError("search text is empty")
        excl = None if exclude is None else [self._item_codes(exclude)]
        query = self._queries(self._encode_queries([text]), 0.0)  # no popularity prior
        items, scores = self._rank(query, k, excl, None)
        return self._to_recommendations(items, scores)[0]

    # ------------------------------------------------------------------ catalogue updates
    def update_item_texts(self, texts: Mapping[object, str]) -> int:
        """Re-embed changed item texts and update the index in place (no rebuild).

        All or nothing: the ids are checked first, and the retriever's embeddings and text
        checksums change only once the index has taken the new vectors, so a failure leaves
        the retriever as it was.

        Args:
            texts: new text per known item id.

        Returns:
            How many items changed (unchanged texts are skipped; only changed ones are encoded,
            and the cache makes a text seen before free).

        Raises:
            UnknownIdError: an id is not in the catalogue.
            DataError: two keys name the same item (``1`` and ``"1"`` are both item ``"1"``),
                or the new texts would leave every item without text. An empty new text is
                accepted with a warning: its item gets a zero vector (see the module docstring).

        Example:
            >>> # rec.update_item_texts({"1": "Toy Story (1995). Genres: Animation"})
        """
        self._check_fitted()
        assert self.text_digests_ is not None and self.embeddings_ is not None
        assert self.index_ is not None
        codes = self._item_codes(list(texts))
        unique, counts = np.unique(codes, return_counts=True)
        if (counts > 1).any():
            twice = [str(self.item_ids_[c]) for c in unique[counts > 1]]
            given = [repr(key) for key in texts if normalise_id(key) in set(twice)]
            raise DataError(
                f"item id(s) {twice} given more than once ({', '.join(given)} name the same "
                "item); nothing was updated",
                field="item_id",
            )
        new_texts = list(texts.values())
        digests = _item_digests(new_texts)
        changed = np.flatnonzero((digests != self.text_digests_[codes]).any(axis=1))
        if not len(changed):
            return 0
        codes, digests = codes[changed], digests[changed]
        new_blank = _blank_mask([new_texts[i] for i in changed])
        if new_blank.any():
            blank_after = ~np.any(self.embeddings_ != 0, axis=1)
            blank_after[codes] = new_blank
            if blank_after.all():
                raise DataError(
                    "these texts would leave every item text empty (an embedding retriever "
                    "cannot tell items without text apart); nothing was updated",
                    field="text",
                )
            logger.warning(
                "%d new item text(s) are empty (item(s) %s): those items get no text vector "
                "and can only be found through the popularity prior",
                int(new_blank.sum()), _shown_ids(list(self.item_ids_[codes[new_blank]])),
            )
        vectors = np.zeros((len(changed), self.dim), np.float32)
        todo = changed[~new_blank]
        if len(todo):
            vectors[~new_blank] = self.embedder.encode([new_texts[i] for i in todo])
        assert self.item_bias_ is not None
        self.index_.update(np.hstack([vectors, self.item_bias_[codes, None]]), codes)
        self.embeddings_[codes] = vectors
        self.text_digests_[codes] = digests
        return len(codes)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        assert self.user_weights_ is not None and self.embeddings_ is not None
        return {
            "embeddings": self.embeddings_,
            "weights_data": self.user_weights_.data,
            "weights_indices": self.user_weights_.indices,
            "weights_indptr": self.user_weights_.indptr,
            "like_threshold": np.asarray(self.like_threshold_, np.float64),
            "text_digests": self.text_digests_,
            "model_identity": np.asarray(self.model_id),
        }

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        assert self.item_ids_ is not None and self.user_ids_ is not None
        self.embeddings_ = np.ascontiguousarray(arrays["embeddings"], np.float32)
        self.user_weights_ = sp.csr_matrix(
            (arrays["weights_data"], arrays["weights_indices"], arrays["weights_indptr"]),
            shape=(len(self.user_ids_), len(self.item_ids_)),
        )
        self.like_threshold_ = float(arrays["like_threshold"])
        assert self.popularity_ is not None
        self.item_bias_ = popularity_bias(self.popularity_)
        self.text_digests_ = np.asarray(arrays["text_digests"], dtype=np.uint8)
        # older folders do not record it (the manifest's name is checked in _load_extra)
        self.model_id_ = str(arrays["model_identity"]) if "model_identity" in arrays else None
        if self.embeddings_.ndim != 2 or len(self.embeddings_) != len(self.item_ids_):
            raise ValueError("embeddings do not match the catalogue")
        if self.text_digests_.shape != (len(self.item_ids_), 32):
            raise ValueError("text digests do not match the catalogue")

    def _index_metadata(self) -> dict[str, Any]:
        return {"model": self.model_id, "texts_sha256": self.texts_sha256}

    def _extra_manifest(self) -> dict[str, Any]:
        assert self.index_ is not None
        return {
            "embedding_model": self.model_id,
            "dim": self.dim,
            "metric": "inner_product",
            "index_kind": self.index_.kind,
            "item_count": len(self.index_),
            "texts_sha256": self.texts_sha256,
            "versions": library_versions(
                "faiss-cpu", "faiss-gpu", "sentence-transformers", "torch"
            ),
        }

    def _save_extra(self, folder: Path) -> None:
        assert self.index_ is not None
        self.index_.save(folder / INDEX_FOLDER, self._index_metadata())

    def _load_extra(self, folder: Path, manifest: dict[str, Any]) -> None:
        if self.model_id_ is None:  # an older folder: its state does not record the model
            self.model_id_ = canonical_model_name(self.model)
        want = {"model": self.model_id, "texts_sha256": self.texts_sha256}
        for key, manifest_key in (("model", "embedding_model"), ("texts_sha256", "texts_sha256")):
            if manifest.get(manifest_key) != want[key]:
                raise ModelFileError(
                    f"{folder}: manifest says {manifest_key}={manifest.get(manifest_key)!r} but "
                    f"the saved state has {want[key]!r}; the folder was tampered with or mixed up"
                )
        self._adopt_saved_model(folder)
        index_folder = folder / INDEX_FOLDER
        index = VectorIndex.load(index_folder, {**want, "dim": self.dim + 1})
        if len(index) != len(self.item_ids_):
            raise ModelFileError(
                f"{index_folder}: index holds {len(index)} items, the catalogue "
                f"{len(self.item_ids_)}"
            )
        self.index_ = index

    def _adopt_saved_model(self, folder: Path) -> None:
        """Check the saved model identity against the parameters and the model found now.

        A local model folder is recorded by absolute path (and fingerprint): the loaded
        retriever uses that path, whatever the working directory, refusing a folder that is
        gone or whose files changed since saving (its item vectors would not match queries).
        """
        assert self.model_id_ is not None
        name, fingerprint = split_model_identity(self.model_id_)
        param = str(self.model)
        relative = not Path(param).expanduser().is_absolute()  # resolved against another cwd
        if fingerprint is None and not Path(name).is_absolute():  # a hub id or an alias
            if canonical_model_name(param) != name:
                raise ModelFileError(
                    f"{folder}: parameters name the embedding model {param!r} but the saved "
                    f"state has {name!r}; the folder was tampered with or mixed up"
                )
            return
        if not Path(name).is_dir():
            raise ModelFileError(
                f"{folder}: the embedding model folder {name} was not found: it was moved or "
                "deleted since the retriever was saved; put it back there, or refit the "
                "retriever with the model's new location"
            )
        if not relative and str(Path(param).expanduser().resolve()) != name:
            raise ModelFileError(
                f"{folder}: parameters name the embedding model folder {param!r} but the saved "
                f"state has {name!r}; the folder was tampered with or mixed up"
            )
        if fingerprint is not None and model_identity(name) != self.model_id_:
            raise ModelFileError(
                f"{folder}: the files of the embedding model folder {name} changed since the "
                "retriever was saved (names, sizes or modification times differ), so its item "
                "vectors may not match the queries the model encodes now; refit the retriever "
                "(or restore the folder's files)"
            )
        self.model = name  # absolute: loads from any working directory

    @classmethod
    def load(cls, path: str | Path, *, model: str | None = None) -> EmbeddingRetriever:
        """Load a saved retriever, refusing corrupted files or a mismatched embedding model.

        Args:
            path: the folder written by :meth:`save`.
            model: when given, the embedding model the caller expects; a retriever built with
                another model is refused (its vectors would not match the caller's queries).

        Raises:
            ModelFileError: a checksum mismatch, a missing file, an index built with another
                embedding model or other item texts than the saved embeddings, or a model other
                than ``model``.

        Example:
            >>> # EmbeddingRetriever.load("models/embedding", model="all-minilm-l6-v2")
        """
        if model is not None:
            saved = str(read_manifest(path, verify=False).get("embedding_model"))
            wanted = model_identity(model)
            if split_model_identity(saved)[1] is None:  # saved before identities had fingerprints
                wanted = split_model_identity(wanted)[0]
            if saved != wanted:
                raise ModelFileError(
                    f"{path}: built with embedding model {saved!r}, not {wanted!r}"
                )
        obj = super().load(path)
        assert isinstance(obj, EmbeddingRetriever)
        return obj
