"""Print the README's table from a ``hybridrec bench`` results folder.

python benchmarks/candidates/summarise.py benchmarks/candidates/results/ml-latest-small
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ("ndcg@10", "hr@10", "recall@20", "recall@50", "recall@100")


def table(folder: Path) -> str:
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    lines = []
    for name, info in results["datasets"].items():
        lines.append(f"{name}: {info['users']} users, {info['items']} items, "
                     f"{info['interactions']} interactions")  # fmt: skip
    lines += ["", "| recommender | " + " | ".join(COLUMNS) + " | fit s |",
              "|---|" + "---:|" * (len(COLUMNS) + 1)]  # fmt: skip
    for row in results["rows"]:
        if row["protocol"] != "full-ranking" or row["status"] != "ok":
            continue
        cells = [f"{row['metrics'][c]['mean']:.4f}" for c in COLUMNS]
        cells.append(f"{row['fit_time_s']:.1f}")
        lines.append(f"| {row['recommender']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(table(Path(arg)), end="\n\n")
