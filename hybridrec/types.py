"""Small typed values that cross module borders: items, interactions, users, recommendations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

ItemId = str
UserId = str


def normalise_id(value: object) -> str:
    """Turn an external id (int, numpy integer, str) into the canonical string form.

    Surrounding whitespace is stripped, as the dataset loaders strip it.

    Example:
        >>> normalise_id(42), normalise_id(" B00005N7P0 ")
        ('42', 'B00005N7P0')
    """
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        raise TypeError(f"not a valid id: {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise TypeError(f"not a valid id: {value!r}")
        return str(int(value))
    try:
        return str(int(value))  # numpy integers and ints
    except (TypeError, ValueError) as err:
        raise TypeError(f"not a valid id: {value!r}") from err


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Item:
    """One catalogue item: its id, a title, the text the models read and free metadata."""

    item_id: ItemId
    title: str = ""
    text: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "item_id", normalise_id(self.item_id))
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))


@dataclass(frozen=True)
class Interaction:
    """A user's rating (or implicit event, rating None) of an item at a Unix time in seconds."""

    item_id: ItemId
    rating: float | None = None
    timestamp: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "item_id", normalise_id(self.item_id))


@dataclass(frozen=True)
class UserContext:
    """Everything known about a user at request time.

    ``user_id`` may be ``None`` for an anonymous user; ``history`` is oldest first;
    ``preference_text`` is the user's own words ("slow-burning sci-fi ...");
    ``profile`` holds demographic or other attributes.

    Example:
        >>> UserContext("7", history=(Interaction("1", 5.0, 964982703),)).history[0].item_id
        '1'
    """

    user_id: UserId | None = None
    history: tuple[Interaction, ...] = ()
    preference_text: str | None = None
    profile: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.user_id is not None:
            object.__setattr__(self, "user_id", normalise_id(self.user_id))
        if isinstance(self.history, str | bytes | Interaction):
            raise TypeError(
                f"history must be a sequence of item ids or Interactions, not {self.history!r} "
                "(a single id is written as a one-element tuple)"
            )
        history = tuple(
            h if isinstance(h, Interaction) else Interaction(h) for h in (self.history or ())
        )
        object.__setattr__(self, "history", history)
        object.__setattr__(self, "profile", _frozen_mapping(self.profile))

    @property
    def history_ids(self) -> list[ItemId]:
        """Item ids of the history, oldest first."""
        return [h.item_id for h in self.history]


@dataclass(frozen=True)
class Recommendation:
    """One recommended item, best first by ``rank`` (1-based), with the stage that produced it.

    ``stage`` names the recommender or stage (``"fallback:popularity"`` when the documented
    cold-start fallback answered); ``notes`` lists what the request carried that was ignored
    (``"preference_text ignored: ease does not read it"``).
    """

    item_id: ItemId
    score: float
    rank: int
    stage: str
    explanation: str | None = None
    notes: tuple[str, ...] = ()
