"""Implicit-feedback ALS (Hu, Koren and Volinsky 2008) through the ``implicit`` library."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any

import numpy as np
import scipy.sparse as sp

from hybridrec import Dataset, Recommender
from hybridrec.checks import check_float, check_int

logger = logging.getLogger(__name__)

VALUES = ("binary", "liked", "rating")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # scanning the loaded libraries takes ~20 ms: once


def blas_one_thread() -> Any:
    """A context that holds BLAS to one thread (implicit runs its own threads)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def has_gpu() -> bool:
    """Whether the installed ``implicit`` was built with CUDA and sees a GPU."""
    import implicit.gpu

    return bool(implicit.gpu.HAS_CUDA)


class ALSRecommender(Recommender):
    """Matrix factorisation for implicit feedback, fitted by alternating least squares.

    Each interaction is a positive with confidence ``alpha * value`` (``value`` from
    ``values``: 1 per interaction, 1 per liked one, or the rating); every other item is a
    negative with confidence 1. A user's score for an item is the dot product of their factors.
    Known users are scored with their fitted factors; a request with another history (a
    :class:`~hybridrec.UserContext` of an unseen user, or of a known user with a new history)
    has its factors solved exactly from that history against the fitted item factors
    (implicit's ``recalculate_user``). Every catalogue item can be recommended: an item
    without training interactions has zero factors (the exact ALS solution with no evidence),
    so it scores 0.

    Fitting runs on the GPU when implicit's CUDA build is installed and sees one (``use_gpu``
    None), else on the CPU with ``num_threads`` threads and BLAS held to one thread (implicit
    parallelises over users itself). Results are seeded by ``seed``.

    Args:
        factors: latent dimensions.
        regularization: L2 penalty on the factors.
        alpha: confidence of a positive per unit of value.
        iterations: ALS sweeps (users, then items).
        values: what a positive's value is: ``"binary"``, ``"liked"`` (ratings below the
            dataset's like threshold dropped) or ``"rating"``.
        seed: seed of the random initial factors.
        use_gpu: True, False, or None (the GPU when implicit can use one).
        num_threads: CPU threads for fitting and solving new users; None = the cores this
            process may use.
        show_progress: progress bar over the iterations; None = when stderr is a terminal.

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("als", factors=64, iterations=15)
    """

    name = "als"
    full_scoring = True

    def __init__(
        self,
        factors: int = 128,
        regularization: float = 5.0,
        alpha: float = 2.0,
        iterations: int = 15,
        values: str = "binary",
        seed: int = 0,
        use_gpu: bool | None = None,
        num_threads: int | None = None,
        show_progress: bool | None = None,
    ) -> None:
        super().__init__()
        self.factors = check_int("factors", factors, minimum=1)
        self.regularization = check_float("regularization", regularization, minimum=0.0)
        self.alpha = check_float("alpha", alpha, minimum=0.0, exclusive=True)
        self.iterations = check_int("iterations", iterations, minimum=1)
        if values not in VALUES:
            raise ValueError(f"values must be one of {', '.join(VALUES)}, not {values!r}")
        self.values = values
        self.seed = check_int("seed", seed, minimum=0)
        if use_gpu is not None and not isinstance(use_gpu, bool):
            raise TypeError(f"use_gpu must be True, False or None, not {use_gpu!r}")
        self.use_gpu = use_gpu
        if num_threads is not None:
            check_int("num_threads", num_threads, minimum=1)
        self.num_threads = num_threads
        if show_progress is not None and not isinstance(show_progress, bool):
            raise TypeError(f"show_progress must be True, False or None, not {show_progress!r}")
        self.show_progress = show_progress
        self.user_factors_: np.ndarray | None = None
        self.item_factors_: np.ndarray | None = None
        self._solver: Any = None

    # ------------------------------------------------------------------ fitting
    def _threads(self) -> int:
        return self.num_threads or available_cores()

    def _gpu(self) -> bool:
        if self.use_gpu is None:
            return has_gpu()
        if self.use_gpu and not has_gpu():
            raise RuntimeError(
                "use_gpu=True but the installed implicit has no CUDA support or sees no GPU; "
                "install implicit's GPU build, or pass use_gpu=None to fall back to the CPU"
            )
        return self.use_gpu

    def _fit(self, train: Dataset) -> None:
        from implicit.als import AlternatingLeastSquares

        x = train.matrix(self.values).astype(np.float32)  # users x items, as implicit 0.7 wants
        if x.nnz == 0:
            raise ValueError(f"als: no {self.values} interactions to fit on")
        gpu = self._gpu()
        progress = sys.stderr.isatty() if self.show_progress is None else self.show_progress
        with blas_one_thread():
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                use_gpu=gpu,
                num_threads=self._threads(),
                random_state=self.seed,
            )
            model.fit(sp.csr_matrix(x), show_progress=progress)
        if gpu:
            model = model.to_cpu()
        items = np.asarray(model.item_factors, dtype=np.float32).copy()
        items[np.diff(x.tocsc().indptr) == 0] = 0.0  # no evidence: the exact solution is 0
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32).copy()
        self.item_factors_ = items
        self._solver = None
        logger.info(
            "als: %d factors on %d users x %d items (%s)",
            self.factors, x.shape[0], x.shape[1], "GPU" if gpu else f"{self._threads()} threads",
        )  # fmt: skip

    # ------------------------------------------------------------------ scoring
    def _user_solver(self) -> Any:
        """An implicit CPU model holding the fitted item factors, to solve new users."""
        if self._solver is None:
            from implicit.cpu.als import AlternatingLeastSquares

            with blas_one_thread():
                solver = AlternatingLeastSquares(
                    factors=self.factors,
                    regularization=self.regularization,
                    alpha=self.alpha,
                    num_threads=self._threads(),
                    random_state=self.seed,
                )
            solver.item_factors = self.item_factors_
            solver.user_factors = self.user_factors_
            self._solver = solver
        return self._solver

    def _user_vectors(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Fitted factors for known users whose history is their training one; solved else."""
        assert self.user_factors_ is not None and self.seen_ is not None
        known = users >= 0
        same = np.zeros(len(users), dtype=bool)
        if known.any():
            seen = self.seen_[users[known]]
            diff = (seen != (histories[known] > 0)).tocsr()
            same[known] = np.diff(diff.indptr) == 0
        out = np.empty((len(users), self.factors), dtype=np.float32)
        out[same] = self.user_factors_[users[same]]
        solve = np.flatnonzero(~same)
        if len(solve):
            # a request's history is binary: its positives get confidence alpha
            rows = sp.csr_matrix(histories[solve], dtype=np.float32)
            with blas_one_thread():
                out[solve] = self._user_solver().recalculate_user(np.arange(len(solve)), rows)
        return out

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        assert self.item_factors_ is not None
        vectors = self._user_vectors(np.asarray(users), histories).astype(np.float64)
        items = self.item_factors_.astype(np.float64)
        # one product per user: a matrix product's rounding depends on the batch it is in,
        # and a user's scores must not (recommend_batch equals recommend in a loop)
        scores = np.empty((len(vectors), len(items)))
        for row, vector in enumerate(vectors):
            scores[row] = items @ vector
        return scores

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        users, items = arrays["user_factors"], arrays["item_factors"]
        want_users, want_items = (len(self.user_ids_), self.factors), (
            len(self.item_ids_), self.factors,
        )  # fmt: skip
        if users.shape != want_users or items.shape != want_items:
            raise ValueError(
                f"factors of shape {users.shape} (users) and {items.shape} (items) do not fit "
                f"this catalogue and these parameters ({want_users[0]} users, {want_items[0]} "
                f"items, {self.factors} factors): the model was saved from another catalogue"
            )
        self.user_factors_ = users.astype(np.float32, copy=False)
        self.item_factors_ = items.astype(np.float32, copy=False)
        self._solver = None
