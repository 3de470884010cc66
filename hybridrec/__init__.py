"""hybridrec: hybrid recommendation with language models.

Example:
    >>> import hybridrec as hr
    >>> ds = hr.load_dataset("ml-latest-small")
    >>> split = hr.split(ds, "leave-one-out")
    >>> rec = hr.create("popularity").fit(split.train)
    >>> len(rec.recommend("1", k=10))
    10
"""

from __future__ import annotations

from hybridrec.data import Dataset, ItemTextBuilder, Split, load_dataset, split
from hybridrec.errors import (
    DataError,
    HybridrecError,
    MissingDependencyError,
    ModelFileError,
    NotFittedError,
    UnknownIdError,
    UnusedInputError,
    UnusedInputWarning,
)
from hybridrec.recommender import Recommender
from hybridrec.registry import (
    available,
    available_rerankers,
    create,
    create_reranker,
    load,
)
from hybridrec.reranker import Reranker
from hybridrec.types import Interaction, Item, Recommendation, UserContext

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "Dataset",
    "HybridrecError",
    "Interaction",
    "Item",
    "ItemTextBuilder",
    "MissingDependencyError",
    "ModelFileError",
    "NotFittedError",
    "Recommendation",
    "Recommender",
    "Reranker",
    "Split",
    "UnknownIdError",
    "UnusedInputError",
    "UnusedInputWarning",
    "UserContext",
    "available",
    "available_rerankers",
    "create",
    "create_reranker",
    "load",
    "load_dataset",
    "split",
]
