"""Argument checks shared by the public API: one clear error naming the argument and its value."""

from __future__ import annotations

import math
from typing import Any


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """``value`` as an int (not a bool, str or float) at least ``minimum``.

    Example:
        >>> check_int("neighbours", 5, minimum=1)
        5
        >>> check_int("neighbours", "5", minimum=1)
        Traceback (most recent call last):
        ...
        TypeError: neighbours must be an integer, not '5'
    """
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return int(value)


def check_float(
    name: str, value: Any, *, minimum: float | None = None, exclusive: bool = False
) -> float:
    """``value`` as a finite float (ints accepted), above ``minimum`` (or at it unless exclusive).

    Example:
        >>> check_float("l2", float("nan"), minimum=0, exclusive=True)
        Traceback (most recent call last):
        ...
        ValueError: l2 must be a finite number, not nan
    """
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        bound = "above" if exclusive else "at least"
        raise ValueError(f"{name} must be {bound} {minimum:g}, not {value:g}")
    return value


def check_dataset(value: Any, what: str = "dataset") -> Any:
    """``value`` if it is a :class:`~hybridrec.data.dataset.Dataset`, else a clear TypeError."""
    from hybridrec.data.dataset import Dataset

    if not isinstance(value, Dataset):
        raise TypeError(
            f"{what} must be a hybridrec Dataset, not {type(value).__name__}; load one with "
            "hybridrec.load_dataset(...) or build one with Dataset.from_frames(...)"
        )
    return value
