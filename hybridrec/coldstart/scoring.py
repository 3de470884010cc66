"""One interface over the three ranking modes: ``score(text, profile, titles) -> scores``.

:func:`mode_config` builds (and so checks) a mode's configuration, :func:`make_scorer` puts it
over a backend, :func:`lm_scores` runs it for the ``prompt`` recommender (permutation
averaging for listwise, invalid-output counts for generative).

The listwise mode scores a list in *one* prompt, so that its scores (log-probabilities over
the listed identifiers) are comparable: at most :data:`LISTWISE_MAX` (26) candidates, one
single-token identifier each (letters ``A``..``Z``; numbers past 9 are several tokens in most
tokenizers). A longer list is refused (ValueError), never cut into chunks: a chunk's
log-probabilities are normalised within that chunk (a 4-item chunk's sit near log(1/4)), so
scores of different chunks cannot be compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hybridrec.coldstart.generative import GenerativeConfig, GenerativeRanker
from hybridrec.coldstart.pointwise import PointwiseConfig, PointwiseScorer
from hybridrec.coldstart.prompt import LETTERS, Candidate, ListwiseConfig

__all__ = [
    "LISTWISE_MAX",
    "ModeScorer",
    "check_listwise_size",
    "lm_scores",
    "make_scorer",
    "mode_config",
]

#: the most candidates the listwise mode ranks (one prompt, one identifier token each)
LISTWISE_MAX = len(LETTERS)


def check_listwise_size(n: int, what: str = "candidates") -> None:
    """Refuse a listwise list longer than :data:`LISTWISE_MAX` (ValueError naming both).

    Example:
        >>> check_listwise_size(26)
        >>> check_listwise_size(30)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: the listwise mode ranks at most 26 candidates in one prompt ..., got 30 ...
    """
    if n > LISTWISE_MAX:
        raise ValueError(
            f"the listwise mode ranks at most {LISTWISE_MAX} candidates in one prompt (one "
            f"single-token identifier each, A to Z), got {n} {what}; use fewer "
            f"(n_candidates <= {LISTWISE_MAX}) or mode='pointwise'"
        )


def mode_config(mode: str, noun: str, overrides: Mapping[str, Any]) -> Any:
    """The mode's config with ``overrides`` (TypeError naming an unknown option; a template
    missing a field is refused here, naming it)."""
    if mode == "listwise":
        return ListwiseConfig(**overrides)
    if mode == "pointwise":
        return PointwiseConfig(**{"noun": noun, **overrides})
    return GenerativeConfig(**{"noun": noun, **overrides})


class ModeScorer:
    """A mode over a backend: ``score(text, profile, titles)`` and ``last`` (the generative
    mode's last :class:`~hybridrec.coldstart.grounding.GroundingResult`).

    The listwise mode ranks at most :data:`LISTWISE_MAX` titles, in one prompt (a longer list
    is a ValueError, see the module's notes)."""

    def __init__(self, mode: str, backend: Any, config: Any) -> None:
        self.mode, self.backend, self.config = mode, backend, config
        self.last: Any = None
        if mode == "listwise":
            self.impl: Any = backend.listwise(config)
        elif mode == "pointwise":
            self.impl = PointwiseScorer(backend, config)
        else:
            self.impl = GenerativeRanker(backend, config)

    def score(
        self,
        text: str,
        profile: Mapping[str, Any],
        titles: Sequence[str],
        *,
        permutations: int = 1,
        fusion: str = "mean",
        seed: int = 0,
    ) -> np.ndarray:
        """One score per title, in order (higher is better)."""
        if not titles:
            return np.zeros(0, dtype=np.float64)
        if self.mode == "pointwise":
            return self.impl.score(text, profile, titles)
        if self.mode == "generative":
            scores, self.last = self.impl.score(text, profile, titles)
            return scores
        check_listwise_size(len(titles))  # one prompt: scores comparable across the list
        part = [Candidate(str(i), t) for i, t in enumerate(titles)]
        if permutations > 1:
            got = self.impl.score_permuted(
                text, part, profile, orders=permutations, seed=seed, fusion=fusion
            ).scores
        else:
            try:
                got = self.impl.score(text, part, profile)
            except ValueError as err:  # text that cleans to nothing: no information
                if "empty" not in str(err):
                    raise
                got = np.zeros(len(part))
        return np.asarray(got, dtype=np.float64)


def make_scorer(mode: str, backend: Any, config: Any) -> ModeScorer:
    """The mode's scorer over ``backend``."""
    return ModeScorer(mode, backend, config)


def lm_scores(rec: Any, text: str, profile: Mapping[str, Any], titles: Sequence[str]) -> np.ndarray:
    """The ``prompt`` recommender's language-model scores of titles, with its counters."""
    scorer = rec.scorer
    scores = scorer.score(
        text,
        profile,
        titles,
        permutations=rec.permutations,
        fusion=rec.permutation_fusion,
        seed=rec.seed,
    )
    rec.stats_["lm_requests"] += 1
    if scorer.mode == "generative" and scorer.last is not None:
        result = scorer.last
        rec.stats_["generated_lines"] += result.n_lines
        rec.stats_["unmatched_lines"] += len(result.unmatched)
        rec.stats_["duplicates"] += result.duplicates
        rec.stats_["completed"] += result.completed
    return np.asarray(scores, dtype=np.float64)
