"""One helper decides every cache path: ``$HYBRIDREC_CACHE`` is the root for datasets and
embeddings alike."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from hybridrec import paths
from hybridrec.data import download
from hybridrec.data.download import default_cache_dir
from hybridrec.paths import CACHE_KINDS, cache_dir, cache_root
from hybridrec.retrieval.embedder import EmbeddingCache


def test_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path / "root"))
    assert cache_root() == tmp_path / "root"
    assert cache_dir("datasets") == tmp_path / "root" / "datasets"
    assert not (tmp_path / "root").exists()  # computing a path creates nothing


def test_default_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYBRIDREC_CACHE", raising=False)
    assert cache_root() == Path.home() / ".cache" / "hybridrec"
    monkeypatch.setenv("HYBRIDREC_CACHE", "")  # empty counts as unset
    assert cache_root() == Path.home() / ".cache" / "hybridrec"


def test_tilde_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDREC_CACHE", "~/elsewhere")
    assert cache_root() == Path.home() / "elsewhere"


@pytest.mark.parametrize("kind", CACHE_KINDS)
def test_every_kind_is_a_folder_of_the_root(
    kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path))
    assert cache_dir(kind) == tmp_path / kind


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown cache kind 'weights'; known: datasets"):
        cache_dir("weights")


def test_datasets_and_embeddings_share_the_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "datasets"
    assert EmbeddingCache("some-model").folder.parent == tmp_path / "embeddings"
    monkeypatch.delenv("HYBRIDREC_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "hybridrec" / "datasets"
    assert EmbeddingCache("m").folder.parent == Path.home() / ".cache" / "hybridrec" / "embeddings"


@pytest.mark.parametrize("value", [None, "/somewhere/else", "~/x"])
def test_download_doctests_pass_whatever_the_environment(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("HYBRIDREC_CACHE", raising=False)
    else:
        monkeypatch.setenv("HYBRIDREC_CACHE", value)
    for module in (download, paths):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, module.__name__
