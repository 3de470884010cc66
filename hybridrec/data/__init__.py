"""Datasets, loaders, splits and item text."""

from __future__ import annotations

from hybridrec.data.dataset import Dataset
from hybridrec.data.splits import Split, split
from hybridrec.data.text import ItemTextBuilder, clean_text

__all__ = ["Dataset", "ItemTextBuilder", "Split", "clean_text", "load_dataset", "split"]


def load_dataset(name_or_path, **kwargs):  # noqa: ANN001, ANN201 - documented in loaders
    """Load a dataset by name or path; see :func:`hybridrec.data.loaders.load_dataset`."""
    from hybridrec.data.loaders import load_dataset as _load

    return _load(name_or_path, **kwargs)
