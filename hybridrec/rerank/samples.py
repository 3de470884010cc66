"""Training examples of the reranker: (user, history before the target, candidate, label).

Two tasks, both built from a dataset's interactions (pass the training part of a split):

* **rating** (TALLRec): every interaction with at least ``min_history`` earlier ones is a
  target; its label is ``rating >= like_threshold``. Implicit data (every event positive) has no
  negative labels, so this task refuses it.
* **ranking**: a user's next (liked) interaction is the positive; its negatives are drawn from a
  candidate generator's own top list for that user at that time (the generator is asked with a
  :class:`~hybridrec.types.UserContext` holding only the history before the target), which is
  what the reranker sees at serving time.

No leakage: an example's history is the user's interactions before its target: rows of the
dataset (sorted by user, then time) that come before the target row. Ties in time are decided
by the dataset's order (``ties="order"``, the splits' rule) or left out entirely
(``ties="exclude"``: only strictly earlier timestamps). Because the dataset is sorted by user
then time, a history is a contiguous range of rows, stored as ``history_start`` and
``history_stop``.

:func:`few_shot` samples n examples (balanced classes where possible), :func:`split_users` a
validation set of users disjoint from training, and :func:`render_examples` turns examples into
``(prefix, suffix, label)`` texts with a :class:`~hybridrec.rerank.prompt.PromptBuilder`.

Example:
    >>> from hybridrec.contract import synthetic_dataset
    >>> ex = rating_examples(synthetic_dataset(), min_history=9)
    >>> len(ex), ex.task, int(ex.label.sum())
    (30, 'rating', 30)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hybridrec.checks import check_float, check_int
from hybridrec.data.dataset import Dataset
from hybridrec.errors import DataError
from hybridrec.rerank.prompt import HistoryEntry, PromptBuilder, PromptCatalogue
from hybridrec.types import UserContext

logger = logging.getLogger(__name__)

__all__ = [
    "Examples",
    "RenderedExample",
    "TASKS",
    "TIES",
    "few_shot",
    "ranking_examples",
    "rating_examples",
    "render_examples",
    "split_users",
]

TASKS = ("rating", "ranking")
TIES = ("order", "exclude")
#: the few-shot sizes of the benchmarks (any positive n works)
FEW_SHOT_SIZES = (16, 64, 256, 1024)


@dataclass(frozen=True, eq=False)
class Examples:
    """Training examples over one dataset, one array entry per example.

    Attributes:
        dataset: the dataset whose rows and codes the arrays refer to.
        task: ``"rating"`` or ``"ranking"``.
        user: user code of each example.
        item: candidate item code of each example.
        label: 1 (liked / the next item) or 0, int8.
        target_row: the row of ``dataset.interactions`` the example predicts (for a ranking
            negative: the row of its positive).
        history_start / history_stop: the history is ``dataset.interactions`` rows
            ``[history_start, history_stop)``, oldest first, all before ``target_row``.
        group: the query of each example: a ranking positive and its negatives share one
            (for the rating task, every example is its own group).
    """

    dataset: Dataset
    task: str
    user: np.ndarray
    item: np.ndarray
    label: np.ndarray
    target_row: np.ndarray
    history_start: np.ndarray
    history_stop: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def __repr__(self) -> str:
        return (
            f"Examples({self.task!r}, n={len(self)}, positives={int(self.label.sum())}, "
            f"users={len(np.unique(self.user))})"
        )

    @property
    def time(self) -> np.ndarray:
        """The target's timestamp of each example."""
        return self.dataset.interactions["timestamp"].to_numpy()[self.target_row]

    def users(self) -> np.ndarray:
        """The distinct user codes, ascending."""
        return np.unique(self.user)

    def subset(self, index: Sequence[int] | np.ndarray) -> Examples:
        """The examples at ``index`` (positions or a boolean mask), in that order."""
        idx = np.asarray(index)
        return Examples(
            self.dataset,
            self.task,
            *(
                getattr(self, name)[idx]
                for name in (
                    "user",
                    "item",
                    "label",
                    "target_row",
                    "history_start",
                    "history_stop",
                    "group",
                )
            ),
        )

    def history_rows(self, i: int) -> pd.DataFrame:
        """The history of example ``i``: its interaction rows, oldest first."""
        return self.dataset.interactions.iloc[self.history_start[i] : self.history_stop[i]]


@dataclass(frozen=True)
class RenderedExample:
    """One example as text: ``prefix + suffix`` is the prompt, ``label`` the answer.

    ``index`` is the example's position in the :class:`Examples` it came from.
    """

    prefix: str
    suffix: str
    label: int
    index: int

    @property
    def text(self) -> str:
        return self.prefix + self.suffix


# ---------------------------------------------------------------------- history ranges
def _as_dataset(data: Dataset | Any) -> Dataset:
    """A dataset, or the training part of a :class:`~hybridrec.data.splits.Split`."""
    if isinstance(data, Dataset):
        return data
    train = getattr(data, "train", None)
    if isinstance(train, Dataset):
        return train
    raise TypeError(f"expected a Dataset or a Split, not {type(data).__name__}")


def _history_ranges(dataset: Dataset, ties: str) -> tuple[np.ndarray, np.ndarray]:
    """Per interaction row: the first row of its user and the end of its history."""
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, not {ties!r}")
    inter = dataset.interactions
    users = inter["user"].to_numpy()
    n = len(users)
    rows = np.arange(n)
    new_user = np.ones(n, bool)
    new_user[1:] = users[1:] != users[:-1]
    start = np.maximum.accumulate(np.where(new_user, rows, 0)) if n else rows
    if ties == "order":
        return start, rows
    ts = inter["timestamp"].to_numpy()
    new_run = new_user.copy()
    new_run[1:] |= ts[1:] != ts[:-1]
    stop = np.maximum.accumulate(np.where(new_run, rows, 0)) if n else rows
    return start, stop


def _check_values(
    min_history: int = 5,
    ties: str = "order",
    negatives_per_positive: int | None = 4,
    n_candidates: int = 20,
    max_targets_per_user: int | None = 1,
    seed: int = 0,
    **flags: Any,
) -> None:
    """The example builders' own checks of their settings (no dataset needed)."""
    check_int("min_history", min_history, minimum=0)
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, not {ties!r}")
    if negatives_per_positive is not None:
        check_int("negatives_per_positive", negatives_per_positive, minimum=1)
    check_int("n_candidates", n_candidates, minimum=1)
    check_int("seed", seed, minimum=0)
    if max_targets_per_user is not None:
        check_int("max_targets_per_user", max_targets_per_user, minimum=1)
    for name in ("liked_only", "anonymous", "positive_in_list"):
        if name in flags and not isinstance(flags[name], bool):
            raise TypeError(f"{name} must be True or False, not {flags[name]!r}")


def sample_param_names(task: str) -> list[str]:
    """The settings (``samples=``) the example builder of ``task`` takes.

    Example:
        >>> sample_param_names("rating")
        ['min_history', 'ties']
    """
    import inspect

    builder = {"rating": rating_examples, "ranking": ranking_examples}[task]
    params = inspect.signature(builder).parameters.items()
    return [n for n, p in params if p.kind is p.KEYWORD_ONLY]


def check_sample_params(task: str, params: Mapping[str, Any]) -> None:
    """Refuse now what the example builder of ``task`` would refuse at fit: unknown keys and
    bad values.

    Example:
        >>> check_sample_params("rating", {"min_history": -5})
        Traceback (most recent call last):
        ...
        ValueError: min_history must be at least 0, not -5
    """
    known = sample_param_names(task)
    unknown = [k for k in params if k not in known]
    if unknown:
        raise ValueError(
            f"samples: unknown key(s) {', '.join(map(repr, unknown))} for the {task} task; "
            f"known: {', '.join(known)}"
        )
    _check_values(**{k: v for k, v in params.items() if k != "users"})


def _check_common(dataset: Dataset, **settings: Any) -> None:
    _check_values(**settings)
    if not dataset.has_timestamps:
        logger.warning(
            "%s has no timestamps: histories follow the file order, not time", dataset.name
        )


def rating_examples(data: Dataset | Any, *, min_history: int = 5, ties: str = "order") -> Examples:
    """The rating task (TALLRec): will the user like the item they rated next?

    Args:
        data: a dataset, or a split (its ``train`` is used).
        min_history: a target needs at least this many earlier interactions.
        ties: ``"order"`` (an interaction at the target's own time counts as earlier when it
            comes first in the dataset's order) or ``"exclude"`` (only strictly earlier
            timestamps).

    Returns:
        One example per rated target, candidate = the rated item, label = rating >=
        ``dataset.like_threshold``, in dataset order.

    Raises:
        DataError: the dataset has no ratings (implicit feedback).

    Example:
        >>> import pandas as pd
        >>> ds = Dataset.from_frames(pd.DataFrame({"user_id": [1, 1, 1],
        ...     "item_id": [10, 11, 12], "rating": [5.0, 2.0, 4.0], "timestamp": [1, 2, 3]}))
        >>> ex = rating_examples(ds, min_history=1)
        >>> ex.item.tolist(), ex.label.tolist(), ex.history_stop.tolist()
        ([1, 2], [0, 1], [1, 2])
    """
    dataset = _as_dataset(data)
    _check_common(dataset, min_history=min_history, ties=ties)
    if not dataset.is_explicit:
        raise DataError(
            f"dataset {dataset.name!r} has no ratings (implicit feedback: every event is "
            f"positive), so the rating task has no negative labels; use ranking_examples",
            field="rating",
        )
    inter = dataset.interactions
    start, stop = _history_ranges(dataset, ties)
    ratings = inter["rating"].to_numpy()
    keep = np.flatnonzero(~np.isnan(ratings) & (stop - start >= min_history))
    label = (ratings[keep] >= dataset.like_threshold).astype(np.int8)
    return Examples(
        dataset,
        "rating",
        user=inter["user"].to_numpy()[keep].astype(np.int64),
        item=inter["item"].to_numpy()[keep].astype(np.int64),
        label=label,
        target_row=keep.astype(np.int64),
        history_start=start[keep].astype(np.int64),
        history_stop=stop[keep].astype(np.int64),
        group=np.arange(len(keep), dtype=np.int64),
    )


def ranking_examples(
    data: Dataset | Any,
    generator: Any,
    *,
    negatives_per_positive: int | None = 4,
    n_candidates: int = 20,
    min_history: int = 5,
    max_targets_per_user: int | None = 1,
    liked_only: bool = True,
    anonymous: bool = True,
    ties: str = "order",
    seed: int = 0,
    users: Sequence[int] | np.ndarray | None = None,
    positive_in_list: bool = False,
) -> Examples:
    """The ranking task: the user's next item against hard negatives from a generator.

    For each chosen target (a liked interaction with at least ``min_history`` earlier ones),
    ``generator`` is asked for its top ``n_candidates`` items given only the history before the
    target; the user's own items (any time: a later interaction is not a negative) are left
    out, and ``negatives_per_positive`` negatives are drawn at random from that list.

    Args:
        data: a dataset, or a split (its ``train`` is used).
        generator: a fitted :class:`~hybridrec.recommender.Recommender` over the same item
            vocabulary (fit it on the same training data).
        negatives_per_positive: negatives drawn for each positive (fewer when the list is
            shorter); None: the whole list.
        n_candidates: how deep the generator's list is (the reranker's serving depth).
        min_history: a target needs at least this many earlier interactions.
        max_targets_per_user: at most this many targets per user, drawn at random; None: all.
        liked_only: only liked interactions are targets (implicit events always are).
        anonymous: ask the generator without the user's id, so that a model with per-user
            parameters fitted on the user's later interactions cannot use them.
        ties: as in :func:`rating_examples`.
        seed: seeds the choice of targets and negatives.
        users: draw targets only from these users (dataset codes); None: every user.
        positive_in_list: keep only the targets that the generator itself ranks within its top
            ``n_candidates`` (the user's other items left out), with the rest of that list as
            negatives: what a reranker over this generator sees at serving time, for fitting
            a fusion of the two. The default draws negatives from the list for any target.

    Returns:
        Per target, the positive (label 1) then its negatives (label 0), sharing ``group``,
        ``target_row`` and history.

    Example:
        >>> import hybridrec as hr
        >>> from hybridrec.contract import synthetic_dataset
        >>> ds = synthetic_dataset()
        >>> ex = ranking_examples(ds, hr.create("popularity").fit(ds), min_history=5)
        >>> len(ex), int(ex.label.sum())
        (160, 32)
    """
    dataset = _as_dataset(data)
    _check_common(
        dataset,
        min_history=min_history,
        ties=ties,
        negatives_per_positive=negatives_per_positive,
        n_candidates=n_candidates,
        max_targets_per_user=max_targets_per_user,
        seed=seed,
        liked_only=liked_only,
        anonymous=anonymous,
        positive_in_list=positive_in_list,
    )
    inter = dataset.interactions
    start, stop = _history_ranges(dataset, ties)
    eligible = stop - start >= min_history
    if liked_only:
        eligible &= dataset.liked_mask
    codes_of_users = users
    users = inter["user"].to_numpy()
    if codes_of_users is not None:
        eligible &= np.isin(users, np.asarray(codes_of_users, dtype=np.int64))
    rows = np.flatnonzero(eligible)
    rng = np.random.default_rng(seed)
    if max_targets_per_user is not None and len(rows):
        shuffled = rows[rng.permutation(len(rows))]
        order = shuffled[np.argsort(users[shuffled], kind="stable")]
        rank = np.arange(len(order)) - np.searchsorted(users[order], users[order], side="left")
        rows = np.sort(order[rank < max_targets_per_user])
    items = inter["item"].to_numpy()
    contexts = []
    for r in rows:
        uid = None if anonymous else dataset.user_ids[users[r]]
        contexts.append(UserContext(uid, dataset.interactions_between(start[r], stop[r])))
    out: dict[str, list[int]] = {k: [] for k in ("user", "item", "label", "row", "group")}
    offsets = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=dataset.n_users))])
    batch, group = 256, -1
    for lo in range(0, len(rows), batch):
        chunk = rows[lo : lo + batch]
        depth = n_candidates + max(
            (int(offsets[users[r] + 1] - offsets[users[r]]) for r in chunk), default=0
        )
        lists = generator.recommend_batch(
            contexts[lo : lo + batch], depth, exclude_seen=True, on_unused="ignore"
        )
        for r, recs in zip(chunk, lists, strict=True):
            own = set(items[offsets[users[r]] : offsets[users[r] + 1]].tolist())
            codes = dataset.item_index([rec.item_id for rec in recs], strict=False)
            target = int(items[r])
            if positive_in_list:
                own.discard(target)
            top = [int(c) for c in codes if c >= 0 and int(c) not in own][:n_candidates]
            if positive_in_list:
                if target not in top:
                    continue
                top.remove(target)
            wanted = len(top) if negatives_per_positive is None else negatives_per_positive
            k = min(wanted, len(top))
            if k < wanted:
                logger.debug("row %d: only %d negatives in the generator's list", r, k)
            negatives = rng.choice(np.asarray(top, dtype=np.int64), size=k, replace=False)
            group += 1
            for item, label in [(target, 1), *((int(c), 0) for c in negatives)]:
                out["user"].append(int(users[r]))
                out["item"].append(item)
                out["label"].append(label)
                out["row"].append(int(r))
                out["group"].append(group)
    row = np.asarray(out["row"], dtype=np.int64)
    return Examples(
        dataset,
        "ranking",
        user=np.asarray(out["user"], dtype=np.int64),
        item=np.asarray(out["item"], dtype=np.int64),
        label=np.asarray(out["label"], dtype=np.int8),
        target_row=row,
        history_start=start[row].astype(np.int64),
        history_stop=stop[row].astype(np.int64),
        group=np.asarray(out["group"], dtype=np.int64),
    )


# ---------------------------------------------------------------------- sampling
def few_shot(examples: Examples, n: int, *, seed: int = 0, balanced: bool = True) -> Examples:
    """``n`` examples drawn at random (seeded), half of each class where possible.

    With ``balanced``, ``n // 2`` negatives and the rest positives are drawn; when a class is
    short, all of it is taken and the other fills the rest. The result is shuffled.

    Raises:
        ValueError: ``n`` is larger than the number of examples.

    Example:
        >>> import pandas as pd
        >>> ds = Dataset.from_frames(pd.DataFrame({"user_id": [1] * 6, "item_id": range(6),
        ...     "rating": [5.0, 1.0, 5.0, 1.0, 5.0, 5.0], "timestamp": range(6)}))
        >>> int(few_shot(rating_examples(ds, min_history=0), 4, seed=1).label.sum())
        2
    """
    check_int("n", n, minimum=1)
    check_int("seed", seed, minimum=0)
    if n > len(examples):
        raise ValueError(f"few_shot: n={n} but only {len(examples)} examples to draw from")
    rng = np.random.default_rng(seed)
    if not balanced:
        return examples.subset(rng.choice(len(examples), size=n, replace=False))
    pos = np.flatnonzero(examples.label == 1)
    neg = np.flatnonzero(examples.label == 0)
    n_neg = min(n // 2, len(neg))
    n_pos = min(n - n_neg, len(pos))
    n_neg = n - n_pos  # fill from the negatives when positives are short
    chosen = np.concatenate(
        [rng.choice(pos, size=n_pos, replace=False), rng.choice(neg, size=n_neg, replace=False)]
    )
    if n_neg != n // 2:
        logger.info("few_shot: %d positives and %d negatives (a class is short)", n_pos, n_neg)
    return examples.subset(chosen[rng.permutation(n)])


def split_users(
    examples: Examples, valid_frac: float = 0.2, *, seed: int = 0
) -> tuple[Examples, Examples]:
    """Train and validation examples of disjoint users (for early stopping).

    A share ``valid_frac`` of the users (at least one, and at least one left for training) is
    drawn with ``seed``; every example of theirs goes to validation.

    Raises:
        ValueError: fewer than two users, or ``valid_frac`` not in (0, 1).

    Example:
        >>> from hybridrec.contract import synthetic_dataset
        >>> train, valid = split_users(rating_examples(synthetic_dataset()), 0.1)
        >>> len(set(train.user) & set(valid.user)), len(valid.users())
        (0, 3)
    """
    check_float("valid_frac", valid_frac)
    check_int("seed", seed, minimum=0)
    if not 0 < valid_frac < 1:
        raise ValueError(f"valid_frac must be in (0, 1), not {valid_frac}")
    users = examples.users()
    if len(users) < 2:
        raise ValueError(f"split_users needs examples of at least 2 users, not {len(users)}")
    n_valid = min(max(1, int(round(valid_frac * len(users)))), len(users) - 1)
    valid_users = np.random.default_rng(seed).permutation(users)[:n_valid]
    in_valid = np.isin(examples.user, valid_users)
    return examples.subset(~in_valid), examples.subset(in_valid)


# ---------------------------------------------------------------------- rendering
def _profile(dataset: Dataset, user: int) -> dict[str, Any]:
    if dataset.users is None:
        return {}
    row = dataset.users.iloc[int(user)]
    return {k: v for k, v in row.items() if k != "user_id" and not _missing(v)}


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays
        return False


def render_examples(
    examples: Examples,
    builder: PromptBuilder,
    catalogue: PromptCatalogue | None = None,
    *,
    leave_out_target: bool = True,
) -> list[RenderedExample]:
    """Each example as ``(prefix, suffix, label)`` text, in order.

    Examples that share a target (a ranking positive and its negatives) share one prefix.

    Args:
        examples: the examples.
        builder: the prompt builder (template, switches, token counter).
        catalogue: item texts and statistics; default
            ``PromptCatalogue.from_dataset(examples.dataset)`` (titles).
        leave_out_target: describe the target's item without the target interaction itself
            (its rating is the label: a mean rating that includes it would leak the answer).

    Example:
        >>> from hybridrec.contract import synthetic_dataset
        >>> ex = rating_examples(synthetic_dataset(), min_history=9)
        >>> first = render_examples(ex, PromptBuilder(lambda t: len(t.split())))[0]
        >>> print(first.suffix)
        Candidate: "Sci-fi 9" [Sci-Fi]
        Will the user like this item? Answer:
    """
    dataset = examples.dataset
    catalogue = catalogue or PromptCatalogue.from_dataset(dataset)
    inter = dataset.interactions
    items = inter["item"].to_numpy()
    ratings = inter["rating"].to_numpy()
    liked = dataset.liked_mask
    out: list[RenderedExample | None] = [None] * len(examples)
    by_target: dict[tuple[int, int, int], list[int]] = {}
    for i in range(len(examples)):
        key = (
            int(examples.target_row[i]),
            int(examples.history_start[i]),
            int(examples.history_stop[i]),
        )
        by_target.setdefault(key, []).append(i)
    for (row, lo, hi), members in by_target.items():
        history = [
            HistoryEntry(
                catalogue.item(items[j]),
                None if np.isnan(ratings[j]) else float(ratings[j]),
                bool(liked[j]),
            )
            # the builder shows at most the last history_items: describe only those
            for j in range(max(lo, hi - builder.config.history_items), hi)
        ]
        candidates = []
        for i in members:
            code = int(examples.item[i])
            own = leave_out_target and code == int(items[row])
            candidates.append(catalogue.item(code, leave_out=float(ratings[row]) if own else None))
        prompt = builder.build(history, candidates, _profile(dataset, examples.user[members[0]]))
        for i, suffix in zip(members, prompt.suffixes, strict=True):
            out[i] = RenderedExample(prompt.prefix, suffix, int(examples.label[i]), i)
    return [r for r in out if r is not None]
