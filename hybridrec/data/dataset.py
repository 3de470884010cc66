"""The in-memory dataset: interactions as integer codes, a catalogue and optional user profiles.

External ids are strings (``"1"``, ``"B00005N7P0"``); inside, users and items are dense integer
codes so that matrices and metrics stay vectorised. Splits keep the vocabularies of the dataset
they came from, so codes mean the same thing in train, valid and test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hybridrec.errors import DataError, UnknownIdError
from hybridrec.types import Interaction, Item, UserContext, normalise_id

logger = logging.getLogger(__name__)

INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest rating a dataset can hold (ratings are stored as float32)."""


def _factorise_ids(values: pd.Series, source: object) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes per row and the distinct ids as normalised strings.

    Raises:
        DataError: a missing or empty id (naming the first row) or a non-integral float id.
    """
    codes, uniques = pd.factorize(values)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise DataError(f"empty id in row {row}", path=source, field=values.name)
    as_str = _as_str_ids(pd.Series(uniques, name=values.name))
    empty = np.flatnonzero(as_str == "")
    if len(empty):
        row = int(np.flatnonzero(codes == empty[0])[0])
        raise DataError(f"empty id in row {row}", path=source, field=values.name)
    # 1 and "1" in one object column are the same id once normalised: merge them
    merged, distinct = pd.factorize(as_str)
    return merged[codes], np.asarray(distinct, dtype=object)


def _as_str_ids(values: pd.Series) -> np.ndarray:
    """Vectorised id normalisation: integers (or integral floats) and strings become str, with
    leading and trailing white space removed (``" u1 "`` is the user ``"u1"``)."""
    if pd.api.types.is_float_dtype(values):
        if values.isna().any() or not np.all(np.mod(values.to_numpy(), 1) == 0):
            raise DataError("ids must be integers or strings", field=values.name)
        values = values.astype(np.int64)
    return values.astype(str).str.strip().to_numpy(dtype=object)


class Dataset:
    """Interactions, catalogue and user profiles of one recommendation dataset.

    Build one with :meth:`from_frames` (or a loader, see :func:`hybridrec.load_dataset`).

    Attributes:
        name: short name of the dataset.
        user_ids / item_ids: arrays of external string ids; the position is the integer code.
        interactions: DataFrame with int32 ``user``, int32 ``item`` codes, float32 ``rating``
            (NaN for implicit feedback) and int64 ``timestamp``, sorted by user then time.
        items: catalogue DataFrame aligned with ``item_ids`` (row i describes item code i).
        users: optional profile DataFrame aligned with ``user_ids``.
        like_threshold: ratings at or above it count as "liked"; implicit events always do.
        skipped_rows: malformed rows a lenient loader skipped (0 otherwise).
        load_notes: counts a loader reported, e.g. repeated metadata lines (empty otherwise).
        has_timestamps: whether ``timestamp`` holds real times. False when the data had none:
            then it holds row numbers (the file order), ``info()`` says ``"timestamps":
            False``, and the time-based splits hold out at random instead (see
            :func:`hybridrec.data.splits.split`).

    Example:
        >>> import pandas as pd
        >>> ds = Dataset.from_frames(pd.DataFrame({"user_id": [1, 1], "item_id": [10, 11],
        ...     "rating": [5.0, 2.0], "timestamp": [1, 2]}))
        >>> ds.n_users, ds.n_items, ds.history("1")
        (1, 2, ['10', '11'])
    """

    skipped_rows: int = 0
    load_notes: Mapping[str, int] = MappingProxyType({})

    def __init__(
        self,
        *,
        name: str,
        interactions: pd.DataFrame,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        items: pd.DataFrame,
        users: pd.DataFrame | None = None,
        like_threshold: float = 4.0,
        rating_scale: tuple[float, float] | None = None,
        has_timestamps: bool = True,
    ) -> None:
        self.name = name
        self.interactions = interactions
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.items = items
        self.users = users
        self.like_threshold = float(like_threshold)
        self.rating_scale = rating_scale
        self.has_timestamps = bool(has_timestamps)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(
        cls,
        interactions: pd.DataFrame,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        *,
        name: str = "custom",
        like_threshold: float = 4.0,
        rating_scale: tuple[float, float] | None = None,
        source: object | None = None,
    ) -> Dataset:
        """Build a dataset from external-id frames.

        Args:
            interactions: columns ``user_id``, ``item_id`` and optionally ``rating`` (NaN or
                absent for implicit feedback; other values must be finite and fit a float32)
                and ``timestamp`` (Unix seconds, or datetimes; absent means row order, and
                ``has_timestamps`` False). Ids are strings or integers; white space around
                them is removed.
            items: catalogue with an ``item_id`` column and any text columns (``title``,
                ``genres``, ``description``, ...). Items that appear only in interactions get
                empty metadata; duplicate item ids are an error.
            users: optional profiles with a ``user_id`` column; duplicates are an error.
            name: short name of the dataset.
            like_threshold: ratings >= this count as liked.
            rating_scale: (min, max) of the rating scale, for information.
            source: file or folder the data came from, named in errors.

        Raises:
            DataError: a missing column, a missing id, duplicate catalogue/user ids, a rating
                that is infinite or too large for a float32, or a timestamp out of range.
        """
        for col in ("user_id", "item_id"):
            if col not in interactions.columns:
                raise DataError(f"missing column {col!r}", path=source, field=col)
        # Factorise first and normalise only the distinct ids: fast on tens of millions of rows.
        user_codes, user_uniques = _factorise_ids(interactions["user_id"], source)
        item_codes, item_uniques = _factorise_ids(interactions["item_id"], source)
        frame = pd.DataFrame(index=interactions.index)
        if "rating" in interactions.columns:
            rating = pd.to_numeric(interactions["rating"], errors="coerce")
            bad = rating.isna() & interactions["rating"].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"rating {interactions['rating'].iloc[row]!r} in row {row} is not a number",
                    path=source,
                    field="rating",
                )
            values = rating.to_numpy(np.float64, na_value=np.nan)
            huge = np.abs(np.nan_to_num(values, nan=0.0)) > FLOAT32_MAX  # inf too
            if huge.any():
                row = int(np.flatnonzero(huge)[0])
                raise DataError(
                    f"rating {interactions['rating'].iloc[row]!r} in row {row} is infinite or "
                    f"too large (ratings are stored as float32, at most {FLOAT32_MAX:.4g})",
                    path=source,
                    field="rating",
                )
            frame["rating"] = values.astype(np.float32)
        else:
            frame["rating"] = np.float32(np.nan)
        if "timestamp" in interactions.columns:
            ts = interactions["timestamp"]
            if pd.api.types.is_datetime64_any_dtype(ts):
                ts = ts.astype("int64") // 10**9
            ts = pd.to_numeric(ts, errors="coerce")
            if ts.isna().any():
                row = int(np.flatnonzero(ts.isna().to_numpy())[0])
                raise DataError(f"bad timestamp in row {row}", path=source, field="timestamp")
            if pd.api.types.is_float_dtype(ts):
                out = ~(np.abs(ts.to_numpy(np.float64)) < 2.0**63)  # inf and NaN too
                if out.any():
                    row = int(np.flatnonzero(out)[0])
                    raise DataError(
                        f"timestamp {interactions['timestamp'].iloc[row]!r} in row {row} is out "
                        f"of range (64-bit integer seconds)",
                        path=source,
                        field="timestamp",
                    )
            frame["timestamp"] = ts.astype(np.int64).to_numpy()
            has_timestamps = True
        else:
            frame["timestamp"] = np.arange(len(frame), dtype=np.int64)
            has_timestamps = False

        # Catalogue: every item of the catalogue plus every item rated, in a stable order.
        if items is None:
            items = pd.DataFrame({"item_id": item_uniques})
        elif "item_id" not in items.columns:
            raise DataError("catalogue has no 'item_id' column", path=source, field="item_id")
        items = items.copy()
        items["item_id"] = _as_str_ids(items["item_id"])
        dup = items["item_id"].duplicated()
        if dup.any():
            shown = ", ".join(map(repr, items["item_id"][dup].unique()[:5]))
            raise DataError(f"duplicate item ids in the catalogue: {shown}", path=source)
        missing = pd.Index(item_uniques).difference(pd.Index(items["item_id"]), sort=False)
        if len(missing):
            logger.info(
                "%d rated items have no catalogue entry; added with empty text", len(missing)
            )
            items = pd.concat([items, pd.DataFrame({"item_id": np.asarray(missing, dtype=object)})])
        items = items.reset_index(drop=True)
        item_ids = items["item_id"].to_numpy(dtype=object)

        user_ids = np.asarray(sorted(user_uniques, key=_id_sort_key), dtype=object)
        if users is not None:
            if "user_id" not in users.columns:
                raise DataError("user profiles have no 'user_id' column", path=source)
            users = users.copy()
            users["user_id"] = _as_str_ids(users["user_id"])
            if users["user_id"].duplicated().any():
                shown = ", ".join(map(repr, users["user_id"][users["user_id"].duplicated()][:5]))
                raise DataError(f"duplicate user ids in the profiles: {shown}", path=source)
            extra = pd.Index(users["user_id"]).difference(pd.Index(user_ids))
            extra_ids = np.asarray(sorted(extra, key=_id_sort_key), dtype=object)
            user_ids = np.concatenate([user_ids, extra_ids])
            users = users.set_index("user_id").reindex(user_ids).reset_index()

        codes = pd.DataFrame(
            {
                "user": pd.Index(user_ids).get_indexer(user_uniques)[user_codes].astype(np.int32),
                "item": pd.Index(item_ids).get_indexer(item_uniques)[item_codes].astype(np.int32),
                "rating": frame["rating"].to_numpy(np.float32),
                "timestamp": frame["timestamp"].to_numpy(np.int64),
            }
        )
        dup = codes.duplicated(["user", "item"], keep="last")
        if dup.any():
            logger.warning(
                "%s: %d repeated (user, item) interactions; the latest of each is kept",
                source or name,
                int(dup.sum()),
            )
        codes = _sort_by_user_time(codes)
        codes = codes[~codes.duplicated(["user", "item"], keep="last")].reset_index(drop=True)
        return cls(
            name=name,
            interactions=codes,
            user_ids=user_ids,
            item_ids=item_ids,
            items=items,
            users=users,
            like_threshold=like_threshold,
            rating_scale=rating_scale,
            has_timestamps=has_timestamps,
        )

    def with_interactions(self, interactions: pd.DataFrame, name: str | None = None) -> Dataset:
        """A dataset with the same vocabularies, catalogue and profiles but other interactions."""
        return Dataset(
            name=name or self.name,
            interactions=_sort_by_user_time(interactions).reset_index(drop=True),
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            items=self.items,
            users=self.users,
            like_threshold=self.like_threshold,
            rating_scale=self.rating_scale,
            has_timestamps=self.has_timestamps,
        )

    def k_core(self, k: int) -> Dataset:
        """The ``k``-core: users and items with fewer than ``k`` interactions dropped, again and
        again until every user and every item kept has at least ``k``.

        A new dataset with its own (smaller) vocabularies: the kept users and items, in their
        order here, with their catalogue rows (item text) and profiles. Its name gets the suffix
        ``-{k}core``; ``skipped_rows`` and ``load_notes`` (how the data was read) carry over.
        ``k=1`` keeps every user and item with an interaction.

        Args:
            k: the least number of interactions per user and per item (an integer >= 1).

        Raises:
            ValueError: ``k`` is not an integer >= 1, or nothing is left at that ``k``.

        Example:
            >>> import hybridrec as hr
            >>> hr.load_dataset("ml-latest-small").k_core(5)
            Dataset('ml-latest-small-5core', users=610, items=3650, interactions=90274)
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        k = int(k)
        users = self.interactions["user"].to_numpy()
        items = self.interactions["item"].to_numpy()
        keep = np.ones(len(users), dtype=bool)
        while True:  # each pass only removes rows, so this ends
            user_counts = np.bincount(users[keep], minlength=self.n_users)
            item_counts = np.bincount(items[keep], minlength=self.n_items)
            drop = keep & ((user_counts[users] < k) | (item_counts[items] < k))
            if not drop.any():
                break
            keep &= ~drop
        if not keep.any():
            raise ValueError(f"the {k}-core of {self.name!r} is empty: no interactions left")
        kept_users = np.flatnonzero(np.bincount(users[keep], minlength=self.n_users))
        kept_items = np.flatnonzero(np.bincount(items[keep], minlength=self.n_items))
        user_map = np.full(self.n_users, -1, dtype=np.int32)
        user_map[kept_users] = np.arange(len(kept_users), dtype=np.int32)
        item_map = np.full(self.n_items, -1, dtype=np.int32)
        item_map[kept_items] = np.arange(len(kept_items), dtype=np.int32)
        inter = self.interactions[keep].copy()
        profiles = None if self.users is None else self.users.iloc[kept_users]
        inter["user"] = user_map[inter["user"].to_numpy()]
        inter["item"] = item_map[inter["item"].to_numpy()]
        logger.info(
            "%s: %d-core keeps %d of %d users, %d of %d items, %d of %d interactions",
            self.name, k, len(kept_users), self.n_users, len(kept_items), self.n_items,
            len(inter), self.n_interactions,
        )  # fmt: skip
        core = Dataset(
            name=f"{self.name}-{k}core",
            interactions=_sort_by_user_time(inter).reset_index(drop=True),
            user_ids=self.user_ids[kept_users],
            item_ids=self.item_ids[kept_items],
            items=self.items.iloc[kept_items].reset_index(drop=True),
            users=None if profiles is None else profiles.reset_index(drop=True),
            like_threshold=self.like_threshold,
            rating_scale=self.rating_scale,
            has_timestamps=self.has_timestamps,
        )
        core.skipped_rows, core.load_notes = self.skipped_rows, self.load_notes  # how it was read
        return core

    # ------------------------------------------------------------------ sizes and lookups
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    @property
    def is_explicit(self) -> bool:
        """Whether the interactions carry ratings."""
        return bool(self.interactions["rating"].notna().any())

    @cached_property
    def _user_lookup(self) -> pd.Index:
        return pd.Index(self.user_ids)

    @cached_property
    def _item_lookup(self) -> pd.Index:
        return pd.Index(self.item_ids)

    def user_index(self, user_id: object) -> int:
        """Integer code of an external user id; raises :class:`UnknownIdError`."""
        uid = normalise_id(user_id)
        pos = self._user_lookup.get_indexer([uid])[0]
        if pos < 0:
            raise UnknownIdError("user", [uid])
        return int(pos)

    def item_index(self, item_ids: Iterable[object], *, strict: bool = True) -> np.ndarray:
        """Integer codes of external item ids (-1 for unknown ids when ``strict`` is False)."""
        ids = [normalise_id(i) for i in item_ids]
        pos = self._item_lookup.get_indexer(ids) if ids else np.empty(0, dtype=np.int64)
        if strict and (pos < 0).any():
            raise UnknownIdError("item", [i for i, p in zip(ids, pos, strict=True) if p < 0])
        return pos.astype(np.int64)

    def has_user(self, user_id: object) -> bool:
        return self._user_lookup.get_indexer([normalise_id(user_id)])[0] >= 0

    # ------------------------------------------------------------------ derived views
    @property
    def liked_mask(self) -> np.ndarray:
        """Boolean mask over interactions: rating >= like_threshold, or any implicit event."""
        r = self.interactions["rating"].to_numpy()
        return np.isnan(r) | (r >= self.like_threshold)

    def matrix(self, values: str = "binary") -> sp.csr_matrix:
        """User-by-item CSR matrix of the interactions.

        Args:
            values: ``"binary"`` (1 per interaction), ``"liked"`` (1 per liked interaction) or
                ``"rating"`` (the rating; 1 for implicit events).
        """
        inter = self.interactions
        rows, cols = inter["user"].to_numpy(), inter["item"].to_numpy()
        if values == "binary":
            data = np.ones(len(inter), dtype=np.float32)
        elif values == "liked":
            mask = self.liked_mask
            rows, cols = rows[mask], cols[mask]
            data = np.ones(len(rows), dtype=np.float32)
        elif values == "rating":
            data = np.nan_to_num(inter["rating"].to_numpy(np.float32), nan=1.0)
        else:
            raise ValueError(f"values must be 'binary', 'liked' or 'rating', not {values!r}")
        return sp.csr_matrix((data, (rows, cols)), shape=(self.n_users, self.n_items))

    @cached_property
    def _user_offsets(self) -> np.ndarray:
        counts = np.bincount(self.interactions["user"].to_numpy(), minlength=self.n_users)
        return np.concatenate([[0], np.cumsum(counts)])

    def user_items(self, user: int) -> np.ndarray:
        """Item codes of a user's interactions (by code), oldest first."""
        start, end = self._user_offsets[user], self._user_offsets[user + 1]
        return self.interactions["item"].to_numpy()[start:end]

    def user_rows(self, user: int) -> pd.DataFrame:
        """The interaction rows of a user (by code), oldest first."""
        start, end = self._user_offsets[user], self._user_offsets[user + 1]
        return self.interactions.iloc[start:end]

    def history(self, user_id: object) -> list[str]:
        """External item ids of a user's interactions, oldest first."""
        return [str(i) for i in self.item_ids[self.user_items(self.user_index(user_id))]]

    def interactions_between(self, start: int, stop: int) -> tuple[Interaction, ...]:
        """Rows ``[start, stop)`` of :attr:`interactions` as :class:`Interaction` records."""
        inter = self.interactions.iloc[start:stop]
        return tuple(
            Interaction(self.item_ids[i], None if np.isnan(r) else float(r), int(t))
            for i, r, t in zip(
                inter["item"].to_numpy(), inter["rating"].to_numpy(np.float64),
                inter["timestamp"].to_numpy(), strict=True,
            )
        )  # fmt: skip

    def user_context(self, user_id: object, *, preference_text: str | None = None) -> UserContext:
        """The :class:`UserContext` of a known user: their history here and their profile."""
        code = self.user_index(user_id)
        history = self.interactions_between(self._user_offsets[code], self._user_offsets[code + 1])
        profile: dict[str, Any] = {}
        if self.users is not None:
            profile = {
                k: v for k, v in self.users.iloc[code].items() if k != "user_id" and pd.notna(v)
            }
        return UserContext(self.user_ids[code], history, preference_text, profile)

    def item_popularity(self) -> np.ndarray:
        """Number of interactions per item code."""
        return np.bincount(self.interactions["item"].to_numpy(), minlength=self.n_items)

    def active_users(self) -> np.ndarray:
        """Codes of users with at least one interaction, ascending."""
        return np.flatnonzero(np.diff(self._user_offsets) > 0)

    def item(self, item_id: object, builder: Any | None = None) -> Item:
        """The catalogue entry of an item as an :class:`Item`.

        Its ``text`` is what the models read (:meth:`item_texts` with the same ``builder``),
        so a reranker given this ``Item`` reads what the retrieval stage embeds.
        """
        from hybridrec.data.text import ItemTextBuilder

        code = int(self.item_index([item_id])[0])
        row = self.items.iloc[code]
        title = row.get("title", "")
        meta = {k: v for k, v in row.items() if k not in ("item_id", "title") and _present(v)}
        text = (builder or ItemTextBuilder()).build(self.items.iloc[[code]])[0]
        return Item(self.item_ids[code], "" if not _present(title) else str(title), text, meta)

    def item_texts(self, builder: Any | None = None) -> list[str]:
        """The text the models read for every item code (see :class:`ItemTextBuilder`)."""
        from hybridrec.data.text import ItemTextBuilder

        return (builder or ItemTextBuilder()).build(self.items)

    def info(self) -> dict[str, Any]:
        """Summary statistics (the keys of ``hybridrec data info --json``)."""
        n_inter = self.n_interactions
        ratings = self.interactions["rating"]
        hist: dict[str, int] = {}
        if self.is_explicit:
            counts = ratings.dropna().value_counts().sort_index()
            hist = {f"{float(k):g}": int(v) for k, v in counts.items()}
        ts = self.interactions["timestamp"]
        timed = bool(n_inter) and self.has_timestamps
        return {
            "name": self.name,
            "users": self.n_users,
            "active_users": int(len(self.active_users())),
            "items": self.n_items,
            "rated_items": int((self.item_popularity() > 0).sum()),
            "interactions": n_inter,
            "density": n_inter / max(1, self.n_users * self.n_items),
            "explicit": self.is_explicit,
            "like_threshold": self.like_threshold,
            "liked_share": float(self.liked_mask.mean()) if n_inter else 0.0,
            "rating_histogram": hist,
            "timestamps": self.has_timestamps,
            "first_timestamp": int(ts.min()) if timed else None,
            "last_timestamp": int(ts.max()) if timed else None,
            "item_columns": [c for c in self.items.columns if c != "item_id"],
            "user_profile_columns": []
            if self.users is None
            else [c for c in self.users.columns if c != "user_id"],
        }

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"interactions={self.n_interactions})"
        )


def _present(value: object) -> bool:
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    if isinstance(value, (str, Sequence, np.ndarray)) and len(value) == 0:
        return False
    return True


def _id_sort_key(value: str) -> tuple[int, int | str]:
    """Numeric ids (ASCII digits only) in numeric order, then the others alphabetically.

    Example:
        >>> sorted(["10", "9", "b", "\u00b2", "a"], key=_id_sort_key)
        ['9', '10', 'a', 'b', '\u00b2']
    """
    # str.isdigit is True for "²" and other digits int() refuses; isdecimal is True for
    # non-ASCII decimal digits int() accepts but that are not ids in numeric order
    return (0, int(value)) if value.isascii() and value.isdecimal() else (1, value)


def _sort_by_user_time(codes: pd.DataFrame) -> pd.DataFrame:
    """Sort by user, then time; ties keep input order (stable), so splits are deterministic."""
    order = np.lexsort((codes["timestamp"].to_numpy(), codes["user"].to_numpy()))
    return codes.iloc[order]
