"""Where hybridrec keeps what it caches: one root, one sub-folder per kind.

Every cache path in hybridrec comes from :func:`cache_dir`, so one setting moves all of them::

    <root>/datasets/     downloaded datasets (see :mod:`hybridrec.data.download`)
    <root>/embeddings/   text embeddings, one folder per model (see
                         :mod:`hybridrec.retrieval.embedder`)
    <root>/models/       converted or fine-tuned model weights

``<root>`` is the folder named by the environment variable ``HYBRIDREC_CACHE`` (``~`` is
expanded; an empty value counts as unset), else ``~/.cache/hybridrec``. Nothing here creates a
folder: the code that writes into one creates it when it first writes.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "HYBRIDREC_CACHE"
"""The environment variable naming the cache root."""

CACHE_KINDS = ("datasets", "embeddings", "models")
"""The sub-folders of the cache root, one per kind of cached thing."""


def cache_root() -> Path:
    """The cache root: ``$HYBRIDREC_CACHE`` (``~`` expanded) or ``~/.cache/hybridrec``.

    Read from the environment on every call, so a change of ``HYBRIDREC_CACHE`` applies at once.

    Example:
        >>> cache_root()  # doctest: +SKIP
        PosixPath('/home/me/.cache/hybridrec')
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "hybridrec"


def cache_dir(kind: str) -> Path:
    """The cache folder of one kind of cached thing: ``cache_root() / kind``.

    Args:
        kind: one of :data:`CACHE_KINDS` (``"datasets"``, ``"embeddings"``, ``"models"``).

    Raises:
        ValueError: an unknown kind (the message lists the known ones).

    Example:
        >>> cache_dir("datasets") == cache_root() / "datasets"
        True
        >>> cache_dir("tmp")
        Traceback (most recent call last):
        ...
        ValueError: unknown cache kind 'tmp'; known: datasets, embeddings, models
    """
    if kind not in CACHE_KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; known: {', '.join(CACHE_KINDS)}")
    return cache_root() / kind
