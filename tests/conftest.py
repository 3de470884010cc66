"""Fixtures shared by the test packages that need tiny language models (rerank, coldstart)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from hybridrec.data.loaders import embedded_path


@pytest.fixture(scope="session")
def titles() -> list[str]:
    """The embedded MovieLens titles, in file order."""
    with gzip.open(embedded_path() / "movies.csv.gz", "rt", encoding="utf-8", newline="") as fh:
        return [row["title"] for row in csv.DictReader(fh)]


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory, titles: list[str]) -> dict[str, Path]:
    """``{"gpt2": folder, "llama": folder}``: tiny random models whose tokenizers are trained
    on the first 3000 titles, built once per session."""
    from hybridrec.models import tiny_gpt2, tiny_llama

    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "gpt2": tiny_gpt2(root / "gpt2", titles[:3000]),
        "llama": tiny_llama(root / "llama", titles[:3000]),
    }
