"""Markdown tables from ``results/results.json`` of ``bench_coldstart.py``.

python benchmarks/coldstart/report.py benchmarks/coldstart/results > results.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = ("ndcg@1", "ndcg@5", "ndcg@10", "mrr")


def cell(metric: dict | None) -> str:
    if metric is None:
        return "-"
    text = f"{metric['mean']:.4f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"
    vs = metric.get("vs_popularity")
    if vs and vs.get("p_ttest") is not None and vs["p_ttest"] < 0.05:
        text += " *" if vs.get("diff", vs.get("mean_diff", 0.0)) > 0 else " (-)*"
    return text


def main(folder: Path) -> str:
    results = json.loads((folder / "results.json").read_text())
    lines = [f"Command: `{results['command']}`", ""]
    for proto, rows in results["rows"].items():
        info = results["protocols"].get(proto, {})
        lines += [f"### {proto} ({info.get('users', '?')} users)", ""]
        metrics = [m for m in METRICS if any(m in r["metrics"] for r in rows.values())]
        lines.append("| recommender | " + " | ".join(metrics) + " | fallback share |")
        lines.append("|---" * (len(metrics) + 2) + "|")
        for label, row in rows.items():
            cells = [cell(row["metrics"].get(m)) for m in metrics]
            share = f"{row['fallback_share']:.2f}"
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {share} |")
        lines.append("")
    lines += ["### Language-model extras", "", "```json"]
    lines += [json.dumps(results["extras"], indent=1), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/coldstart/results")))
