"""Evaluation splits: leave-one-out by time, global temporal and cold-start (users held out).

No split lets a user's future into training: leave-one-out keeps, for every user, only
interactions no later than the validation one in train; the temporal split cuts at global times.

A dataset without timestamps (``Dataset.has_timestamps`` False: its "times" are row numbers) has
no future to keep out. By default the time-based splits then hold out at random (seeded) and say
so in :attr:`Split.notes`; with ``on_missing_time="error"`` they raise instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.checks import check_dataset, check_float, check_int
from hybridrec.data.dataset import Dataset
from hybridrec.errors import DataError

logger = logging.getLogger(__name__)

PROTOCOLS = ("leave-one-out", "temporal", "cold-start")
ON_MISSING_TIME = ("random", "error")


@dataclass(frozen=True)
class Split:
    """Train, validation and test views of one dataset, sharing its id vocabularies.

    Attributes:
        train / valid / test: the three parts.
        protocol: ``"leave-one-out"``, ``"temporal"`` or ``"cold-start"``.
        params: the protocol's parameters (plus ``hold_out="random"`` and ``seed`` when a
            time-based protocol fell back to a random hold-out).
        notes: empty when the split is what its protocol says; otherwise one sentence for
            reports, e.g. ``"no timestamps: random hold-out (seed 0), not by time"``.
    """

    train: Dataset
    valid: Dataset
    test: Dataset
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    @cached_property
    def train_and_valid(self) -> Dataset:
        """Train plus validation interactions: what a model is fitted on for the test run."""
        frame = pd.concat([self.train.interactions, self.valid.interactions])
        return self.train.with_interactions(
            frame, self.train.name.replace("/train", "/train+valid")
        )

    def __repr__(self) -> str:
        return (
            f"Split({self.protocol!r}, train={self.train.n_interactions}, "
            f"valid={self.valid.n_interactions}, test={self.test.n_interactions})"
        )


def split(dataset: Dataset, protocol: str = "leave-one-out", **params: Any) -> Split:
    """Split a dataset for evaluation.

    Args:
        dataset: the dataset to split.
        protocol: ``"leave-one-out"`` (per user, by time: last interaction to test, second-last
            to validation; users with fewer than ``min_interactions`` stay wholly in train),
            ``"temporal"`` (global time cut: the last ``test_frac`` of interactions to test, the
            ``valid_frac`` before them to validation), or ``"cold-start"`` (a share
            ``test_frac`` / ``valid_frac`` of users held out entirely, chosen with ``seed``).
        **params: the protocol's parameters, see above. The time-based protocols also take
            ``on_missing_time`` (``"random"``, the default, or ``"error"``) and ``seed`` (0):
            for a dataset without timestamps they hold out at random with ``seed`` and say so
            in :attr:`Split.notes`, or raise :class:`DataError`.

    Example:
        >>> import hybridrec as hr
        >>> s = hr.split(hr.load_dataset("ml-latest-small"), "leave-one-out")
        >>> s.test.n_interactions
        610
    """
    from hybridrec.checks import check_dataset

    check_dataset(dataset)
    if protocol == "leave-one-out":
        return leave_one_out(dataset, **params)
    if protocol == "temporal":
        return temporal(dataset, **params)
    if protocol == "cold-start":
        return cold_start(dataset, **params)
    raise ValueError(f"unknown split protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def _check_fractions(dataset: Dataset, test_frac: float, valid_frac: float, seed: int) -> None:
    check_dataset(dataset)
    check_float("test_frac", test_frac)
    check_float("valid_frac", valid_frac)
    check_int("seed", seed, minimum=0)
    if not (0 < test_frac < 1 and 0 <= valid_frac < 1 and valid_frac + test_frac < 1):
        raise ValueError("need 0 < test_frac, 0 <= valid_frac and valid_frac + test_frac < 1")


def _check_on_missing_time(value: str) -> None:
    if value not in ON_MISSING_TIME:
        raise ValueError(
            f"on_missing_time must be one of {', '.join(ON_MISSING_TIME)}, not {value!r}"
        )


def _no_timestamps(dataset: Dataset, protocol: str, on_missing_time: str, seed: int) -> str:
    """The note of a time-based split of a dataset without timestamps (or DataError)."""
    if on_missing_time == "error":
        raise DataError(
            f"dataset {dataset.name!r} has no timestamps, so a {protocol} split by time means "
            f"nothing; use on_missing_time='random' for a seeded random hold-out, or the "
            f"cold-start protocol"
        )
    note = f"no timestamps: random hold-out (seed {seed}), not by time"
    logger.warning("%s: %s split: %s", dataset.name, protocol, note)
    return note


def leave_one_out(
    dataset: Dataset,
    *,
    min_interactions: int = 3,
    on_missing_time: str = "random",
    seed: int = 0,
) -> Split:
    """Per user, in time order: the last interaction is test, the second-last validation.

    Ties in time keep the dataset's order (the loaders' file order), so the split is
    deterministic. Users with fewer than ``min_interactions`` interactions go wholly to train.

    Without timestamps (``dataset.has_timestamps`` False) the order within each user is
    shuffled with ``seed`` first, so test and validation are random interactions, and
    :attr:`Split.notes` says so; ``on_missing_time="error"`` raises :class:`DataError` instead.
    """
    check_dataset(dataset)
    check_int("min_interactions", min_interactions, minimum=3)  # train, valid and test
    check_int("seed", seed, minimum=0)
    _check_on_missing_time(on_missing_time)
    inter = dataset.interactions  # sorted by user, then time
    params: dict[str, Any] = {"min_interactions": min_interactions}
    notes = ""
    if not dataset.has_timestamps:
        notes = _no_timestamps(dataset, "leave-one-out", on_missing_time, seed)
        params.update(hold_out="random", seed=seed)
        shuffle = np.random.default_rng(seed).permutation(len(inter))
        inter = inter.iloc[np.lexsort((shuffle, inter["user"].to_numpy()))]
    users = inter["user"].to_numpy()
    counts = np.bincount(users, minlength=dataset.n_users)
    # position from the end within each user: 0 = last
    offsets = np.concatenate([[0], np.cumsum(counts)])
    from_end = offsets[users + 1] - 1 - np.arange(len(inter))
    eligible = counts[users] >= min_interactions
    test_mask = eligible & (from_end == 0)
    valid_mask = eligible & (from_end == 1)
    train_mask = ~(test_mask | valid_mask)
    return Split(
        train=dataset.with_interactions(inter[train_mask], f"{dataset.name}/train"),
        valid=dataset.with_interactions(inter[valid_mask], f"{dataset.name}/valid"),
        test=dataset.with_interactions(inter[test_mask], f"{dataset.name}/test"),
        protocol="leave-one-out",
        params=params,
        notes=notes,
    )


def temporal(
    dataset: Dataset,
    *,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
    on_missing_time: str = "random",
    seed: int = 0,
) -> Split:
    """Global time cut: interactions before the cut train, the rest validate and test.

    Validation and test keep only users and items that exist in train (a model cannot be asked
    about a user it has never seen under this protocol; use ``cold-start`` for that).

    Without timestamps (``dataset.has_timestamps`` False) the interactions are put in a random
    order drawn with ``seed`` and cut there instead, and :attr:`Split.notes` says so;
    ``on_missing_time="error"`` raises :class:`DataError` instead.
    """
    _check_fractions(dataset, test_frac, valid_frac, seed)
    _check_on_missing_time(on_missing_time)
    inter = dataset.interactions
    notes = ""
    if dataset.has_timestamps:
        ts = inter["timestamp"].to_numpy()
    else:
        notes = _no_timestamps(dataset, "temporal", on_missing_time, seed)
        ts = np.random.default_rng(seed).permutation(len(inter)).astype(np.int64)
    t_test = np.quantile(ts, 1 - test_frac, method="lower")
    t_valid = np.quantile(ts, 1 - test_frac - valid_frac, method="lower")
    train_mask = ts < t_valid
    valid_mask = (ts >= t_valid) & (ts < t_test)
    test_mask = ts >= t_test
    train = inter[train_mask]
    seen_users = np.zeros(dataset.n_users, bool)
    seen_users[train["user"].to_numpy()] = True
    seen_items = np.zeros(dataset.n_items, bool)
    seen_items[train["item"].to_numpy()] = True

    def known(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[seen_users[frame["user"].to_numpy()] & seen_items[frame["item"].to_numpy()]]

    return Split(
        train=dataset.with_interactions(train, f"{dataset.name}/train"),
        valid=dataset.with_interactions(known(inter[valid_mask]), f"{dataset.name}/valid"),
        test=dataset.with_interactions(known(inter[test_mask]), f"{dataset.name}/test"),
        protocol="temporal",
        params={
            "valid_frac": valid_frac,
            "test_frac": test_frac,
            **(
                {"valid_from": int(t_valid), "test_from": int(t_test)}
                if dataset.has_timestamps
                else {"hold_out": "random", "seed": seed}
            ),
        },
        notes=notes,
    )


def cold_start(
    dataset: Dataset,
    *,
    test_frac: float = 0.1,
    valid_frac: float = 0.1,
    seed: int = 0,
    on_missing_time: str = "random",
) -> Split:
    """Hold out a random share of users entirely: none of their interactions are in train.

    The users are drawn at random, so timestamps are not needed (``on_missing_time`` is
    accepted, and ignored, so that one set of options fits every protocol).
    """
    _check_on_missing_time(on_missing_time)
    _check_fractions(dataset, test_frac, valid_frac, seed)
    active = dataset.active_users()
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(active)
    n_test = max(1, int(round(test_frac * len(active))))
    n_valid = int(round(valid_frac * len(active)))
    role = np.zeros(dataset.n_users, np.int8)  # 0 train, 1 valid, 2 test
    role[shuffled[:n_test]] = 2
    role[shuffled[n_test : n_test + n_valid]] = 1
    inter = dataset.interactions
    r = role[inter["user"].to_numpy()]
    return Split(
        train=dataset.with_interactions(inter[r == 0], f"{dataset.name}/train"),
        valid=dataset.with_interactions(inter[r == 1], f"{dataset.name}/valid"),
        test=dataset.with_interactions(inter[r == 2], f"{dataset.name}/test"),
        protocol="cold-start",
        params={"test_frac": test_frac, "valid_frac": valid_frac, "seed": seed},
    )
