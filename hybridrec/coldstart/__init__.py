"""The cold-start stage: zero-shot ranking of candidates by an instruction language model.

* :mod:`hybridrec.coldstart.listwise`: listwise ranking by index (one prompt lists the
  candidates behind single-token identifiers; the next-token logits of the identifiers score
  every candidate in one forward pass, so nothing outside the list can come back);
* :mod:`hybridrec.coldstart.permutation`: position-bias control (scores under several seeded
  orders fused by mean or Borda count) and order sensitivity (rank correlation between orders);
* :mod:`hybridrec.coldstart.grounding`: the generative mode's matching of written titles to
  the catalogue (exact, normalised, fuzzy), with the invalid-output rate.

Importing this package does not import torch or transformers (only ``listwise`` loads them,
when a scorer is built).
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
