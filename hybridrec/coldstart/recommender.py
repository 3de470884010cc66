"""``prompt``: the zero-shot cold-start stage, a language model ranking grounded candidates.

For a request with no history or a short one (fewer than ``history_threshold`` items):

1. **Candidates**: the retrieval stage's answer to the user's words (and few items), mixed with
   the most popular items (``popular_share`` of ``n_candidates``, 20 by default), seen items
   left out. Only these can be returned.
2. **Language-model scores**, by ``mode``: ``"pointwise"`` (the default: each title's
   likelihood as the answer, see :mod:`~hybridrec.coldstart.pointwise`),
   ``"listwise"`` (identifiers' next-token logits, :mod:`~hybridrec.coldstart.listwise`,
   optionally averaged over ``permutations`` seeded orders; at most 26 candidates, all in one
   prompt, see below) or ``"generative"`` (written
   titles grounded in the candidates, :mod:`~hybridrec.coldstart.generative`). The user's
   words, profile and the titles of their few items fill the prompt; all text is data.
3. **Prior fusion** (:mod:`~hybridrec.coldstart.fusion`): the scores are fused with a
   ``"popularity"`` (log count) or ``"retrieval"`` (cosine to the user's words) prior, with
   the weight chosen on validation users (``prior_weight="auto"``) from a grid holding the
   prior alone (a weight below 1 must beat it by a paired test), or given (0: the language
   model alone; 1: the prior alone, no model run). When the weight is 1 (given, chosen by
   validation, or ``"auto"`` with no validation users) the language model is never run: each
   recommendation of this stage says so in its ``notes`` (``"prior alone: ..."``), and a
   weight 1 chosen by validation is logged as a warning with the validation table.

The default mode is ``pointwise`` (uncalibrated) because on ml-latest-small's cold-start
users SmolLM2-135M showed no listwise-by-index signal and the uncalibrated pointwise score was
the only one above random (``benchmarks/coldstart/README.md``). Listwise scores are
log-probabilities *within the list scored*: scoring a subset gives other numbers. So a list is
scored in one prompt, and the listwise mode takes at most 26 candidates (one single-token
identifier each, ``A`` to ``Z``): a larger ``n_candidates`` is refused at construction, a
longer candidate list given to ``recommend``/``score_candidates`` when it is scored (both
ValueError). A chat model
(any LangChain ``BaseChatModel``) runs the generative mode only; the other modes with one raise
ValueError naming the mode (:func:`~hybridrec.coldstart.backends.check_mode`). A model name
that is no local folder, alias or (offline) cached hub id is refused at construction, listing
the aliases (:func:`~hybridrec.coldstart.backends.check_model_name`); the model itself loads at
``fit`` when it may be used (any weight below 1), so a hub id that cannot load fails there.

Validation users (``prior_weight="auto"``, or a weight strictly between 0 and 1 to measure
the score scales): up to ``valid_users`` training users with more than ``seed_items`` liked
items, asked with the ``cold_start_preference`` text of their first ``seed_items`` liked items
and judged on the ones they liked later (the popularity prior counts their own interactions:
a small optimism, stated here).

Requests with at least ``history_threshold`` history items are answered by the retrieval
stage from their history and words (recommendations note it). Requests with neither history,
text nor profile get the shared popularity fallback. When the backend fails (a time-out, an
exception), ``on_backend_error="fallback"`` ranks that request by the prior alone and notes
it; ``"raise"`` raises :class:`~hybridrec.coldstart.backends.BackendError`. Generated text that
matches no candidate is counted in :attr:`PromptRecommender.stats_` (``invalid_output_rate``).

Example:
    >>> import hybridrec as hr  # doctest: +SKIP
    >>> rec = hr.create("prompt", valid_users=20).fit(train)  # doctest: +SKIP
    >>> rec.recommend(hr.UserContext(preference_text="animated films"), k=5)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hybridrec.checks import check_int
from hybridrec.coldstart.backends import (
    MODES,
    BackendError,
    check_mode,
    check_model_name,
    make_backend,
)
from hybridrec.coldstart.fusion import DEFAULT_GRID, PriorFusion, choose_weight
from hybridrec.data.dataset import Dataset
from hybridrec.errors import ModelFileError
from hybridrec.recommender import Recommender, Request
from hybridrec.templates import render
from hybridrec.types import Recommendation, UserContext

logger = logging.getLogger(__name__)

__all__ = ["PRIORS", "PromptRecommender"]

PRIORS = ("popularity", "retrieval")
RETRIEVAL_FOLDER = "retrieval"
_MEMO = 4096  # language-model answers kept per recommender (deterministic, so reusable)


class PromptRecommender(Recommender):
    """The cold-start prompt stage (registry name ``prompt``); see the module's notes.

    Args:
        model: a model name or folder (local causal LM) or a LangChain ``BaseChatModel``. A
            name must be a folder with ``config.json``, an alias (``smollm2-135m``,
            ``tiny-gpt2``, ...) or a hub id (offline: one in the hub cache); anything else is a
            ValueError here, listing the aliases.
        mode: ``"pointwise"``, ``"listwise"`` or ``"generative"``.
        n_candidates: candidates per request (listwise: at most 26, the identifiers ``A`` to
            ``Z`` of one prompt, since log-probabilities of separate prompts are not
            comparable; more is a ValueError, as is a longer candidate list given to
            ``recommend`` or ``score_candidates``).
        popular_share: the share of candidates taken from the most popular items.
        retrieval, retrieval_params: the candidate source's registry name and parameters.
        prior: ``"popularity"`` or ``"retrieval"``.
        prior_weight: ``"auto"`` (chosen on validation) or a weight in [0, 1]. At weight 1
            the language model is not used; the recommendations' ``notes`` say so.
        weight_grid: the weights ``"auto"`` tries (1.0 is always added).
        weight_alpha: a weight below 1 must beat the prior alone on validation by a paired
            t-test at this level (None: the plain best; see :mod:`~hybridrec.coldstart.fusion`).
        valid_users, seed_items: the validation users (see the module's notes).
        history_threshold: requests with this many history items go to the retrieval stage
            (None: never).
        permutations, permutation_fusion: listwise orders averaged, and how (mean/borda).
        noun: what the catalogue holds, in prompts (``"movie"``).
        explain: add a generated one-sentence explanation to each recommendation.
        prompt: overrides of the mode's config (template names, budgets).
        on_backend_error: ``"fallback"`` (the prior alone) or ``"raise"``.
        timeout: seconds a chat model may take per call.
        device: where a local model runs.
        seed: seeds the validation users and the listwise orders.
    """

    name: ClassVar[str] = "prompt"
    uses: ClassVar[frozenset[str]] = frozenset({"history", "text", "profile"})
    in_all: ClassVar[bool] = False  # a language model per request: name it in a bench config

    def __init__(
        self,
        model: Any = "smollm2-135m",
        mode: str = "pointwise",
        n_candidates: int = 20,
        popular_share: float = 0.5,
        retrieval: str = "embedding",
        retrieval_params: Mapping[str, Any] | None = None,
        prior: str = "popularity",
        prior_weight: float | str = "auto",
        weight_grid: Sequence[float] = DEFAULT_GRID,
        weight_alpha: float | None = 0.05,
        valid_users: int = 50,
        seed_items: int = 3,
        history_threshold: int | None = 5,
        permutations: int = 1,
        permutation_fusion: str = "mean",
        noun: str = "item",
        explain: bool = False,
        prompt: Mapping[str, Any] | None = None,
        on_backend_error: str = "fallback",
        timeout: float | None = 60.0,
        device: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; known: {', '.join(PRIORS)}")
        if prior_weight != "auto" and not (
            isinstance(prior_weight, int | float) and 0.0 <= prior_weight <= 1.0
        ):
            raise ValueError(f"prior_weight must be 'auto' or in [0, 1], got {prior_weight!r}")
        if not 0.0 <= popular_share <= 1.0:
            raise ValueError(f"popular_share must be in [0, 1], got {popular_share!r}")
        if on_backend_error not in ("fallback", "raise"):
            raise ValueError("on_backend_error must be 'fallback' or 'raise'")
        if history_threshold is not None:
            check_int("history_threshold", history_threshold, minimum=1)
        self.model, self.mode = model, mode
        self.n_candidates = check_int("n_candidates", n_candidates, minimum=1)
        self.popular_share, self.retrieval = float(popular_share), retrieval
        self.retrieval_params = dict(retrieval_params or {})
        self.prior, self.prior_weight = prior, prior_weight
        self.weight_grid = tuple(sorted({*map(float, weight_grid), 1.0}))
        self.weight_alpha = weight_alpha
        self.valid_users = check_int("valid_users", valid_users, minimum=0)
        self.seed_items = check_int("seed_items", seed_items, minimum=1)
        self.history_threshold = history_threshold
        self.permutations = check_int("permutations", permutations, minimum=1)
        self.permutation_fusion, self.noun, self.explain = permutation_fusion, noun, explain
        self.prompt = dict(prompt or {})
        self.on_backend_error, self.timeout, self.device = on_backend_error, timeout, device
        self.seed = check_int("seed", seed, minimum=0)
        from hybridrec.coldstart.scoring import mode_config

        self._config = mode_config(mode, noun, self.prompt)  # refuses a bad template now
        if mode == "listwise":
            from hybridrec.coldstart.scoring import check_listwise_size

            check_listwise_size(self.n_candidates, "candidates (n_candidates)")
        if isinstance(model, str):
            check_model_name(model)  # a misspelt name fails here, not at the first request
        else:
            check_mode(make_backend(model, timeout=timeout), mode)
        self.retriever_: Recommender | None = None
        self.fusion_: PriorFusion | None = None
        self.validation_: dict[float, float] = {}
        self.stats_: Counter[str] = Counter()
        self._lm: Any = None
        self._memo: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._failed: set[int] = set()

    # ------------------------------------------------------------------ language model
    @property
    def scorer(self) -> Any:
        """The mode's scorer over the backend (loaded on first use)."""
        if self._lm is None:
            from hybridrec.coldstart.scoring import make_scorer

            backend = make_backend(self.model, device=self.device, timeout=self.timeout)
            check_mode(backend, self.mode)
            self._lm = make_scorer(self.mode, backend, self._config)
        return self._lm

    @property
    def invalid_output_rate(self) -> float:
        """Generated lines that matched no candidate, over all generated lines (0 if none)."""
        return self.stats_["unmatched_lines"] / max(1, self.stats_["generated_lines"])

    def _uses_lm(self) -> bool:
        return self.fusion_ is None or self.fusion_.weight < 1.0

    def _prior_alone_note(self) -> str | None:
        """The note on every prompt-path recommendation when the model is not used."""
        if self.fusion_ is None or self.fusion_.weight < 1.0:
            return None
        if self.prior_weight != "auto":
            why = "prior_weight=1 was given"
        elif self.validation_:
            why = "validation chose weight 1"
        else:
            why = "no validation users, so weight 1"
        unused = f"the language model is not used to rank (the {self.prior} prior ranks)"
        return f"prior alone: {why}, {unused}"

    # ------------------------------------------------------------------ fitting
    def _fit(self, train: Dataset) -> None:
        from hybridrec.registry import create

        self.stats_ = Counter()
        self._memo.clear()
        self.retriever_ = create(self.retrieval, **self.retrieval_params).fit(train)
        self._prepare()
        w = self.prior_weight
        if w == "auto" or 0.0 < float(w) < 1.0:
            self._validate(train)
        else:
            self.fusion_ = PriorFusion(float(w))
        if self._uses_lm():  # load the model now: a name that cannot load fails at fit
            self.scorer  # noqa: B018

    def _prepare(self) -> None:
        assert self.popularity_ is not None and self.item_ids_ is not None
        self._pop_order = np.argsort(-self.popularity_, kind="stable")
        self._log_pop = np.log1p(self.popularity_.astype(np.float64))
        rng = np.random.default_rng(self.seed)
        self._show_key = rng.permutation(len(self.item_ids_))  # neutral display order

    def _validate(self, train: Dataset) -> None:
        from hybridrec.coldstart.validation import validation_requests

        cases = validation_requests(train, self.valid_users, self.seed_items, self.seed)
        if not cases:
            w = 1.0 if self.prior_weight == "auto" else float(self.prior_weight)
            unused = "; the language model is not used" if w >= 1.0 else ""
            logger.warning("prompt: no validation users; the prior weight is %g%s", w, unused)
            self.fusion_ = PriorFusion(w)
            return
        requests = [
            Request(UserContext(preference_text=t), -1, np.empty(0, np.int64)) for t, _ in cases
        ]
        lists = self._candidates(requests, exclude_seen=True)
        lm = [self._lm_scores(r, c) for r, c in zip(requests, lists, strict=True)]
        prior = [self._prior_scores(r, c) for r, c in zip(requests, lists, strict=True)]
        labels = [np.isin(c, pos) for c, (_, pos) in zip(lists, cases, strict=True)]
        grid = self.weight_grid if self.prior_weight == "auto" else (float(self.prior_weight), 1.0)
        fusion, self.validation_ = choose_weight(lm, prior, labels, grid, alpha=self.weight_alpha)
        if self.prior_weight != "auto":
            fusion = replace(fusion, weight=float(self.prior_weight))
        self.fusion_ = fusion
        table = ", ".join(f"{w:g}: {v:.4f}" for w, v in sorted(self.validation_.items()))
        if fusion.weight >= 1.0:
            logger.warning(
                "prompt: validation chose the prior alone (weight 1): the language model %r is "
                "not used, recommendations are ranked by the %s prior "
                "(validation NDCG@10 by prior weight: %s)",
                self.model if isinstance(self.model, str) else type(self.model).__name__,
                self.prior,
                table,
            )
        else:
            logger.info(
                "prompt: prior weight %g (validation NDCG@10 by prior weight: %s)",
                fusion.weight,
                table,
            )

    # ------------------------------------------------------------------ candidates
    @property
    def candidate_source(self) -> str:
        share = round(self.popular_share * self.n_candidates)
        return (
            f"{self.n_candidates - share} of {self.retrieval} + {share} most popular "
            f"(history >= {self.history_threshold}: top-{self.n_candidates} of {self.retrieval})"
        )

    @property
    def candidate_count(self) -> int:
        return self.n_candidates

    def _delegated(self, request: Request) -> bool:
        return self.history_threshold is not None and len(request.history) >= self.history_threshold

    def _is_cold(self, request: Request) -> bool:
        ctx = request.context
        return super()._is_cold(request) and not (ctx is not None and ctx.profile)

    def _candidates(self, requests: Sequence[Request], exclude_seen: bool) -> list[np.ndarray]:
        assert self.retriever_ is not None
        n = self.n_candidates
        users = [r.user if r.user is not None else UserContext() for r in requests]
        found = self.retriever_.recommend_batch(
            users, n, exclude_seen=exclude_seen, on_unused="ignore"
        )
        out = []
        for request, recs in zip(requests, found, strict=True):
            retrieved = self._item_codes([x.item_id for x in recs])
            if self._delegated(request):
                out.append(retrieved)
                continue
            popular = self._pop_order
            if exclude_seen and len(request.history):
                popular = popular[~np.isin(popular, request.history)]
            n_pop = round(self.popular_share * n)
            head = list(dict.fromkeys([*retrieved[: n - n_pop], *popular[:n]]))[:n]
            tail = [c for c in (*retrieved, *popular[: 2 * n]) if c not in set(head)]
            out.append(np.asarray((head + tail)[:n], dtype=np.int64))
        return out

    def _request_notes(self, request: Request) -> tuple[str, ...]:
        notes: tuple[str, ...] = ()
        if self._delegated(request):
            notes += (f"history of {len(request.history)} items: ranked by {self.retrieval}",)
        elif not self._is_cold(request) and (alone := self._prior_alone_note()) is not None:
            notes += (alone,)
        if id(request) in self._failed:
            notes += ("the language model failed: ranked by the prior alone",)
        return notes

    # ------------------------------------------------------------------ scoring
    def _score_candidates(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        assert self.retriever_ is not None and self.fusion_ is not None
        out = []
        for request, codes in zip(requests, candidates, strict=True):
            codes = np.asarray(codes, dtype=np.int64)
            self.stats_["requests"] += 1
            if self._delegated(request):
                self.stats_["delegated"] += 1
                ids = list(self.item_ids_[codes])
                out.append(
                    self.retriever_.score_candidates([request.user], [ids], on_unused="ignore")[0]
                )
                continue
            if self.mode == "listwise":  # one prompt: refused beyond its identifiers
                from hybridrec.coldstart.scoring import check_listwise_size

                check_listwise_size(len(codes))
            lm = None
            if self._uses_lm() and len(codes):
                try:
                    lm = self._lm_scores(request, codes)
                except BackendError:
                    if self.on_backend_error == "raise":
                        raise
                    logger.warning("prompt: backend failed; the prior alone ranks", exc_info=True)
                    self.stats_["backend_errors"] += 1
                    self._failed.add(id(request))
            fusion = (
                self.fusion_ if lm is not None else PriorFusion(1.0, *self.fusion_.to_array()[1:])
            )
            out.append(fusion.fuse(lm, self._prior_scores(request, codes)))
        return out

    def _prior_scores(self, request: Request, codes: np.ndarray) -> np.ndarray:
        if self.prior == "popularity" or not len(codes):
            return self._log_pop[codes]
        user = request.user if request.user is not None else UserContext()
        scores = self.retriever_.score_candidates(
            [user], [list(self.item_ids_[codes])], on_unused="ignore"
        )[0]
        return np.nan_to_num(np.asarray(scores, np.float64), nan=0.0, posinf=0.0, neginf=0.0)

    def _preference(self, request: Request) -> tuple[str, Mapping[str, Any]]:
        """The user's words (with the titles of their few items) and profile."""
        ctx = request.context
        text = (ctx.preference_text or "") if ctx is not None else ""
        if len(request.history):
            titles = ", ".join(f"'{self.item_titles_[c]}'" for c in request.history[-5:])
            text = f"{text}\n{render('coldstart_history', titles=titles)}".strip()
        return text, (dict(ctx.profile) if ctx is not None else {})

    def _lm_scores(self, request: Request, codes: np.ndarray) -> np.ndarray:
        from hybridrec.coldstart.prompt import clean_data_text
        from hybridrec.coldstart.scoring import lm_scores

        text, profile = self._preference(request)
        order = np.argsort(self._show_key[codes], kind="stable")  # shown in a neutral order
        shown = codes[order]
        facts = tuple(sorted((str(k), str(v)[:1000]) for k, v in profile.items()))
        # keyed on the text as every mode's prompt takes it (cleaned, capped): the scores depend
        # on nothing more, and a huge text keeps no more than the cap in memory
        capped = clean_data_text(text, self._config.preference_chars)
        key = (capped, facts, tuple(shown.tolist()))
        if key not in self._memo:
            titles = [str(self.item_titles_[c]) for c in shown]
            self._memo[key] = lm_scores(self, text, profile, titles)
            while len(self._memo) > _MEMO:
                self._memo.popitem(last=False)
        scores = np.empty(len(codes), dtype=np.float64)
        scores[order] = self._memo[key]
        return scores

    # ------------------------------------------------------------------ explanations
    def recommend_batch(
        self, users: Sequence[Any], k: int = 10, **kwargs: Any
    ) -> list[list[Recommendation]]:
        """As :meth:`Recommender.recommend_batch`; with ``explain=True`` each recommendation of
        the language-model path carries a generated one-sentence explanation."""
        self._failed.clear()
        out = super().recommend_batch(users, k, **kwargs)
        if not self.explain:
            return out
        from hybridrec.coldstart.generative import explain

        for row, (user, recs) in enumerate(zip(users, out, strict=True)):
            request = self._resolve(user)
            if self._delegated(request) or self._is_cold(request):
                continue
            text, profile = self._preference(request)
            backend = self.scorer.backend
            out[row] = [
                replace(
                    r,
                    explanation=_safe(explain, backend, text, profile, self.item_title(r.item_id)),
                )
                for r in recs
            ]
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """As :meth:`Recommender.save`; a chat-model object cannot be saved (give a name)."""
        if not isinstance(self.model, str):
            raise ValueError("a prompt recommender over a chat model object cannot be saved")
        return super().save(path, overwrite=overwrite)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.fusion_ is not None
        grid = np.array(sorted(self.validation_.items()), dtype=np.float64).reshape(-1, 2)
        return {"fusion": self.fusion_.to_array(), "validation": grid}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        try:
            self.fusion_ = PriorFusion.from_array(arrays["fusion"])
        except (KeyError, ValueError) as err:
            raise ModelFileError(f"prompt: bad saved fusion: {err}") from err
        self.validation_ = {
            float(w): float(v) for w, v in arrays.get("validation", np.zeros((0, 2)))
        }
        self._prepare()

    def _save_extra(self, folder: Path) -> None:
        assert self.retriever_ is not None
        self.retriever_.save(folder / RETRIEVAL_FOLDER)

    def _load_extra(self, folder: Path, manifest: dict[str, Any]) -> None:
        from hybridrec.registry import load

        self.retriever_ = load(folder / RETRIEVAL_FOLDER)
        if self.retriever_.name != self.retrieval or list(self.retriever_.item_ids_) != list(
            self.item_ids_
        ):
            raise ModelFileError(f"{folder}: the saved {self.retrieval!r} stage does not match")


def _safe(fn: Any, *args: Any) -> str | None:
    """An explanation, or None when the backend failed (an explanation is never required)."""
    try:
        return fn(*args)
    except BackendError:
        logger.warning("prompt: an explanation failed", exc_info=True)
        return None
