"""Mean and spread over seeds of `hybridrec bench` results: one Markdown table per dataset.

Usage:
    python benchmarks/sequential/summarise.py RESULTS.json [RESULTS.json ...] --out summary.md

For each dataset and recommender: the mean over seeds of NDCG@10, HR@10, Recall@20/50/100 and
fit time, with the sample standard deviation and the min-max range over seeds (the baselines are
deterministic, so their spread is zero).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

METRICS = ("ndcg@10", "hr@10", "recall@20", "recall@50", "recall@100")


def _cell(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    sd = statistics.stdev(values)
    lo, hi = min(values), max(values)
    return f"{mean:.{digits}f} ± {sd:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def summarise(paths: list[Path]) -> str:
    """The Markdown summary of the given ``results.json`` files."""
    table: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(dict))
    seeds: dict[tuple[str, str], list[int]] = defaultdict(list)
    for path in paths:
        results = json.loads(path.read_text())
        for row in results["rows"]:
            if row.get("status") != "ok" or row.get("protocol") != "full-ranking":
                continue
            dataset, rec = row["dataset"], row["recommender"]
            seeds[(dataset, rec)].append(row["seed"])
            cells = table[dataset][rec]
            for m in METRICS:
                if m in row["metrics"]:
                    cells.setdefault(m, []).append(row["metrics"][m]["mean"])
            cells.setdefault("fit s", []).append(row["fit_time_s"])
    lines = [
        "# sasrec beside the baselines: mean over seeds",
        "",
        "Full ranking, leave-one-out by time (the harness's `full-ranking` protocol), all users.",
        "Cells: mean ± sample standard deviation [min, max] over the seeds listed.",
        "",
    ]
    for dataset, recs in table.items():
        lines += [f"## {dataset}", ""]
        header = ["recommender", "seeds", *METRICS, "fit s"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for rec, cells in recs.items():
            row = [rec, ",".join(map(str, seeds[(dataset, rec)]))]
            row += [_cell(cells[m], 4) if m in cells else "n/a" for m in METRICS]
            row.append(_cell(cells["fit s"], 0))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text(summarise(args.results))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
