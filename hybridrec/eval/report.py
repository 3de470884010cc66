"""Benchmark reports: ``results.json``, ``per_user.npz``, ``results.md`` and PNG plots."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from hybridrec.eval import stats
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
        "candidate_recall",
    ],
    "sampled-random": ["ndcg@{k}", "hr@{k}", "mrr"],
    "sampled-popularity": ["ndcg@{k}", "hr@{k}", "mrr"],
    "pairwise-auc": ["auc", "auc_user", "logloss"],
    "cold-start": ["ndcg@{k}", "hr@{k}", "recall@{k}", "mrr@{kmax}"],
    "cold-start-text": ["ndcg@{k}", "hr@{k}", "recall@{k}", "mrr@{kmax}"],
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


# Metric families whose higher values are better: a significant difference is marked ▲ / ▼.
# Every other metric (diversity, coverage, novelty, Gini, average popularity) describes the
# lists rather than scoring them: a significant difference is marked + / − (higher / lower).
HIGHER_IS_BETTER = frozenset(
    {"ndcg", "hr", "recall", "precision", "mrr", "auc", "auc_user", "map", "candidate_recall"}
)
# Accuracy metrics whose lower values are better: ▲ marks a significant decrease.
LOWER_IS_BETTER = frozenset({"logloss"})
ALPHA = 0.05
BETTER, WORSE, HIGHER, LOWER = "▲", "▼", "+", "−"
# The raw p-value a comparison is judged on: the paired t-test, the Wilcoxon signed-rank test
# where the t-test is undefined, the bootstrap for the global pair-wise AUC.
P_KEYS = ("p_ttest", "p_wilcoxon", "p_bootstrap")
FALLBACK_TEXT = "answered with the popularity fallback (same lists as `popularity`)"
COST_COLUMNS = ["fit s", "fit peak MB", "p50 ms", "p95 ms", "p99 ms", "users/s batched"]


def write_results(results: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    """Write every output file of a benchmark into ``out`` (created if needed).

    Adds the Holm-adjusted p-values to ``results`` first (see :func:`annotate_significance`),
    so the written ``results.json`` and the caller's dict both carry them.

    Args:
        results: the results document of :func:`hybridrec.eval.bench.run_benchmark`.
        arrays: the per-user arrays, written to ``per_user.npz``.
        out: the output folder.
    """
    import io

    annotate_significance(results)
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


# ---------------------------------------------------------------------------------------------
# tables and significance


def _status(row: dict[str, Any]) -> str:
    return str(row.get("status") or "ok")


def _tables(results: dict[str, Any]) -> list[tuple[tuple[str, str, Any], list[dict[str, Any]]]]:
    """Rows grouped per table, one table per (dataset, protocol, seed), in order of appearance."""
    groups: dict[tuple[str, str, Any], list[dict[str, Any]]] = {}
    for row in results.get("rows") or []:
        key = (str(row.get("dataset", "")), str(row.get("protocol", "")), row.get("seed"))
        groups.setdefault(key, []).append(row)
    return list(groups.items())


def _ks(results: dict[str, Any]) -> list[int]:
    return list((results.get("config") or {}).get("k") or [10])


def _columns(protocol: str, metrics: set[str], ks: list[int]) -> list[str]:
    k, kmax = min(ks), max(ks)
    wanted = [c.format(k=k, kmax=kmax) for c in MAIN_METRICS.get(protocol, [])]
    extra = sorted(
        m for m in metrics if m not in wanted and "@" in m and m.endswith(f"@{kmax}") and kmax != k
    )
    return [c for c in wanted + extra if c in metrics]


def _table_columns(protocol: str, group: list[dict[str, Any]], ks: list[int]) -> list[str]:
    reported = [r for r in group if _status(r) == "ok"]
    return _columns(protocol, {m for r in reported for m in r.get("metrics") or {}}, ks)


def _raw_p(test: dict[str, Any]) -> tuple[str, float] | None:
    """The p-value a comparison is judged on, with its key; None when no test could run."""
    for key in P_KEYS:
        value = test.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return key, float(value)
    return None


def _family(group: list[dict[str, Any]], cols: list[str]) -> list[tuple[int, str, str, float]]:
    """The tests of one table: (row index, metric, p key, raw p) of every shown comparison."""
    family = []
    for i, row in enumerate(group):
        if _status(row) != "ok":
            continue
        versus = row.get("vs_baseline") or {}
        for metric in cols:
            found = _raw_p(versus.get(metric) or {})
            if found is not None:
                family.append((i, metric, *found))
    return family


def _adjusted(group: list[dict[str, Any]], cols: list[str]) -> dict[tuple[int, str], float]:
    """Holm-adjusted p-values of a table's tests, keyed by (row index, metric)."""
    family = _family(group, cols)
    adjusted = stats.holm([p for *_, p in family])
    return {(i, metric): float(q) for (i, metric, _, _), q in zip(family, adjusted, strict=True)}


def annotate_significance(results: dict[str, Any]) -> dict[str, Any]:
    """Add Holm-adjusted p-values to every comparison against the baseline, table by table.

    A table is one (dataset, protocol, seed); its family of tests is every comparison shown in
    it: each reported row (status ``ok``) against the baseline, on each metric column of the
    table (:func:`markdown`'s columns), judged on ``p_ttest`` (or ``p_wilcoxon`` where the
    t-test is undefined, or ``p_bootstrap`` for the pair-wise AUC). Each such
    ``row["vs_baseline"][metric]`` gets ``p_holm`` (the adjusted p-value), ``p_holm_of`` (the
    key of the raw p-value adjusted) and ``holm_tests`` (the size of the family). Comparisons
    outside every family (a metric not shown, a row not reported, no raw p-value) get
    ``p_holm = nan`` and ``p_holm_of = None``. Idempotent: a second call gives the same values.

    Args:
        results: the results document of :func:`hybridrec.eval.bench.run_benchmark`; changed
            in place.

    Returns:
        ``results`` itself.
    """
    ks = _ks(results)
    for (_, protocol, _), group in _tables(results):
        cols = _table_columns(protocol, group, ks)
        family = _family(group, cols)
        adjusted = stats.holm([p for *_, p in family])
        for row in group:
            for test in (row.get("vs_baseline") or {}).values():
                if isinstance(test, dict):
                    test.update(p_holm=float("nan"), p_holm_of=None, holm_tests=len(family))
        for (i, metric, key, _), q in zip(family, adjusted, strict=True):
            group[i]["vs_baseline"][metric].update(p_holm=float(q), p_holm_of=key)
    return results


def _mark(test: dict[str, Any] | None, p_holm: float | None, metric: str) -> str:
    """▲ / ▼ (or + / − for a descriptive metric) when ``p_holm < ALPHA``, else empty."""
    if not test or p_holm is None or not p_holm < ALPHA:
        return ""
    diff = test.get("diff")
    if not isinstance(diff, int | float) or not math.isfinite(diff) or diff == 0:
        return ""
    family = metric.split("@")[0]
    if family in HIGHER_IS_BETTER:
        return BETTER if diff > 0 else WORSE
    if family in LOWER_IS_BETTER:
        return BETTER if diff < 0 else WORSE
    return HIGHER if diff > 0 else LOWER


def _marks(group: list[dict[str, Any]], cols: list[str]) -> dict[tuple[int, str], str]:
    return {
        (i, metric): _mark((group[i].get("vs_baseline") or {}).get(metric), q, metric)
        for (i, metric), q in _adjusted(group, cols).items()
    }


def _number(value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"


def _fmt(metric: dict[str, Any] | None) -> str:
    if not metric:
        return "–"
    text = _number(metric.get("mean"))
    lo, hi = metric.get("ci_low"), metric.get("ci_high")
    if text != "–" and all(isinstance(v, int | float) and math.isfinite(v) for v in (lo, hi)):
        text += f" ±{(hi - lo) / 2:.4f}"
    return text


def _ms(latency: dict[str, Any] | None, key: str, spec: str = ".2f") -> str:
    value = (latency or {}).get(key)
    return format(value, spec) if isinstance(value, int | float) else "–"


def _row_text(row: dict[str, Any]) -> str | None:
    """The one-line text standing for a row that has no numbers to show, or None."""
    status = _status(row)
    if status == "ok":
        return None
    if status == "fallback":
        return FALLBACK_TEXT
    word = {"skipped": "skipped", "error": "failed"}.get(status, status)
    reason = " ".join(str(row.get("error") or "").split())  # one line, whatever the error
    return f"**{word}**: {reason or 'no reason recorded'}"


def _cell(text: Any) -> str:
    """Text that cannot break a Markdown table row."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _is_skipped_protocol(group: list[dict[str, Any]]) -> bool:
    return all(_status(r) == "skipped" and r.get("recommender") == "(protocol)" for r in group)


def _caption(baseline: str | None, compared: int, tested: int, marked_cols: list[str]) -> str:
    """The sentence under a table saying what its marks mean (and over how many tests)."""
    if not baseline:
        return "No significance marks: the run has no baseline."
    if not compared:
        return f"No significance marks: no comparison against `{baseline}` in this table."
    if not tested:
        return (
            f"No significance marks: none of the {compared} comparisons against `{baseline}` "
            "could be tested (every difference zero, or fewer than two users)."
        )
    tests = "test" if tested == 1 else "tests"
    text = (
        f"Marks: Holm-adjusted p < {ALPHA:g} over the {tested} {tests} of this table, "
        f"paired t-test over users vs `{baseline}` (Wilcoxon signed-rank where the t-test is "
        "undefined; bootstrap over users for the pair-wise AUC); "
        f"{BETTER} better, {WORSE} worse"
    )
    if any(c.split("@")[0] not in HIGHER_IS_BETTER for c in marked_cols):
        text += (
            f"; on beyond-accuracy metrics {HIGHER} / {LOWER} = significantly higher / lower, "
            "neither better nor worse"
        )
    return text + "."


def _compared(group: list[dict[str, Any]], cols: list[str]) -> int:
    """How many comparisons against the baseline a table shows (tested or not)."""
    return sum(
        1
        for r in group
        if _status(r) == "ok"
        for c in cols
        if isinstance((r.get("vs_baseline") or {}).get(c), dict)
    )


def markdown(results: dict[str, Any], plots: list[str] | None = None) -> str:
    """Tables per dataset, protocol and seed, the protocol stated above each table.

    Each value is the mean over users with ``±`` half its 95% bootstrap CI, followed by a
    mark when it differs significantly from the baseline's (Holm-adjusted over the table's
    tests, see :func:`annotate_significance`): ▲ / ▼ significantly better / worse on an
    accuracy metric, + / − significantly higher / lower on a beyond-accuracy one. A skipped
    protocol is one line; a failed or skipped row, or one that answered only with the
    popularity fallback, is one line of text in its table; rows ranked over a candidate list
    (a ``candidates`` key) get a ``candidates`` column.

    Args:
        results: the results document of :func:`hybridrec.eval.bench.run_benchmark`.
        plots: file names of plots to embed below the tables.

    Returns:
        The Markdown text.
    """
    cfg = results.get("config") or {}
    env = results.get("environment") or {}
    baseline = results.get("baseline")
    duration = results.get("duration_s")
    lines = [
        "# hybridrec benchmark",
        "",
        f"- command: `{results.get('command') or 'run_benchmark() from Python'}`",
        f"- started: {results.get('started_at', '?')}, duration "
        + (f"{duration:.0f} s" if isinstance(duration, int | float) else "?"),
        f"- machine: {env.get('platform', '?')}, {env.get('cpu_count', '?')} CPU cores; "
        f"git {env.get('git_commit')}",
        f"- seeds: {cfg.get('seeds')}; users per protocol: {cfg.get('users') or 'all'}; "
        f"bootstrap resamples: {cfg.get('bootstrap')}",
        f"- baseline for significance: `{baseline}`. `±` is half the 95% bootstrap CI. "
        f"{BETTER} / {WORSE}: significantly better / worse than the baseline, Holm-adjusted "
        f"p < {ALPHA:g} within each table (paired t-test over users, Wilcoxon where the t-test "
        "is undefined, bootstrap over users for pair-wise AUC); "
        f"{HIGHER} / {LOWER}: significantly higher / lower on a beyond-accuracy metric.",
        "",
    ]
    ks = _ks(results)
    protocols = results.get("protocols") or {}
    for (dataset, protocol, seed), group in _tables(results):
        lines += [f"## {dataset} — {protocol} (seed {seed})", ""]
        if _is_skipped_protocol(group):
            reasons = "; ".join(dict.fromkeys(_cell(r.get("error") or "") for r in group))
            lines += [f"> **skipped**: {reasons or 'no reason recorded'}", ""]
            continue
        description = (protocols.get(protocol) or {}).get("description")
        if description:
            lines += [f"> {description}", ""]
        cols = _table_columns(protocol, group, ks)
        marks = _marks(group, cols)
        with_cost = protocol == "full-ranking"
        with_candidates = any(r.get("candidates") for r in group)
        head = ["recommender"] + (["candidates"] if with_candidates else []) + cols
        head += COST_COLUMNS if with_cost else []
        if len(head) == 1:
            head.append("result")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, r in enumerate(group):
            cells = [_cell(r.get("recommender", "?"))]
            if with_candidates:
                cells.append(_cell(r.get("candidates") or "–"))
            text = _row_text(r)
            if text is not None:
                cells.append(_cell(text))
            else:
                metrics = r.get("metrics") or {}
                for c in cols:
                    mark = marks.get((i, c), "")
                    cells.append(_fmt(metrics.get(c)) + (f" {mark}" if mark else ""))
                if with_cost:
                    lat = r.get("latency")
                    cells += [
                        _number_or_dash(r.get("fit_time_s"), ".2f"),
                        _number_or_dash(r.get("fit_peak_mb"), ".0f"),
                        _ms(lat, "p50_ms"),
                        _ms(lat, "p95_ms"),
                        _ms(lat, "p99_ms"),
                        _ms(lat, "batch_users_per_s", ".0f"),
                    ]
            cells += [""] * (len(head) - len(cells))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        marked = sorted({c for (_, c), mark in marks.items() if mark})
        caption = _caption(baseline, _compared(group, cols), len(marks), marked)
        lines += [f"> {caption}", ""]
        if with_candidates:
            lines += [
                "> `candidates`: the row ranked only that candidate list (e.g. the top-N of "
                "another recommender), not the protocol's full set of candidates; its numbers "
                "are bounded by that list.",
                "",
            ]
    for plot in plots or []:
        lines += [f"![{plot}]({plot})", ""]
    return "\n".join(lines)


def _number_or_dash(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "–"


def console_summary(results: dict[str, Any], width: int = 6) -> str:
    """A compact plain-text table per protocol (means only) for the terminal.

    Significance marks are those of ``results.md`` (▲ / ▼, + / −, Holm-adjusted within each
    table). The full tables, with confidence intervals and every metric, are in ``results.md``.

    Args:
        results: the results document of :func:`hybridrec.eval.bench.run_benchmark`.
        width: at most this many metric columns per table.

    Returns:
        The text, one block per (dataset, protocol, seed).
    """
    lines: list[str] = []
    ks = _ks(results)
    any_marks = False
    for (dataset, protocol, seed), group in _tables(results):
        title = f"{dataset} · {protocol} · seed {seed}"
        if _is_skipped_protocol(group):
            reasons = "; ".join(
                dict.fromkeys(" ".join(str(r.get("error") or "").split()) for r in group)
            )
            lines += [f"{title}: skipped ({reasons or 'no reason recorded'})", ""]
            continue
        all_cols = _table_columns(protocol, group, ks)
        marks = _marks(group, all_cols)  # the family is the full table's, as in results.md
        cols = all_cols[:width]
        marked_cols = {c for (_, c), mark in marks.items() if mark and c in cols}
        any_marks = any_marks or bool(marked_cols)
        cost = protocol == "full-ranking"
        with_candidates = any(r.get("candidates") for r in group)
        head = ["recommender"] + (["candidates"] if with_candidates else []) + cols
        head += ["p50 ms"] if cost else []
        fixed = len(head) - len(cols) - (1 if cost else 0)  # name (and candidates) columns
        table: list[list[str]] = [head]
        texts: dict[int, str] = {}
        for i, r in enumerate(group):
            cells = [str(r.get("recommender", "?"))]
            if with_candidates:
                cells.append(str(r.get("candidates") or "–"))
            text = _row_text(r)
            if text is not None:
                texts[len(table)] = text.replace("**", "").replace("`", "")
                table.append(cells)
                continue
            metrics = r.get("metrics") or {}
            for c in cols:
                # a blank where a column has marks elsewhere keeps the digits aligned
                mark = marks.get((i, c)) or (" " if c in marked_cols else "")
                cells.append(_number((metrics.get(c) or {}).get("mean")) + mark)
            if cost:
                cells.append(_ms(r.get("latency"), "p50_ms"))
            table.append(cells)
        widths = [max(len(row[j]) for row in table if j < len(row)) for j in range(len(head))]
        lines.append(title)
        for n, row in enumerate(table):
            parts = [
                cell.ljust(widths[j]) if j < fixed else cell.rjust(widths[j])
                for j, cell in enumerate(row)
            ]
            if n in texts:
                parts.append(texts[n][:100])
            lines.append(("  " + "  ".join(parts)).rstrip())
        lines.append("")
    if any_marks:
        lines += [
            f"{BETTER}/{WORSE}: significantly better/worse than `{results.get('baseline')}`, "
            f"Holm-adjusted p < {ALPHA:g} within each table; {HIGHER}/{LOWER}: significantly "
            "higher/lower on a beyond-accuracy metric.",
            "",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# plots


def _mean(row: dict[str, Any], metric: str) -> float | None:
    value = ((row.get("metrics") or {}).get(metric) or {}).get("mean")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _label(row: dict[str, Any]) -> str:
    name = str(row.get("recommender", "?"))
    return f"{name} [{row['candidates']}]" if row.get("candidates") else name


def write_plots(results: dict[str, Any], out: Path) -> list[str]:
    """Accuracy against latency, and metric bars with confidence intervals, as PNG files.

    One set of figures per (dataset, seed); file names carry them only when a run has more
    than one, so a single-dataset, single-seed run writes ``accuracy_vs_latency.png`` and
    ``metrics_<protocol>.png``. Only reported rows (status ``ok``) with finite values are
    drawn; a protocol with none gets no figure.

    Args:
        results: the results document of :func:`hybridrec.eval.bench.run_benchmark`.
        out: the folder the PNG files are written to.

    Returns:
        The names of the files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []
    ok = [r for r in results.get("rows") or [] if _status(r) == "ok"]
    k = min(_ks(results))
    groups = list(dict.fromkeys((r.get("dataset", ""), r.get("seed")) for r in ok))
    for dataset, seed in groups:
        rows = [r for r in ok if (r.get("dataset", ""), r.get("seed")) == (dataset, seed)]
        suffix = "" if len(groups) == 1 else f"_{_slug(str(dataset))}_seed{seed}"
        title = "" if len(groups) == 1 else f" ({dataset}, seed {seed})"
        metric = f"ndcg@{k}"
        pts = []
        for r in rows:
            p50 = (r.get("latency") or {}).get("p50_ms")
            y = _mean(r, metric)
            if (
                r.get("protocol") == "full-ranking"
                and isinstance(p50, int | float)
                and y is not None
            ):
                pts.append((max(float(p50), 1e-3), y, _label(r)))
        if pts:
            fig, ax = plt.subplots(figsize=(6, 4))
            for x, y, label in pts:
                ax.scatter(x, y)
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4))
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
        for protocol in dict.fromkeys(r.get("protocol", "") for r in rows):
            name = f"metrics_{_slug(str(protocol))}{suffix}.png"
            if _metric_bars(
                plt,
                [r for r in rows if r.get("protocol", "") == protocol],
                k,
                f"{protocol}{title}",
                out / name,
            ):
                written.append(name)
    return written


def _metric_bars(plt: Any, group: list[dict[str, Any]], k: int, title: str, path: Path) -> bool:
    wanted = (f"ndcg@{k}", f"hr@{k}", "auc")
    names = [m for m in wanted if any(_mean(r, m) is not None for r in group)]
    if not names:
        return False
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        labels, means, errs = [], [], []
        for r in group:
            mean = _mean(r, name)
            if mean is None:
                continue
            m = r["metrics"][name]
            labels.append(_label(r))
            means.append(mean)
            lo, hi = m.get("ci_low"), m.get("ci_high")
            finite = all(isinstance(v, int | float) and math.isfinite(v) for v in (lo, hi))
            # a percentile interval need not contain the mean: clamp the bar's whiskers
            errs.append((max(0.0, mean - lo), max(0.0, hi - mean)) if finite else (0.0, 0.0))
        ax.bar(range(len(labels)), means, yerr=np.array(errs).T, capsize=3)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_title(f"{title}: {name}")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text)
