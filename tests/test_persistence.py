"""Saved models: atomic folders, manifests, checksums and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import hybridrec as hr
from hybridrec.baselines.itemknn import ItemKNNRecommender
from hybridrec.contract import synthetic_dataset
from hybridrec.persistence import atomic_directory, load_arrays, read_manifest, save_arrays


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return hr.create("popularity").fit(synthetic_dataset()).save(tmp_path / "model")


def test_manifest_records_what_loading_checks(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["recommender"] == "popularity"
    assert manifest["format"] == "hybridrec-model"
    assert "state.npz" in manifest["files"]
    assert manifest["versions"]["numpy"]
    assert manifest["params"] == {"liked_only": False}


def test_missing_folder_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(hr.ModelFileError, match="no such model folder"):
        hr.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(hr.ModelFileError, match="no manifest.json"):
        hr.load(tmp_path / "empty")


def test_corrupted_manifest(saved: Path) -> None:
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(hr.ModelFileError, match="corrupted manifest"):
        hr.load(saved)


def test_newer_format_is_refused(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["format_version"] = 99
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(hr.ModelFileError, match="newer than this hybridrec"):
        hr.load(saved)


def test_missing_state_file(saved: Path) -> None:
    (saved / "state.npz").unlink()
    with pytest.raises(hr.ModelFileError, match="state.npz listed in the manifest is missing"):
        hr.load(saved)


def test_loading_with_the_wrong_class(saved: Path) -> None:
    with pytest.raises(hr.ModelFileError, match="holds a 'popularity' recommender, not 'itemknn'"):
        ItemKNNRecommender.load(saved)


def test_pickled_arrays_are_never_loaded(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="dtype object"):
        save_arrays(tmp_path / "a.npz", {"x": np.array([{"evil": 1}], dtype=object)})
    np.savez(tmp_path / "b.npz", x=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(hr.ModelFileError, match="cannot read arrays"):
        load_arrays(tmp_path / "b.npz")


def test_failed_save_keeps_the_previous_model(saved: Path) -> None:
    before = read_manifest(saved)
    with pytest.raises(RuntimeError), atomic_directory(saved) as tmp:
        (tmp / "half-written").write_text("x")
        raise RuntimeError("crash mid-save")
    assert read_manifest(saved) == before
    assert not list(saved.parent.glob(".model.tmp-*"))


def test_save_over_an_existing_model_replaces_it(saved: Path) -> None:
    rec = hr.create("itemknn").fit(synthetic_dataset())
    rec.save(saved)
    assert type(hr.load(saved)).__name__ == "ItemKNNRecommender"


def test_unfitted_save_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(hr.NotFittedError):
        hr.create("ease").save(tmp_path / "x")
    with pytest.raises(hr.NotFittedError):
        hr.create("ease").recommend("1")
