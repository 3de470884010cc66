"""Item sequences: users' histories in time order, training windows, validation hold-out, padding.

Everything here works on item *codes* (``0 .. n_items - 1``); :func:`pad_left` shifts them by one
so that 0 can mean padding, the convention of :class:`~hybridrec_sequential.network.SASRecNet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridrec import Dataset


@dataclass(frozen=True)
class Sequences:
    """Per-user item codes, oldest first, stored CSR-style: user ``u`` is
    ``items[indptr[u]:indptr[u + 1]]``.

    Example:
        >>> s = Sequences(np.array([0, 2, 3]), np.array([4, 1, 7]))
        >>> s.of(0).tolist(), s.lengths.tolist()
        ([4, 1], [2, 1])
    """

    indptr: np.ndarray
    items: np.ndarray

    @classmethod
    def from_dataset(cls, data: Dataset) -> Sequences:
        """Each user's interactions in time order (a Dataset keeps them sorted by user, time)."""
        inter = data.interactions
        counts = np.bincount(inter["user"].to_numpy(), minlength=data.n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, inter["item"].to_numpy().astype(np.int64))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def of(self, user: int) -> np.ndarray:
        """The item codes of user ``user``, oldest first."""
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def __len__(self) -> int:
        return len(self.indptr) - 1


@dataclass(frozen=True)
class Holdout:
    """Training sequences with the last item of some users held out for validation.

    Attributes:
        train: the sequences to train on (every user, held-out items removed).
        users: the users with a validation item.
        targets: their held-out (last) item codes.
    """

    train: Sequences
    users: np.ndarray
    targets: np.ndarray


def hold_out_last(seqs: Sequences, min_length: int = 3) -> Holdout:
    """Hold out the last item of every user with at least ``min_length`` items.

    Users with fewer items keep their whole sequence for training (with three or more a user
    still gives a training pair after the hold-out). No such user: empty validation.

    Example:
        >>> h = hold_out_last(Sequences(np.array([0, 3, 5]), np.array([1, 2, 3, 4, 5])))
        >>> h.users.tolist(), h.targets.tolist(), h.train.of(0).tolist(), h.train.of(1).tolist()
        ([0], [3], [1, 2], [4, 5])
    """
    lengths = seqs.lengths
    users = np.flatnonzero(lengths >= min_length)
    targets = seqs.items[seqs.indptr[users + 1] - 1]
    keep = np.ones(len(seqs.items), dtype=bool)
    keep[seqs.indptr[users + 1] - 1] = False
    new_lengths = lengths.copy()
    new_lengths[users] -= 1
    indptr = np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)
    return Holdout(Sequences(indptr, seqs.items[keep]), users, targets)


def training_windows(seqs: Sequences, max_len: int) -> np.ndarray:
    """``(start, stop)`` rows of the windows that cover every next-item target once.

    A window's inputs are ``items[start:stop - 1]`` and its targets ``items[start + 1:stop]``
    (at most ``max_len`` of each). Long sequences are cut from their end backwards, so the newest
    window has the most recent ``max_len`` inputs; users with one item give no window.

    Example:
        >>> training_windows(Sequences(np.array([0, 5, 6]), np.arange(6)), max_len=3).tolist()
        [[1, 5], [0, 2]]
    """
    rows = []
    for user in range(len(seqs)):
        lo, hi = int(seqs.indptr[user]), int(seqs.indptr[user + 1])
        stop = hi
        while stop - lo >= 2:
            start = max(lo, stop - 1 - max_len)
            rows.append((start, stop))
            stop = start + 1
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def pad_left(seqs: list[np.ndarray], max_len: int) -> np.ndarray:
    """Codes + 1 of each sequence's newest ``max_len`` items, left-padded with 0 to a common
    length (the longest kept; at least 1).

    Example:
        >>> pad_left([np.array([4, 5, 6]), np.array([2])], max_len=2).tolist()
        [[6, 7], [0, 3]]
    """
    length = max([min(len(s), max_len) for s in seqs] + [1])
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for row, s in enumerate(seqs):
        s = s[len(s) - min(len(s), max_len) :]
        if len(s):
            out[row, length - len(s) :] = s + 1
    return out
