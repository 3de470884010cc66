"""Benchmark reports: ``results.json``, ``per_user.npz``, ``results.md`` and PNG plots."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from hybridrec.persistence import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

# Columns shown per protocol, in order (metrics absent from a run are skipped).
MAIN_METRICS = {
    "full-ranking": [
        "ndcg@{k}",
        "hr@{k}",
        "recall@{k}",
        "precision@{k}",
        "mrr@{kmax}",
        "auc",
        "diversity@{k}",
        "coverage@{k}",
        "novelty@{k}",
        "gini@{k}",
        "avg_popularity@{k}",
    ],
    "sampled-random": ["ndcg@{k}", "hr@{k}", "mrr"],
    "sampled-popularity": ["ndcg@{k}", "hr@{k}", "mrr"],
    "pairwise-auc": ["auc"],
    "cold-start": ["ndcg@{k}", "hr@{k}", "recall@{k}", "mrr@{kmax}"],
}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN and infinity are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_results(results: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    """Write every output file of a benchmark into ``out`` (created if needed)."""
    import io

    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(results), indent=2, default=_json_default, allow_nan=False)
    atomic_write_text(out / "results.json", text + "\n")
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(out / "per_user.npz", buf.getvalue())
    atomic_write_text(out / "results.md", markdown(results))  # the tables, even if plots fail
    try:
        plots = write_plots(results, out)
    except Exception:  # noqa: BLE001 - a plotting problem must not lose the results
        logger.exception("plotting failed; results.json and results.md are written")
        return
    atomic_write_text(out / "results.md", markdown(results, plots))


def _columns(protocol: str, metrics: set[str], ks: list[int]) -> list[str]:
    k, kmax = min(ks), max(ks)
    wanted = [c.format(k=k, kmax=kmax) for c in MAIN_METRICS.get(protocol, [])]
    extra = sorted(
        m for m in metrics if m not in wanted and "@" in m and m.endswith(f"@{kmax}") and kmax != k
    )
    return [c for c in wanted + extra if c in metrics]


def _fmt(metric: dict[str, Any] | None) -> str:
    if not metric or metric.get("mean") is None:
        return "–"
    mean = metric["mean"]
    text = f"{mean:.4f}" if abs(mean) < 100 else f"{mean:.1f}"
    if metric.get("ci_low") is not None and metric.get("ci_high") is not None:
        text += f" ±{(metric['ci_high'] - metric['ci_low']) / 2:.4f}"
    return text


def _sig(versus: dict[str, Any], metric: str) -> str:
    test = versus.get(metric)
    if not test:
        return ""
    p = None
    for key in ("p_ttest", "p_wilcoxon", "p_bootstrap"):
        value = test.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            p = value
            break
    if p is None:
        return ""
    return " *" if p < 0.05 else ""


def markdown(results: dict[str, Any], plots: list[str] | None = None) -> str:
    """Tables per dataset, protocol and seed, the protocol stated above each table."""
    cfg = results["config"]
    env = results["environment"]
    lines = [
        "# hybridrec benchmark",
        "",
        f"- command: `{results.get('command') or 'run_benchmark() from Python'}`",
        f"- started: {results['started_at']}, duration {results['duration_s']:.0f} s",
        f"- machine: {env['platform']}, {env['cpu_count']} CPU cores; git {env['git_commit']}",
        f"- seeds: {cfg['seeds']}; users per protocol: {cfg['users'] or 'all'}; "
        f"bootstrap resamples: {cfg['bootstrap']}",
        f"- baseline for significance: `{results['baseline']}` (`*` = p < 0.05, paired t-test "
        "over users, Wilcoxon where the t-test is undefined; bootstrap over users for "
        "pairwise AUC). `±` is half the 95% bootstrap CI.",
        "",
    ]
    rows = results["rows"]
    keys = list(dict.fromkeys((r["dataset"], r["protocol"], r["seed"]) for r in rows))
    for dataset, protocol, seed in keys:
        key = (dataset, protocol, seed)
        group = [r for r in rows if (r["dataset"], r["protocol"], r["seed"]) == key]
        metrics = {m for r in group for m in r["metrics"]}
        cols = _columns(protocol, metrics, list(cfg["k"]))
        lines += [f"## {dataset} — {protocol} (seed {seed})", ""]
        lines += [f"> {results['protocols'].get(protocol, {}).get('description', '')}", ""]
        with_cost = protocol == "full-ranking"
        cost_cols = ["fit s", "fit peak MB", "p50 ms", "p95 ms", "p99 ms", "users/s batched"]
        head = ["recommender", *cols] + (cost_cols if with_cost else [])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in group:
            if r["status"] != "ok":
                word = "skipped" if r["status"] == "skipped" else "failed"
                lines.append(
                    f"| {r['recommender']} | **{word}**: {r['error']} |" + " |" * (len(head) - 2)
                )
                continue
            cells = [r["recommender"]] + [
                _fmt(r["metrics"].get(c)) + _sig(r["vs_baseline"], c) for c in cols
            ]
            if with_cost:
                lat = r.get("latency") or {}
                fit_s, fit_mb = r.get("fit_time_s"), r.get("fit_peak_mb")
                cells += [
                    f"{fit_s:.2f}" if fit_s is not None else "–",
                    f"{fit_mb:.0f}" if fit_mb is not None else "–",
                    f"{lat['p50_ms']:.2f}" if lat else "–",
                    f"{lat['p95_ms']:.2f}" if lat else "–",
                    f"{lat['p99_ms']:.2f}" if lat else "–",
                    f"{lat['batch_users_per_s']:.0f}" if lat else "–",
                ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for plot in plots or []:
        lines += [f"![{plot}]({plot})", ""]
    return "\n".join(lines)


def console_summary(results: dict[str, Any], width: int = 6) -> str:
    """A compact plain-text table per protocol (means only) for the terminal.

    The full tables, with confidence intervals and every metric, are in ``results.md``.
    """
    cfg = results["config"]
    lines: list[str] = []
    rows = results["rows"]
    keys = list(dict.fromkeys((r["dataset"], r["protocol"], r["seed"]) for r in rows))
    for dataset, protocol, seed in keys:
        group = [
            r for r in rows if (r["dataset"], r["protocol"], r["seed"]) == (dataset, protocol, seed)
        ]
        metrics = {m for r in group for m in r["metrics"]}
        cols = _columns(protocol, metrics, list(cfg["k"]))[:width]
        cost = protocol == "full-ranking"
        head = ["recommender", *cols] + (["p50 ms"] if cost else [])
        table = [head]
        for r in group:
            if r["status"] != "ok":
                table.append([r["recommender"], f"{r['status']}: {r['error']}"[:60]])
                continue
            cells = [r["recommender"]]
            for c in cols:
                m = r["metrics"].get(c) or {}
                mean = m.get("mean")
                cells.append(
                    "–" if mean is None else f"{mean:.4f}" if abs(mean) < 100 else f"{mean:.1f}"
                )
            if cost:
                lat = r.get("latency") or {}
                cells.append(f"{lat['p50_ms']:.2f}" if lat else "–")
            table.append(cells)
        widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(len(head))]
        lines.append(f"{dataset} · {protocol} · seed {seed}")
        for row in table:
            lines.append(
                "  "
                + "  ".join(
                    cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                    for i, cell in enumerate(row)
                )
            )
        lines.append("")
    return "\n".join(lines)


def write_plots(results: dict[str, Any], out: Path) -> list[str]:
    """Accuracy against latency, and metric bars with confidence intervals, as PNG files.

    One set of figures per (dataset, seed); file names carry them only when a run has more
    than one, so a single-dataset, single-seed run writes ``accuracy_vs_latency.png`` and
    ``metrics_<protocol>.png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []
    ok = [r for r in results["rows"] if r["status"] == "ok"]
    k = min(results["config"]["k"])
    groups = list(dict.fromkeys((r["dataset"], r["seed"]) for r in ok))
    for dataset, seed in groups:
        rows = [r for r in ok if (r["dataset"], r["seed"]) == (dataset, seed)]
        suffix = "" if len(groups) == 1 else f"_{_slug(dataset)}_seed{seed}"
        title = "" if len(groups) == 1 else f" ({dataset}, seed {seed})"
        full = [r for r in rows if r["protocol"] == "full-ranking" and r.get("latency")]
        metric = f"ndcg@{k}"
        pts = [
            (r["latency"]["p50_ms"], r["metrics"][metric]["mean"], r["recommender"])
            for r in full
            if metric in r["metrics"]
        ]
        if pts:
            fig, ax = plt.subplots(figsize=(6, 4))
            for x, y, label in pts:
                ax.scatter(max(x, 1e-3), y)
                ax.annotate(label, (max(x, 1e-3), y), textcoords="offset points", xytext=(4, 4))
            ax.set_xscale("log")
            ax.set_xlabel("p50 latency per user (ms, log scale)")
            ax.set_ylabel(f"NDCG@{k} (full ranking)")
            ax.set_title(f"Accuracy against latency{title}")
            ax.grid(alpha=0.3)
            fig.tight_layout()
            name = f"accuracy_vs_latency{suffix}.png"
            fig.savefig(out / name, dpi=120)
            plt.close(fig)
            written.append(name)
        for protocol in dict.fromkeys(r["protocol"] for r in rows):
            name = f"metrics_{protocol}{suffix}.png"
            if _metric_bars(
                plt,
                [r for r in rows if r["protocol"] == protocol],
                k,
                f"{protocol}{title}",
                out / name,
            ):
                written.append(name)
    return written


def _metric_bars(plt: Any, group: list[dict[str, Any]], k: int, title: str, path: Path) -> bool:
    wanted = (f"ndcg@{k}", f"hr@{k}", "auc")
    names = [m for m in wanted if any(m in r["metrics"] for r in group)]
    if not names:
        return False
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        labels, means, errs = [], [], []
        for r in group:
            m = r["metrics"].get(name)
            if not m or m.get("mean") is None:
                continue
            labels.append(r["recommender"])
            means.append(m["mean"])
            lo, hi = m.get("ci_low"), m.get("ci_high")
            # a percentile interval need not contain the mean: clamp the bar's whiskers
            errs.append(
                (max(0.0, m["mean"] - lo), max(0.0, hi - m["mean"]))
                if lo is not None and hi is not None
                else (0.0, 0.0)
            )
        ax.bar(range(len(labels)), means, yerr=np.array(errs).T if errs else None, capsize=3)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_title(f"{title}: {name}")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text)
