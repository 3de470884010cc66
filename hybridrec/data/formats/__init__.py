"""Readers of published dataset formats, one module a format family.

Each reader turns files into external-id frames (:class:`~hybridrec.data.formats.common.Frames`)
and never builds a :class:`~hybridrec.data.Dataset` itself;
:func:`hybridrec.data.loaders.load_dataset` does that. The shared parsing and validation
(line-numbered errors, lenient mode) lives in :mod:`~hybridrec.data.formats.common`,
:mod:`~hybridrec.data.formats.delimited` and :mod:`~hybridrec.data.formats.jsonlines`.
"""

from __future__ import annotations
