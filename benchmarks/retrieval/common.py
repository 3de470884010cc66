"""Shared helpers of the retrieval benchmarks: loading ml-latest-small and machine notes."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def load_ml_small() -> tuple[Any, str]:
    """ml-latest-small as a Dataset, and how it was loaded (for the report)."""
    import hybridrec as hr

    return hr.load_dataset("ml-latest-small"), "hybridrec.load_dataset('ml-latest-small')"


def machine_note() -> dict[str, Any]:
    """CPU, cores and library versions of this run."""
    import faiss

    from hybridrec.eval.bench import cpu_name, git_commit

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "note": "2 CPU cores shared with other work running at the same time; timings are noisy, "
        "compare numbers within one run only",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
        "gpu": faiss.get_num_gpus() > 0,
        "git_commit": git_commit(),
    }


def command_line() -> str:
    """The command that ran this script, relative to the repository root."""
    from hybridrec.eval.bench import script_command

    return script_command(ROOT)


def write_report(out: Path, result: dict[str, Any], markdown: str) -> None:
    """Write ``results.json`` and ``results.md`` into ``out`` and print the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "results.md").write_text(markdown)
    print(markdown)
