"""Saving and loading fitted models: the persistence half of the ``Recommender`` interface.

A saved model is a folder: ``manifest.json`` (recommender name, parameters, the catalogue it was
fitted on, library versions and the sha256 of every file) and ``state.npz`` (vocabularies,
seen items, popularity, item titles and the model's own arrays; no pickle), plus whatever a
subclass writes in ``_save_extra`` (an index, model weights). Loading checks every checksum and
refuses what does not match (see :mod:`hybridrec.persistence`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from hybridrec.data.dataset import Dataset
from hybridrec.errors import ModelFileError
from hybridrec.persistence import (
    atomic_directory,
    library_versions,
    load_arrays,
    read_manifest,
    reading,
    save_arrays,
    write_manifest,
)
from hybridrec.types import normalise_id

STATE_FILE = "state.npz"


class SavedModel:
    """Mixin of :class:`~hybridrec.recommender.Recommender`: the catalogue a model was fitted
    on, ``save`` and ``load``. Subclasses add ``_state`` / ``_load_state`` (arrays) and
    optionally ``_save_extra`` / ``_load_extra`` (other files) and ``_extra_manifest``."""

    name: str = ""
    item_ids_: Any
    user_ids_: Any
    seen_: Any
    popularity_: Any
    catalogue_name_: str | None
    item_titles_: Any

    @property
    def catalogue(self) -> dict[str, Any]:
        """Which catalogue the model was fitted on: dataset name, item count, item-id checksum."""
        self._check_fitted()
        return {
            "name": self.catalogue_name_,
            "n_items": len(self.item_ids_),
            "items_sha256": item_ids_checksum(self.item_ids_),
        }

    def check_catalogue(self, dataset: Dataset) -> None:
        """Refuse a dataset whose catalogue (item ids, in order) is not the one fitted on.

        Raises:
            ModelFileError: the item ids differ (the model's codes would name other items).
        """
        mine = self.catalogue
        if item_ids_checksum(dataset.item_ids) != mine["items_sha256"]:
            raise ModelFileError(
                f"the model was fitted on the catalogue of {mine['name']!r} ({mine['n_items']} "
                f"items), not on that of {dataset.name!r} ({dataset.n_items} items, other item "
                "ids); give the dataset it was fitted on, or leave the dataset out to use the "
                "titles saved with the model"
            )

    def item_title(self, item_id: str) -> str:
        """The title saved with the model for an item ("" when unknown or untitled)."""
        if self.item_titles_ is None:
            return ""
        code = self._item_code(normalise_id(item_id))  # type: ignore[attr-defined]
        return "" if code < 0 else str(self.item_titles_[code])


    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (besides vocabularies and seen items, which the base saves)."""
        return {}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:  # noqa: B027 - optional hook
        """Restore what ``_state`` returned."""

    def _extra_manifest(self) -> dict[str, Any]:
        return {}

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Save to a folder (atomically): ``manifest.json`` plus ``state.npz`` (no pickle).

        The folder may be new or empty; a folder holding a saved model is replaced only with
        ``overwrite=True``. A file, or a non-empty folder that holds no saved model, is never
        replaced (see :func:`hybridrec.persistence.check_output_dir`). Two processes saving to
        the same folder at once: one saves, the other gets :class:`OutputPathError`.

        Raises:
            OutputPathError: the path must not be written (the message says why and what to
                do), or another process is saving there.
            NotFittedError: the recommender is not fitted.

        Example:
            >>> # rec.save("models/pop")                  # a new folder
            >>> # rec.save("models/pop", overwrite=True)  # replace the model saved there
        """
        self._check_fitted()
        assert self.seen_ is not None and self.popularity_ is not None
        path = Path(path)
        arrays = {
            "item_ids": self.item_ids_.astype(str),
            "user_ids": self.user_ids_.astype(str),
            "seen_indptr": self.seen_.indptr,
            "seen_indices": self.seen_.indices,
            "popularity": self.popularity_,
            "item_titles": np.asarray(
                self.item_titles_ if self.item_titles_ is not None else [""] * len(self.item_ids_),
                dtype=str,
            ),
        }
        own = self._state()
        clash = set(own) & set(arrays)
        if clash:
            raise ValueError(f"state keys {sorted(clash)} are reserved")
        arrays.update({f"model.{k}": v for k, v in own.items()})
        with atomic_directory(path, overwrite=overwrite) as tmp:
            save_arrays(tmp / STATE_FILE, arrays)
            self._save_extra(tmp)
            write_manifest(
                tmp,
                {
                    "recommender": self.name,
                    "class": f"{type(self).__module__}:{type(self).__qualname__}",
                    "params": _jsonable(self.get_params()),
                    "n_items": len(self.item_ids_),
                    "n_users": len(self.user_ids_),
                    "catalogue": self.catalogue,
                    "versions": library_versions(),
                    **self._extra_manifest(),
                },
            )
        return path

    def _save_extra(self, folder: Path) -> None:  # noqa: B027 - optional hook
        """Hook for recommenders that save more than arrays (indexes, model weights)."""

    def _load_extra(self, folder: Path, manifest: dict[str, Any]) -> None:  # noqa: B027
        """Counterpart of ``_save_extra``."""

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Load a recommender saved with :meth:`save`, checking manifest and checksums.

        The folder must match its manifest exactly: ``state.npz`` and every other file (the
        files ``_load_extra`` reads included) must be listed with a matching checksum, and no
        unlisted file may be present (see :func:`hybridrec.persistence.read_manifest`). A
        manifest of a newer format version is refused; an older one loads with a warning.

        Raises:
            ModelFileError: missing, corrupted, changed after saving, of a newer format, or
                saved by another recommender class.
        """
        path = Path(path)
        with reading(path):  # a concurrent save waits: every file comes from one version
            return cls._load_from(path)

    @classmethod
    def _load_from(cls, path: Path) -> Any:
        manifest = read_manifest(path, required=(STATE_FILE,))
        if cls.name and manifest.get("recommender") != cls.name:
            raise ModelFileError(
                f"{path}: holds a {manifest.get('recommender')!r} recommender, not {cls.name!r}"
            )
        try:
            obj = cls(**manifest.get("params", {}))
        except TypeError as err:
            raise ModelFileError(
                f"{path}: saved parameters do not fit {cls.__name__}: {err}"
            ) from err
        arrays = load_arrays(path / STATE_FILE)
        try:
            obj._user_lookup = obj._item_lookup = None
            obj.item_ids_ = arrays["item_ids"].astype(object)
            obj.user_ids_ = arrays["user_ids"].astype(object)
            n_users, n_items = len(obj.user_ids_), len(obj.item_ids_)
            indices = arrays["seen_indices"]
            obj.seen_ = sp.csr_matrix(
                (np.ones(len(indices), np.float32), indices, arrays["seen_indptr"]),
                shape=(n_users, n_items),
            )
            obj.popularity_ = arrays["popularity"]
            catalogue = manifest.get("catalogue") or {}
            obj.catalogue_name_ = catalogue.get("name")
            if "item_titles" in arrays:  # folders saved before titles were kept have none
                obj.item_titles_ = arrays["item_titles"].astype(object)
                if len(obj.item_titles_) != n_items:
                    raise ValueError("item titles do not match the catalogue")
            want = catalogue.get("items_sha256")
            if want is not None and want != item_ids_checksum(obj.item_ids_):
                raise ValueError("the manifest's catalogue checksum does not match the item ids")
            obj._load_state({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        except (KeyError, ValueError) as err:
            raise ModelFileError(f"{path}: incomplete or inconsistent state ({err})") from err
        obj._load_extra(path, manifest)
        return obj


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(params)
    except TypeError as err:
        raise TypeError(f"parameters must be JSON-serialisable to save: {err}") from err
    return params


def item_ids_checksum(item_ids: Sequence[object]) -> str:
    """sha256 of a catalogue's item ids in code order (what a saved model records).

    Example:
        >>> item_ids_checksum(["1", "2"])[:12]
        '7fe63d4f5cdb'
    """
    import hashlib

    digest = hashlib.sha256()
    for item in item_ids:
        digest.update(str(item).encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()
