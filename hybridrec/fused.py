"""``fused``: one candidate source from several, by (weighted) reciprocal rank fusion.

Each source (any registered recommender) ranks the unseen items of a request; the fused score
of an item is ``sum_s w_s / (rrf_k + rank_s(item))`` over the sources whose top ``depth`` holds
it (Cormack, Clarke and Buettcher 2009; ranx's ``rrf`` and ``wsum`` fusions). An item in no
source's top ``depth`` scores 0, and so does an item of the request's history (the sources rank
unseen items only), so every item has a score and the fused source scores the whole catalogue.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from hybridrec.checks import check_float, check_int
from hybridrec.data.dataset import Dataset
from hybridrec.errors import ModelFileError
from hybridrec.eval import metrics as M
from hybridrec.recommender import Recommender, Request
from hybridrec.types import Interaction, UserContext

logger = logging.getLogger(__name__)

METHODS = ("rrf", "weights")
SOURCES_FOLDER = "sources"
#: weight steps per source in the validation grid (weights on the simplex, step 1 / GRID_STEPS)
GRID_STEPS = 10


def normalise_sources(sources: Any) -> list[dict[str, Any]]:
    """Sources as ``[{"name": ..., "params": {...}}, ...]`` from names or mappings.

    Raises:
        TypeError: not a list, or an entry that is neither a name nor a mapping.
        ValueError: an empty list, a mapping without ``name`` or with unknown keys.

    Example:
        >>> normalise_sources(["ease", {"name": "itemknn", "params": {"neighbours": 50}}])
        [{'name': 'ease', 'params': {}}, {'name': 'itemknn', 'params': {'neighbours': 50}}]
    """
    if isinstance(sources, str | Mapping) or not isinstance(sources, Sequence):
        raise TypeError(f"sources must be a list of recommender names or mappings, not {sources!r}")
    if not sources:
        raise ValueError("sources must name at least one recommender")
    out = []
    for i, source in enumerate(sources):
        if isinstance(source, str):
            out.append({"name": source, "params": {}})
        elif isinstance(source, Mapping):
            extra = set(source) - {"name", "params"}
            if extra or not isinstance(source.get("name"), str):
                raise ValueError(
                    f"sources[{i}] must be a mapping with a 'name' string and optional 'params', "
                    f"got {dict(source)!r}"
                )
            params = source.get("params") or {}
            if not isinstance(params, Mapping):
                raise TypeError(f"sources[{i}]['params'] must be a mapping, not {params!r}")
            out.append({"name": source["name"], "params": dict(params)})
        else:
            raise TypeError(f"sources[{i}] must be a name or a mapping, not {source!r}")
    return out


class FusedRecommender(Recommender):
    """Several recommenders' top lists fused into one ranking (registry name ``fused``).

    A candidate source for ``two-stage`` and ``rerank`` (``candidates="fused",
    candidates_params={"sources": [...]}``) that finds more of the relevant items in its top
    ``n`` than any one source, and a recommender in its own right.

    ``method="rrf"`` weighs every source 1. ``method="weights"`` chooses the weights on
    validation data: the training data is split again (leave-one-out by time, with
    :func:`hybridrec.split`), the sources are fitted on all but each user's last training
    interaction, every weight vector of a grid on the simplex (step 1/10) is scored by the
    Recall@``tune_k`` of those last interactions, the best one is kept (ties: the most even), and
    the sources are refitted on all the training data. That fits every source twice. Given
    ``weights``, no search is run.

    Args:
        sources: recommender names, or mappings ``{"name": ..., "params": {...}}``.
        method: ``"rrf"`` or ``"weights"``.
        depth: how many items of each source's list are read.
        rrf_k: the constant of reciprocal rank fusion (60 in the paper).
        weights: one weight per source (>= 0, not all 0); None = all 1 for ``rrf``, chosen on
            validation for ``weights``.
        tune_k: the cut-off of the validation recall that ``weights`` maximises.

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("fused", sources=["ease", "itemknn"], depth=100)
    """

    name: ClassVar[str] = "fused"
    full_scoring: ClassVar[bool] = True

    def __init__(
        self,
        sources: Sequence[str | Mapping[str, Any]] = ("ease", "embedding"),
        method: str = "rrf",
        depth: int = 100,
        rrf_k: float = 60.0,
        weights: Sequence[float] | None = None,
        tune_k: int = 50,
    ) -> None:
        from hybridrec.registry import get

        super().__init__()
        self.sources = normalise_sources(sources)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        self.method = method
        self.depth = check_int("depth", depth, minimum=1)
        self.rrf_k = check_float("rrf_k", rrf_k, minimum=0.0)
        self.tune_k = check_int("tune_k", tune_k, minimum=1)
        if weights is not None:
            weights = [check_float(f"weights[{i}]", w, minimum=0.0) for i, w in enumerate(weights)]
            if len(weights) != len(self.sources) or not any(weights):
                raise ValueError(
                    f"weights must be {len(self.sources)} numbers >= 0 (one per source), not all "
                    f"0; got {weights!r}"
                )
        self.weights = weights
        classes = [get(s["name"]) for s in self.sources]  # an unknown name fails here
        self.uses = frozenset().union(*(c.uses for c in classes))
        self.sources_: list[Recommender] | None = None
        self.weights_: np.ndarray | None = None

    # ------------------------------------------------------------------ fitting
    def _make_sources(self) -> list[Recommender]:
        from hybridrec.registry import create

        return [create(s["name"], **s["params"]) for s in self.sources]

    def _fit(self, train: Dataset) -> None:
        if self.weights is not None:
            self.weights_ = np.asarray(self.weights, dtype=np.float64)
        elif self.method == "rrf" or len(self.sources) == 1:
            self.weights_ = np.ones(len(self.sources))
        else:
            self.weights_ = self._tune_weights(train)
        self.sources_ = [source.fit(train) for source in self._make_sources()]

    def _tune_weights(self, train: Dataset) -> np.ndarray:
        """The grid weights with the best validation Recall@``tune_k`` (see the class docs)."""
        from hybridrec.data.splits import split

        inner = split(train, "leave-one-out")
        target = inner.test.interactions
        if len(target) == 0:
            logger.warning("fused: no user has enough interactions to tune weights; using 1s")
            return np.ones(len(self.sources))
        fit_on = inner.train_and_valid
        users = target["user"].to_numpy().astype(np.int64)
        sources = [source.fit(fit_on) for source in self._make_sources()]
        lists = [source.recommend_codes(users, self.depth)[0] for source in sources]
        grid = _simplex_grid(len(sources), GRID_STEPS)
        items = target["item"].to_numpy()
        relevant = sp.csr_matrix(
            (np.ones(len(items)), (np.arange(len(items)), items)), shape=(len(items), train.n_items)
        )

        def recall(weights: np.ndarray) -> float:  # one target each: recall is the hit rate
            fused = _fuse_codes(lists, weights, self.rrf_k)
            return float(M.hit_rate_at_k(fused, relevant, self.tune_k).mean())

        recalls = [recall(w) for w in grid]
        best = max(range(len(grid)), key=lambda i: (recalls[i], -np.ptp(grid[i])))
        logger.info(
            "fused: weights %s chosen on %d validation users (Recall@%d %.4f; equal weights %.4f)",
            np.round(grid[best], 2).tolist(), len(users), self.tune_k, recalls[best],
            recall(np.ones(len(sources))),
        )  # fmt: skip
        return grid[best]

    # ------------------------------------------------------------------ scoring
    def _score_all_requests(self, requests: Sequence[Request]) -> np.ndarray:
        assert self.sources_ is not None and self.weights_ is not None
        n = len(requests)
        # a known user asked by id: the sources' vectorised path; any other request as given
        is_plain = [r.context is None and r.code >= 0 for r in requests]
        plain = [i for i in range(n) if is_plain[i]]
        other = [i for i in range(n) if not is_plain[i]]
        lists = []
        for source, weight in zip(self.sources_, self.weights_, strict=True):
            codes = np.full((n, min(self.depth, len(self.item_ids_))), -1, dtype=np.int64)
            if weight == 0:
                lists.append(codes)
                continue
            if plain:
                user_codes = np.asarray([requests[i].code for i in plain], dtype=np.int64)
                codes[plain] = source.recommend_codes(user_codes, self.depth)[0]
            if other:
                answers = source.recommend_batch(
                    [self._as_user(requests[i]) for i in other], self.depth, on_unused="ignore"
                )
                for i, recs in zip(other, answers, strict=True):
                    codes[i, : len(recs)] = self._item_codes([r.item_id for r in recs])
            lists.append(codes)
        return _fuse_dense(lists, self.weights_, self.rrf_k, len(self.item_ids_))

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        assert self.seen_ is not None and self.user_ids_ is not None
        requests = []
        for row, code in enumerate(np.asarray(users, dtype=np.int64)):
            history = histories.indices[histories.indptr[row] : histories.indptr[row + 1]]
            seen = self._seen_codes(int(code)) if code >= 0 else None
            if seen is not None and np.array_equal(np.sort(seen), np.sort(history)):
                requests.append(Request(str(self.user_ids_[code]), int(code), seen))
            else:
                context = UserContext(
                    history=tuple(Interaction(str(self.item_ids_[i])) for i in history)
                )
                requests.append(Request(context, -1, np.asarray(history, dtype=np.int64)))
        return self._score_all_requests(requests)

    def _as_user(self, request: Request) -> Any:
        """What a source is asked: the request as given, or a context of its history."""
        if request.user is not None:
            return request.user
        return UserContext(
            history=tuple(Interaction(str(self.item_ids_[i])) for i in request.history)
        )

    @property
    def source_names(self) -> list[str]:
        """The sources' registry names, in order."""
        return [s["name"] for s in self.sources]

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": np.asarray(self.weights_, dtype=np.float64)}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        weights = arrays["weights"]
        if weights.shape != (len(self.sources),):
            raise ValueError(f"{len(weights)} weights for {len(self.sources)} sources")
        self.weights_ = weights

    def _save_extra(self, folder: Path) -> None:
        assert self.sources_ is not None
        for i, source in enumerate(self.sources_):
            source.save(folder / SOURCES_FOLDER / f"{i}-{source.name}")

    def _load_extra(self, folder: Path, manifest: dict[str, Any]) -> None:
        from hybridrec.registry import load

        sources = []
        for i, spec in enumerate(self.sources):
            path = folder / SOURCES_FOLDER / f"{i}-{spec['name']}"
            source = load(path)
            if source.name != spec["name"] or list(source.item_ids_) != list(self.item_ids_):
                raise ModelFileError(
                    f"{path}: the saved source {spec['name']!r} does not match the fused model "
                    "(another recommender or another catalogue)"
                )
            sources.append(source)
        self.sources_ = sources


def _simplex_grid(n: int, steps: int) -> list[np.ndarray]:
    """Weight vectors of ``n`` non-negative multiples of ``1/steps`` summing to 1."""
    return [
        np.asarray(c, dtype=np.float64) / steps
        for c in itertools.product(range(steps + 1), repeat=n)
        if sum(c) == steps
    ]


def _fuse_dense(
    lists: Sequence[np.ndarray], weights: np.ndarray, rrf_k: float, n_items: int
) -> np.ndarray:
    """Dense weighted-RRF scores from per-source ranked code lists (-1 = no item)."""
    n = len(lists[0]) if lists else 0
    scores = np.zeros((n, n_items), dtype=np.float64)
    for codes, weight in zip(lists, weights, strict=True):
        if weight == 0:
            continue
        rr = weight / (rrf_k + np.arange(1, codes.shape[1] + 1, dtype=np.float64))
        rows, cols = np.nonzero(codes >= 0)
        np.add.at(scores, (rows, codes[rows, cols]), rr[cols])
    return scores


def _fuse_codes(lists: Sequence[np.ndarray], weights: np.ndarray, rrf_k: float) -> np.ndarray:
    """Fused ranked code lists (the union of the sources' lists, best first, ties by code)."""
    from hybridrec.recommender import rank_lists

    n_items = int(max(codes.max() for codes in lists)) + 1
    dense = _fuse_dense(lists, weights, rrf_k, n_items)
    union = [np.unique(np.concatenate([c[row][c[row] >= 0] for c in lists])) for row in
             range(len(dense))]  # fmt: skip
    width = max((len(u) for u in union), default=0)
    return rank_lists(union, [dense[row, u] for row, u in enumerate(union)], max(1, width))[0]
