"""Tests of hybridrec.eval.report on hand-built results documents: significance, odd rows."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybridrec.eval.report import (
    FALLBACK_TEXT,
    annotate_significance,
    console_summary,
    markdown,
    write_plots,
    write_results,
)

NAN = float("nan")


def metric(mean: float, half: float | None = 0.01, n: int | None = 100) -> dict[str, Any]:
    if half is None:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": n}
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def paired(diff: float, p: float, wilcoxon: float = NAN) -> dict[str, Any]:
    """A ``vs_baseline`` entry as :func:`hybridrec.eval.stats.paired_test` writes it."""
    return {"diff": diff, "n": 100, "p_ttest": p, "p_wilcoxon": wilcoxon}


def row(
    recommender: str,
    protocol: str = "full-ranking",
    *,
    metrics: dict[str, Any] | None = None,
    versus: dict[str, Any] | None = None,
    status: str = "ok",
    error: str | None = None,
    seed: int = 0,
    dataset: str = "toy",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "protocol": protocol,
        "recommender": recommender,
        "name": recommender,
        "params": {},
        "seed": seed,
        "kind": "recommender",
        "status": status,
        "error": error,
        "fit_time_s": 0.5 if status == "ok" else None,
        "fit_peak_mb": 12.0 if status == "ok" else None,
        "latency": (
            {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "batch_users_per_s": 900.0}
            if status == "ok" and protocol == "full-ranking"
            else None
        ),
        "metrics": metrics or {},
        "vs_baseline": versus or {},
        **extra,
    }


def document(rows: list[dict[str, Any]], baseline: str | None = "popularity") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "config": {"k": [10], "seeds": [0], "users": None, "bootstrap": 100},
        "recommenders": [],
        "baseline": baseline,
        "protocols": {
            "full-ranking": {"name": "full-ranking", "description": "Full ranking, by time."},
            "sampled-random": {"name": "sampled-random", "description": "1 + 19 sampled."},
        },
        "datasets": {},
        "environment": {"platform": "test", "cpu_count": 2, "git_commit": None},
        "started_at": "2025-01-01T00:00:00+00:00",
        "duration_s": 1.0,
        "rows": rows,
    }


def four_tests() -> dict[str, Any]:
    """Baseline, a better and a worse model: 2 x 2 tests with p = 0.01, 0.04, 0.03, 0.005."""
    return document(
        [
            row("popularity", metrics={"ndcg@10": metric(0.10), "hr@10": metric(0.20)}),
            row(
                "ease",
                metrics={"ndcg@10": metric(0.15), "hr@10": metric(0.25)},
                versus={"ndcg@10": paired(0.05, 0.01), "hr@10": paired(0.05, 0.04)},
            ),
            row(
                "random",
                metrics={"ndcg@10": metric(0.01), "hr@10": metric(0.02)},
                # the t-test was undefined for hr: the Wilcoxon p-value stands in
                versus={"ndcg@10": paired(-0.09, 0.03), "hr@10": paired(-0.18, NAN, 0.005)},
            ),
        ]
    )


def table_lines(md: str, heading: str) -> list[str]:
    """The lines of the table under ``heading`` (up to the next heading)."""
    section = md.split(heading, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


# --- Holm adjustment and marks ------------------------------------------------------------


def test_annotate_significance_holm_within_a_table() -> None:
    results = annotate_significance(four_tests())
    by_name = {r["recommender"]: r for r in results["rows"]}
    ease, rnd = by_name["ease"]["vs_baseline"], by_name["random"]["vs_baseline"]
    # Holm over [0.01, 0.04, 0.03, 0.005] = [0.03, 0.06, 0.06, 0.02]
    assert ease["ndcg@10"]["p_holm"] == pytest.approx(0.03)
    assert ease["hr@10"]["p_holm"] == pytest.approx(0.06)
    assert rnd["ndcg@10"]["p_holm"] == pytest.approx(0.06)
    assert rnd["hr@10"]["p_holm"] == pytest.approx(0.02)
    assert rnd["hr@10"]["p_holm_of"] == "p_wilcoxon" and ease["hr@10"]["p_holm_of"] == "p_ttest"
    assert {t["holm_tests"] for r in (ease, rnd) for t in r.values()} == {4}
    assert by_name["popularity"]["vs_baseline"] == {}
    again = annotate_significance(copy.deepcopy(results))
    assert json.dumps(again) == json.dumps(results)  # idempotent


def test_each_table_is_its_own_family() -> None:
    results = four_tests()
    other_seed = copy.deepcopy(results["rows"])
    for r in other_seed:
        r["seed"] = 1
    other_seed[1]["vs_baseline"] = {"ndcg@10": paired(0.05, 0.01)}  # one test alone: not adjusted
    other_seed[2]["vs_baseline"] = {}
    results["rows"] += other_seed
    annotate_significance(results)
    assert results["rows"][1]["vs_baseline"]["ndcg@10"]["p_holm"] == pytest.approx(0.03)
    assert results["rows"][4]["vs_baseline"]["ndcg@10"]["p_holm"] == pytest.approx(0.01)
    assert results["rows"][4]["vs_baseline"]["ndcg@10"]["holm_tests"] == 1


def test_untestable_or_unshown_comparisons_get_no_holm_value() -> None:
    results = document(
        [
            row("popularity", metrics={"ndcg@10": metric(0.1)}),
            row(
                "ease",
                metrics={"ndcg@10": metric(0.1), "ndcg@7": metric(0.1)},  # @7 is not a column
                versus={"ndcg@10": paired(0.0, NAN), "ndcg@7": paired(0.01, 0.001)},
            ),
        ]
    )
    annotate_significance(results)
    versus = results["rows"][1]["vs_baseline"]
    assert math.isnan(versus["ndcg@10"]["p_holm"]) and versus["ndcg@10"]["p_holm_of"] is None
    assert math.isnan(versus["ndcg@7"]["p_holm"])
    assert versus["ndcg@10"]["holm_tests"] == 0
    assert "could be tested" in markdown(results)


def test_direction_marks_better_worse_and_baseline_none() -> None:
    md = markdown(four_tests())
    lines = table_lines(md, "## toy — full-ranking (seed 0)")
    head = cells(lines[0])
    table = {cells(line)[0]: dict(zip(head, cells(line), strict=True)) for line in lines[2:]}
    assert table["ease"]["ndcg@10"] == "0.1500 ±0.0100 ▲"  # Holm p 0.03
    assert table["ease"]["hr@10"] == "0.2500 ±0.0100"  # raw p 0.04, Holm 0.06: no mark
    assert table["random"]["ndcg@10"] == "0.0100 ±0.0100"  # raw 0.03, Holm 0.06
    assert table["random"]["hr@10"] == "0.0200 ±0.0100 ▼"  # Wilcoxon 0.005, Holm 0.02
    assert not any(m in " ".join(table["popularity"].values()) for m in "▲▼+−")
    assert (
        "Holm-adjusted p < 0.05 over the 4 tests of this table, paired t-test over users "
        "vs `popularity`" in md
    )
    assert "▲ better, ▼ worse" in md
    assert "*" not in "".join(lines)  # the old uncorrected star is gone


def test_beyond_accuracy_metrics_are_marked_higher_or_lower_not_better() -> None:
    results = document(
        [
            row("popularity", metrics={"avg_popularity@10": metric(230.0, 2.0)}),
            row(
                "random",
                metrics={"avg_popularity@10": metric(10.0, 1.0), "novelty@10": metric(5.0)},
                versus={
                    "avg_popularity@10": paired(-220.0, 1e-30),
                    "novelty@10": paired(3.5, 1e-30),
                },
            ),
        ]
    )
    md = markdown(results)
    rnd = next(line for line in table_lines(md, "full-ranking (seed 0)") if "random" in line)
    assert "10.0000 ±1.0000 −" in rnd and "5.0000 ±0.0100 +" in rnd
    assert "▲" not in rnd and "▼" not in rnd
    assert "+ / − = significantly higher / lower, neither better nor worse" in md


def test_no_baseline_means_no_marks() -> None:
    results = four_tests()
    results["baseline"] = None
    for r in results["rows"]:
        r["vs_baseline"] = {}
    md = markdown(results)
    assert "No significance marks: the run has no baseline." in md
    assert "▲" not in md.split("## ", 1)[1] and "▼" not in md.split("## ", 1)[1]


def test_console_summary_shows_the_same_marks() -> None:
    text = console_summary(four_tests())
    ease = next(line for line in text.splitlines() if line.strip().startswith("ease"))
    rnd = next(line for line in text.splitlines() if line.strip().startswith("random"))
    assert "0.1500▲" in ease and "0.2500▲" not in ease
    assert "0.0200▼" in rnd
    assert "Holm-adjusted" in text


# --- rows that have no numbers --------------------------------------------------------------


def odd_rows() -> dict[str, Any]:
    """A skipped protocol, failures, a fallback, empty metrics and a candidate-list row."""
    full = [
        row("popularity", metrics={"ndcg@10": metric(0.10), "auc": metric(0.8)}),
        row(
            "ease",
            metrics={"ndcg@10": metric(0.20), "auc": metric(0.9)},
            versus={"ndcg@10": paired(0.1, 1e-9), "auc": paired(0.1, 1e-9)},
        ),
        row("broken", status="error", error="fit: ValueError: l2 must be above 0"),
        row(
            "llm",
            status="fallback",
            metrics={"ndcg@10": metric(0.10), "auc": metric(0.8)},
            versus={"ndcg@10": paired(0.0, NAN), "auc": paired(0.0, 1e-9)},
        ),
        row("empty"),  # ok, but measured nothing
        row(
            "rerank",
            metrics={"ndcg@10": metric(0.05), "auc": metric(0.6)},
            versus={"ndcg@10": paired(-0.05, 1e-9)},
            candidates="top-20 of embedding",
        ),
    ]
    failed = [
        row("popularity", "sampled-random", status="error", error="evaluate: boom"),
        row("ease", "sampled-random", status="error", error=None),
    ]
    skipped = [
        row(
            "(protocol)",
            "pairwise-auc",
            status="skipped",
            error="pairwise-auc needs ratings; this dataset is implicit",
        )
    ]
    return document(skipped + full + failed)


def test_markdown_handles_skipped_failed_fallback_empty_and_candidates() -> None:
    md = markdown(odd_rows())
    assert "## toy — pairwise-auc (seed 0)" in md
    assert "> **skipped**: pairwise-auc needs ratings; this dataset is implicit" in md
    assert not table_lines(md, "## toy — pairwise-auc (seed 0)")  # no table for it

    lines = table_lines(md, "## toy — full-ranking (seed 0)")
    assert len({line.count("|") for line in lines}) == 1  # every row has all the cells
    head = cells(lines[0])
    assert head[:4] == ["recommender", "candidates", "ndcg@10", "auc"]
    table = {cells(line)[0]: cells(line) for line in lines[2:]}
    assert table["broken"][2] == "**failed**: fit: ValueError: l2 must be above 0"
    assert table["llm"][2] == FALLBACK_TEXT and not any(table["llm"][3:])  # no numbers
    assert table["empty"][2:4] == ["–", "–"]
    assert table["rerank"][1] == "top-20 of embedding" and table["ease"][1] == "–"
    assert table["rerank"][2] == "0.0500 ±0.0100 ▼"
    assert table["ease"][2:4] == ["0.2000 ±0.0100 ▲", "0.9000 ±0.0100 ▲"]
    assert "`candidates`: the row ranked only that candidate list" in md
    # the fallback row is not shown, so its tests are not in the family: 3 tests, not 4
    assert "over the 3 tests of this table" in md

    lines = table_lines(md, "## toy — sampled-random (seed 0)")
    assert cells(lines[0]) == ["recommender", "result"]
    assert cells(lines[2]) == ["popularity", "**failed**: evaluate: boom"]
    assert cells(lines[3]) == ["ease", "**failed**: no reason recorded"]


def test_console_summary_handles_the_same_rows() -> None:
    text = console_summary(odd_rows())
    assert "toy · pairwise-auc · seed 0: skipped (pairwise-auc needs ratings" in text
    lines = text.splitlines()
    llm = next(line for line in lines if line.strip().startswith("llm"))
    assert "answered with the popularity fallback (same lists as popularity)" in llm
    broken = next(line for line in lines if line.strip().startswith("broken"))
    assert "failed: fit: ValueError: l2 must be above 0" in broken
    rerank = next(line for line in lines if line.strip().startswith("rerank"))
    assert "top-20 of embedding" in rerank and "0.0500▼" in rerank
    assert "candidates" in next(line for line in lines if "recommender" in line)
    assert "failed: evaluate: boom" in text


def test_summaries_of_runs_with_nothing_to_show() -> None:
    only_skipped = document(odd_rows()["rows"][:1])
    assert "skipped" in markdown(only_skipped) and "skipped" in console_summary(only_skipped)
    empty = document([])
    assert markdown(empty).startswith("# hybridrec benchmark")
    assert console_summary(empty) == ""


def test_nan_means_and_intervals_show_as_dashes() -> None:
    results = document(
        [row("popularity", metrics={"ndcg@10": {"mean": NAN, "ci_low": NAN, "ci_high": NAN}})]
    )
    line = table_lines(markdown(results), "full-ranking (seed 0)")[2]
    assert cells(line)[1] == "–"
    assert "nan" not in console_summary(results)


def test_plots_skip_rows_without_numbers(tmp_path: Path) -> None:
    results = odd_rows()
    results["rows"].append(
        row("nan-model", metrics={"ndcg@10": {"mean": NAN, "ci_low": None, "ci_high": None}})
    )
    written = write_plots(results, tmp_path)
    assert written == ["accuracy_vs_latency.png", "metrics_full-ranking.png"]
    assert all((tmp_path / name).stat().st_size > 0 for name in written)


def test_write_results_stores_holm_p_values(tmp_path: Path) -> None:
    results = odd_rows()
    write_results(results, {"toy|x": np.arange(3.0)}, tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    rows = {(r["protocol"], r["recommender"]): r for r in doc["rows"]}
    ease = rows[("full-ranking", "ease")]["vs_baseline"]
    # three tests, each p = 1e-9: the smallest times 3, then the running maximum
    assert ease["ndcg@10"]["p_holm"] == pytest.approx(3e-9)
    assert ease["auc"]["p_holm"] == pytest.approx(3e-9)
    assert rows[("full-ranking", "llm")]["vs_baseline"]["auc"]["p_holm"] is None  # not shown
    md = (tmp_path / "results.md").read_text()
    assert "![metrics_full-ranking.png](metrics_full-ranking.png)" in md


def test_error_text_cannot_break_a_table() -> None:
    results = document(
        [
            row("popularity", metrics={"ndcg@10": metric(0.1)}),
            row("odd", status="error", error="fit: ValueError: a | b\n  second line"),
        ]
    )
    lines = table_lines(markdown(results), "full-ranking (seed 0)")
    assert len({line.count("|") - line.count("\\|") for line in lines}) == 1
    assert "**failed**: fit: ValueError: a \\| b second line" in lines[3]
    odd = next(ln for ln in console_summary(results).splitlines() if ln.strip().startswith("odd"))
    assert "failed: fit: ValueError: a | b second line" in odd


def test_console_digits_stay_aligned_beside_marks() -> None:
    lines = console_summary(four_tests()).splitlines()
    body = [ln for ln in lines if ln.strip().startswith(("popularity", "ease", "random"))]
    # the last digit of every ndcg@10 value sits in the same column
    values = ["0.1000", "0.1500", "0.0100"]
    ends = {ln.index(value) + 6 for ln, value in zip(body, values, strict=True)}
    assert len(ends) == 1


def test_per_user_auc_and_logloss_are_marked_as_accuracy() -> None:
    from hybridrec.eval.report import BETTER, WORSE, _mark

    assert _mark({"diff": 0.1}, 0.001, "auc_user") == BETTER
    assert _mark({"diff": -0.1}, 0.001, "auc_user") == WORSE
    assert _mark({"diff": -0.02}, 0.001, "logloss") == BETTER  # lower log-loss is better
    assert _mark({"diff": 0.02}, 0.001, "logloss") == WORSE
