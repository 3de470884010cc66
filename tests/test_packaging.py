"""The wheel: built offline from the sources, it ships every module, the prompt templates (from
the top-level prompts/ folder, as ``hybridrec/prompts/``), the embedded dataset and ``py.typed``,
and an installed copy loads its templates with importlib.resources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "hybridrec", "prompts")
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the build inputs (so no build/ folder lands in the repo)."""
    pytest.importorskip("setuptools")
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=JUNK)
        else:
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("hybridrec-*.whl")
    return built


def test_wheel_ships_templates_dataset_and_modules(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    prompts = [p for p in _files(REPO / "prompts")]
    assert any(p.suffix == ".txt" for p in prompts)
    for path in prompts:
        assert f"hybridrec/prompts/{path.relative_to(REPO / 'prompts').as_posix()}" in names, path
    dataset = _files(REPO / "hybridrec" / "datasets")
    assert any(p.name == "ratings.csv.gz" for p in dataset)
    for path in [*dataset, *(REPO / "hybridrec").rglob("*.py"), REPO / "hybridrec" / "py.typed"]:
        if "__pycache__" in path.parts:
            continue
        assert path.relative_to(REPO).as_posix() in names, path
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "prompts/"))]


def test_wheel_metadata_requires_pydantic(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read("hybridrec-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: pydantic>=2" in meta


def test_installed_wheel_loads_its_templates(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--disable-pip-version-check", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    code = (
        "import json, hybridrec.templates as t\n"
        "print(json.dumps([t.__file__, t.available_prompts(),"
        " t.render('cold_start_preference', genres='drama', tags='')]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    module, names, text = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(module).is_relative_to(target)  # the installed copy, not the repository
    assert "cold_start_preference" in names and text == "I enjoy drama."
