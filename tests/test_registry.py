"""Registry: built-ins, real entry-point plugins (a dist-info on sys.path), and its errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import hybridrec as hr
from hybridrec import registry
from hybridrec.errors import MissingDependencyError
from hybridrec.registry import RegistryError


def _install_fake_plugin(root: Path, dist: str, entries: dict[str, str], modules: dict[str, str]):
    """Write a real (if minimal) installed distribution: dist-info metadata + entry points."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = ["[hybridrec.recommenders]"] + [f"{k} = {v}" for k, v in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source)


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield tmp_path
    registry.refresh()
    for name in [m for m in sys.modules if m.startswith("fakeplug")]:
        del sys.modules[name]


def test_builtins_are_registered() -> None:
    assert {"random", "popularity", "itemknn", "ease"} <= set(hr.available())
    assert registry.entries()["ease"].source == "builtin"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError, match="unknown recommender 'nope'; known: .*popularity"):
        hr.create("nope")


def test_bad_parameters_name_the_recommender() -> None:
    with pytest.raises(TypeError, match="bad parameters for recommender 'itemknn'"):
        hr.create("itemknn", no_such_param=1)


def test_plugin_is_discovered_lazily_and_created(plugin_dir: Path) -> None:
    source = (
        "from hybridrec.baselines.popularity import PopularityRecommender\n"
        "class Mine(PopularityRecommender):\n    name = 'mine'\n"
    )
    _install_fake_plugin(
        plugin_dir, "fakeplug", {"mine": "fakeplug_ok:Mine"}, {"fakeplug_ok": source}
    )
    assert registry.entries()["mine"].source == "plugin:fakeplug"
    assert "fakeplug_ok" not in sys.modules  # listed without importing
    rec = hr.create("mine")
    assert type(rec).__name__ == "Mine"


def test_duplicate_name_is_refused(plugin_dir: Path) -> None:
    _install_fake_plugin(plugin_dir, "fakeplug", {"popularity": "fakeplug_dup:X"}, {})
    with pytest.raises(
        RegistryError, match="'popularity' from plugin fakeplug.*already registered"
    ):
        hr.available()


def test_broken_plugin_raises_naming_it(plugin_dir: Path) -> None:
    _install_fake_plugin(
        plugin_dir,
        "fakeplug",
        {"broken": "fakeplug_broken:X"},
        {"fakeplug_broken": "raise RuntimeError('boom at import')\n"},
    )
    assert "broken" in hr.available()  # listing does not import
    with pytest.raises(RegistryError, match="'broken' \\(plugin:fakeplug.*boom at import"):
        hr.create("broken")


def test_missing_dependency_names_the_package(plugin_dir: Path) -> None:
    _install_fake_plugin(
        plugin_dir,
        "fakeplug",
        {"needy": "fakeplug_needy:X"},
        {"fakeplug_needy": "import surely_not_installed_pkg\n"},
    )
    with pytest.raises(MissingDependencyError, match="surely_not_installed_pkg"):
        hr.create("needy")


def test_missing_attribute_in_plugin(plugin_dir: Path) -> None:
    _install_fake_plugin(
        plugin_dir, "fakeplug", {"typo": "fakeplug_typo:Nope"}, {"fakeplug_typo": "X = 1\n"}
    )
    with pytest.raises(RegistryError, match="'typo'.*AttributeError"):
        hr.create("typo")


def _install_reranker_plugin(root: Path, dist: str, name: str, module: str, source: str) -> None:
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hybridrec.rerankers]\n{name} = {module}:Mine\n")
    (root / f"{module}.py").write_text(source)


def test_reranker_plugin_is_discovered_and_passes_the_contract(plugin_dir: Path) -> None:
    from hybridrec.contract import synthetic_dataset

    source = (
        "from hybridrec.rerank.similarity import SimilarityReranker\n"
        "class Mine(SimilarityReranker):\n    name = 'mine-rr'\n"
    )
    _install_reranker_plugin(plugin_dir, "fakeplug-rr", "mine-rr", "fakeplug_rr", source)
    assert registry.entries("reranker")["mine-rr"].source == "plugin:fakeplug-rr"
    assert "mine-rr" in hr.available_rerankers() and "mine-rr" not in hr.available()
    rr = hr.create_reranker("mine-rr").fit(synthetic_dataset())
    assert rr.rerank("probe-a", ["b1", "a0"])[0].item_id == "a0"


def test_reranker_plugin_clashing_with_a_builtin_is_refused(plugin_dir: Path) -> None:
    source = "class Mine:\n    pass\n"
    _install_reranker_plugin(plugin_dir, "fakeplug-clash", "similarity", "fakeplug_clash", source)
    clash = "reranker name 'similarity' from plugin fakeplug-clash"
    with pytest.raises(RegistryError, match=clash):
        hr.available_rerankers()
