"""``rerank``: a candidate generator's top items, reranked by the fine-tuned language model.

The rerank stage of the product (see ``../shared/DESIGN.md``): any registered recommender
(``embedding`` by default, ``ease`` or a plugin) proposes ``n_candidates`` items, and the
``lm`` reranker (:class:`~hybridrec.rerank.lm.LMReranker`) orders them. By default the
reranker is trained on the ranking task with its hard negatives drawn from the same generator,
which is what it sees at serving time.

Fusion (``fusion="lr"``): the final score is a logistic regression on the language model's
logit, the generator's score, the candidate's log popularity and its (shrunk) mean rating,
fitted on the generator's top ``n_candidates`` lists for targets of the reranker's validation
users only (users it was not trained on; each history ends before its target), keeping the
lists that contain their target, as the lists it orders at serving time do when they matter.
``fusion="weight"`` instead interpolates the standardised logit and generator score,
``(1 - w) * z(lm) + w * z(generator)``, with ``w`` chosen on the same lists for their NDCG@10
from a grid that holds the generator alone (``w = 1``); a ``w`` below 1 must beat the generator
alone by a paired test (:func:`hybridrec.coldstart.fusion.choose_weight`, shared with the
cold-start stage), so the fused order is never worse on validation than the generator's.
``fusion="none"`` (default) ranks by the logit alone.
:meth:`RerankRecommender.fusion_weights` shows what the regression learnt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from hybridrec.checks import check_int
from hybridrec.coldstart.fusion import PriorFusion, choose_weight
from hybridrec.data.dataset import Dataset
from hybridrec.hybrid import TwoStageRecommender
from hybridrec.recommender import Request
from hybridrec.types import UserContext

logger = logging.getLogger(__name__)

FUSIONS = ("none", "lr", "weight")
#: the features of the fused score, in the order of :attr:`RerankRecommender.fusion_`
FUSION_FEATURES = ("lm_logit", "generator_score", "log_popularity", "mean_rating")
#: settings of the reranker's ranking examples that the fusion's examples share
_SHARED_SAMPLES = ("min_history", "liked_only", "ties")
#: prior count shrinking an item's mean rating to the global mean
_SHRINK = 10.0


class RerankRecommender(TwoStageRecommender):
    """Top ``n_candidates`` of a generator, reranked by the ``lm`` reranker (name ``rerank``).

    Args:
        candidates: registry name of the candidate generator (any recommender).
        n_candidates: candidates per request (20 by default).
        candidates_params: parameters of the generator.
        reranker_params: parameters of :class:`~hybridrec.rerank.lm.LMReranker` (``model``,
            ``head``, ``task``, ``shots``, ``training``, ``prompt``, ...); its ``candidates``
            and ``candidates_params`` (the generator of the ranking task's negatives) default
            to this recommender's.
        fusion: ``"none"`` (the language model's logit), ``"lr"`` or ``"weight"`` (see the
            module docstring; both need the reranker's validation data, so ``valid_frac`` must
            not be None).
        fusion_groups: at most this many lists (targets of validation users, each with the
            generator's top ``n_candidates``) that the fusion is fitted on; each costs
            ``n_candidates`` language-model scores.
        seed: the reranker's seed (sampling, head initialisation, training) unless
            ``reranker_params`` gives one.

    Example:
        >>> import hybridrec as hr
        >>> rec = hr.create("rerank", candidates="ease", reranker_params={"shots": 64})
        >>> rec.candidate_source
        'top-20 of ease'
    """

    name: ClassVar[str] = "rerank"
    in_all: ClassVar[bool] = False  # it trains a language model: name it in a bench config

    def __init__(
        self,
        candidates: str = "embedding",
        n_candidates: int = 20,
        candidates_params: Mapping[str, Any] | None = None,
        reranker_params: Mapping[str, Any] | None = None,
        fusion: str = "none",
        fusion_groups: int = 50,
        seed: int = 0,
    ) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; known: {', '.join(FUSIONS)}")
        check_int("n_candidates", n_candidates, minimum=1)
        check_int("fusion_groups", fusion_groups, minimum=2)
        check_int("seed", seed, minimum=0)
        params = dict(reranker_params or {})
        if fusion != "none" and "valid_frac" in params and params["valid_frac"] is None:
            raise ValueError(
                f"fusion={fusion!r} is fitted on validation data: valid_frac cannot be None"
            )
        super().__init__(candidates, n_candidates, "lm", candidates_params, params)
        self.fusion = fusion
        self.fusion_groups = fusion_groups
        self.seed = seed
        from hybridrec.rerank.lm import LMReranker

        LMReranker(**self._lm_params())  # validates the settings now
        #: coefficients of :data:`FUSION_FEATURES`, then the intercept (``fusion="lr"``)
        self.fusion_: np.ndarray | None = None
        #: the generator's weight and both standardisations (``fusion="weight"``)
        self.weighting_: PriorFusion | None = None
        #: validation NDCG@10 of every weight tried (``fusion="weight"``; not saved)
        self.weight_table_: dict[float, float] = {}

    def _fit(self, train: Dataset) -> None:
        from hybridrec.registry import create, create_reranker

        self.source_ = create(self.candidates, **self.candidates_params).fit(train)
        self.reranker_ = create_reranker("lm", **self._lm_params()).fit(train)
        self.fusion_, self.weighting_, self.weight_table_ = None, None, {}
        if self.fusion == "none":
            return
        examples, logits, generator = self._fusion_scores(train)
        if self.fusion == "lr":
            self.fusion_ = _logistic_fusion(
                np.column_stack([logits, generator, *self._item_features(examples.item).T]),
                examples.label,
            )
        else:
            groups = [np.flatnonzero(examples.group == g) for g in np.unique(examples.group)]
            self.weighting_, self.weight_table_ = choose_weight(
                [logits[i] for i in groups], [generator[i] for i in groups],
                [examples.label[i] == 1 for i in groups],
            )  # fmt: skip
            if self._generator_alone():
                logger.warning(
                    "rerank: fusion='weight' kept the generator alone (validation NDCG@10 by "
                    "generator weight: %s); the language model will not rank",
                    {w: round(v, 4) for w, v in self.weight_table_.items()},
                )

    def _lm_params(self) -> dict[str, Any]:
        own: dict[str, Any] = {"seed": self.seed}
        if "candidates" not in self.reranker_params:  # else the reranker's own generator
            own |= {"candidates": self.candidates, "candidates_params": self.candidates_params}
        return {**own, **self.reranker_params}

    # ------------------------------------------------------------------ fusion
    def _fusion_scores(self, train: Dataset) -> tuple[Any, np.ndarray, np.ndarray]:
        """The fusion's lists (see :meth:`_fusion_examples`), their logits and generator scores."""
        examples = self._fusion_examples(train)
        contexts, lists, members = _group_requests(examples)
        lm = self.reranker_.score_candidates(contexts, lists, on_unused="ignore")  # type: ignore[union-attr]
        gen = self.source_.score_candidates(contexts, lists, on_unused="ignore")  # type: ignore[union-attr]
        logits, generator = np.zeros(len(examples)), np.zeros(len(examples))
        for idx, a, b in zip(members, lm, gen, strict=True):
            logits[idx] = a
            generator[idx] = np.nan_to_num(np.asarray(b, np.float64), posinf=0.0, neginf=0.0)
        return examples, logits, generator

    def _fusion_examples(self, train: Dataset) -> Any:
        """The generator's whole top list for targets of the reranker's validation users.

        Only targets that the generator ranks within its top ``n_candidates`` are kept, with
        the rest of that list as negatives: the lists the fused score will order at serving
        time. (Fitted on every validation target instead, the regression learns that the
        positives the generator misses are unpopular, and pushes unpopular items up.)
        """
        from hybridrec.rerank.samples import ranking_examples

        validation = getattr(self.reranker_, "validation_", None)
        if validation is None:
            raise ValueError(
                f"fusion={self.fusion!r} needs validation examples, and the reranker had none "
                "(too few users, one label only, or train=False); use fusion='none'"
            )
        samples = self.reranker_.samples  # type: ignore[union-attr]
        examples = ranking_examples(
            train, self.source_, negatives_per_positive=None, n_candidates=self.n_candidates,
            max_targets_per_user=None, users=validation[0].users(), positive_in_list=True,
            seed=self.seed, **{k: samples[k] for k in _SHARED_SAMPLES if k in samples},
        )  # fmt: skip
        groups = np.unique(examples.group)
        if len(groups) < 2:
            raise ValueError(
                f"fusion={self.fusion!r}: the generator ranks the next item of fewer than 2 "
                f"validation targets within its top {self.n_candidates}; use fusion='none' or a "
                f"larger n_candidates"
            )
        rng = np.random.default_rng(self.seed)
        keep = rng.choice(groups, size=min(self.fusion_groups, len(groups)), replace=False)
        return examples.subset(np.flatnonzero(np.isin(examples.group, keep)))

    def _item_features(self, codes: np.ndarray) -> np.ndarray:
        """Log popularity and shrunk mean rating of items (from the reranker's catalogue)."""
        cat = self.reranker_.catalogue_  # type: ignore[union-attr]
        counts = np.asarray(cat.counts, dtype=np.float64)
        sums = np.asarray(cat.rating_sums, dtype=np.float64)
        rated = np.asarray(cat.rating_counts, dtype=np.float64)
        mean = sums.sum() / rated.sum() if rated.sum() else 0.0
        shrunk = (sums + _SHRINK * mean) / (rated + _SHRINK)
        return np.column_stack([np.log1p(counts[codes]), shrunk[codes]])

    def fusion_weights(self) -> dict[str, float] | None:
        """The fused score's coefficients by feature name (and ``intercept``), or None.

        With ``fusion="weight"``: ``{"lm_logit": 1 - w, "generator_score": w}`` (of the
        standardised scores).
        """
        if self.weighting_ is not None:
            w = self.weighting_.weight
            return {"lm_logit": 1.0 - w, "generator_score": w}
        if self.fusion_ is None:
            return None
        return dict(zip((*FUSION_FEATURES, "intercept"), map(float, self.fusion_), strict=True))

    # ------------------------------------------------------------------ scoring
    def _score_candidates(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        if self._generator_alone():  # the language model would not move the order: skip it
            logits: list[Any] = [None] * len(requests)
        else:
            logits = super()._score_candidates(requests, candidates)
        if self.fusion_ is None and self.weighting_ is None:
            return logits
        assert self.source_ is not None and self.item_ids_ is not None
        generator = self.source_.score_candidates(
            [r.user for r in requests], [list(self.item_ids_[c]) for c in candidates],
            on_unused="ignore",
        )  # fmt: skip
        w = self.fusion_
        out = []
        for lm, gen, codes in zip(logits, generator, candidates, strict=True):
            gen = np.nan_to_num(np.asarray(gen, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            if self.weighting_ is not None:
                out.append(self.weighting_.fuse(lm, gen))
                continue
            assert w is not None
            x = np.column_stack([lm, gen, *self._item_features(np.asarray(codes)).T])
            out.append(x @ w[:-1] + w[-1])
        return out

    def _generator_alone(self) -> bool:
        return self.weighting_ is not None and self.weighting_.weight >= 1.0

    def _request_notes(self, request: Request) -> tuple[str, ...]:
        notes = super()._request_notes(request)
        if self._generator_alone():
            notes += (
                "generator alone: fusion='weight' chose weight 1 on validation, the language "
                "model does not rank",
            )
        return notes

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        state = super()._state()
        if self.fusion_ is not None:
            state["fusion"] = self.fusion_
        if self.weighting_ is not None:
            state["weighting"] = self.weighting_.to_array()
        return state

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        super()._load_state(arrays)
        self.fusion_, self.weighting_ = None, None
        if self.fusion == "weight":
            if "weighting" not in arrays:
                raise ValueError("fusion='weight' but no weighting was saved")
            self.weighting_ = PriorFusion.from_array(arrays["weighting"])
        if self.fusion == "lr":
            if "fusion" not in arrays:
                raise ValueError("fusion='lr' but no fusion weights were saved")
            self.fusion_ = arrays["fusion"].astype(np.float64)
            if self.fusion_.shape != (len(FUSION_FEATURES) + 1,):
                raise ValueError(f"fusion weights must be {len(FUSION_FEATURES) + 1} numbers")
            if not np.isfinite(self.fusion_).all():
                raise ValueError("fusion weights must be finite")


def _group_requests(examples: Any) -> tuple[list[UserContext], list[list[str]], list[np.ndarray]]:
    """One anonymous request per example group: the history before its target, its items."""
    data, ids = examples.dataset, examples.dataset.item_ids
    contexts, lists, members = [], [], []
    for g in np.unique(examples.group):
        idx = np.flatnonzero(examples.group == g)
        lo, hi = int(examples.history_start[idx[0]]), int(examples.history_stop[idx[0]])
        contexts.append(UserContext(history=data.interactions_between(lo, hi)))
        lists.append([str(ids[i]) for i in examples.item[idx]])
        members.append(idx)
    return contexts, lists, members


def _logistic_fusion(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Coefficients then intercept of a logistic regression of ``labels`` on ``x``."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1.0, max_iter=1000).fit(x, labels)
    return np.concatenate([lr.coef_[0], lr.intercept_]).astype(np.float64)
