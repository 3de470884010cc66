"""The cold-start stage: zero-shot ranking of candidates by an instruction language model.

* :mod:`hybridrec.coldstart.listwise`: listwise ranking by index (one prompt lists the
  candidates behind single-token identifiers; the next-token logits of the identifiers score
  every candidate in one forward pass, so nothing outside the list can come back);
* :mod:`hybridrec.coldstart.permutation`: position-bias control (scores under several seeded
  orders fused by mean or Borda count) and order sensitivity (rank correlation between orders);
* :mod:`hybridrec.coldstart.grounding`: the generative mode's matching of written titles to
  the catalogue (exact, normalised, fuzzy), with the invalid-output rate;
* :mod:`hybridrec.coldstart.pointwise`: each candidate's title likelihood given the user's
  words (calibrated), scored with one cached prompt;
* :mod:`hybridrec.coldstart.generative`: written titles grounded in the candidates, and
  optional one-sentence explanations;
* :mod:`hybridrec.coldstart.backends`: the one place that picks a backend (a local causal LM
  for every mode, a LangChain chat model for the generative mode only);
* :mod:`hybridrec.coldstart.scoring`, :mod:`~hybridrec.coldstart.fusion`,
  :mod:`~hybridrec.coldstart.validation`: the modes behind one interface, prior fusion with a
  weight chosen on simulated cold-start validation users;
* :mod:`hybridrec.coldstart.recommender`: the ``prompt`` recommender that puts them together.

Importing this package does not import torch, transformers or langchain (the backends load
them when a scorer is built).
"""

from __future__ import annotations

from hybridrec.coldstart.grounding import (
    GroundingResult,
    Match,
    TitleIndex,
    ground,
    normalise_title,
)
from hybridrec.coldstart.permutation import (
    OrderSensitivity,
    PermutedScores,
    fuse,
    order_sensitivity,
    permuted_scores,
)

__all__ = [
    "GroundingResult",
    "Match",
    "OrderSensitivity",
    "PermutedScores",
    "TitleIndex",
    "fuse",
    "ground",
    "normalise_title",
    "order_sensitivity",
    "permuted_scores",
]
