"""The benchmark harness end to end on a tiny config: schema, failures, reproducibility."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hybridrec.contract import synthetic_dataset
from hybridrec.eval.bench import run_benchmark
from hybridrec.eval.config import BenchConfig
from hybridrec.eval.report import write_results

TINY = {
    "datasets": ["synthetic"],
    "protocols": ["full-ranking", "sampled", "pairwise-auc", "cold-start"],
    "recommenders": [
        "random",
        "popularity",
        "itemknn",
        {"name": "ease", "params": {"l2": 10.0}},
        {"name": "ease", "params": {"l2": -1.0}, "label": "broken-ease"},
        "no-such-recommender",
    ],
    "k": [3, 5],
    "negatives": 5,
    "history_len": 3,
    "pairs_per_user": 3,
    "cold_start_frac": 0.2,
    "bootstrap": 50,
    "latency_requests": 5,
    "latency_warmup": 1,
    "latency_batch": 4,
}


def load(name: str):
    """The contract's synthetic data with every third rating turned into a dislike."""
    assert name == "synthetic"
    ds = synthetic_dataset()
    inter = ds.interactions.copy()
    inter.loc[inter.index % 3 == 0, "rating"] = 2.0
    return ds.with_interactions(inter)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    config = BenchConfig.from_dict(TINY)
    results, arrays = run_benchmark(config, load=load)
    out = tmp_path_factory.mktemp("bench")
    write_results(results, arrays, out)
    return results, arrays, out


def test_outputs_are_written(run) -> None:
    _, _, out = run
    for name in ("results.json", "results.md", "per_user.npz", "accuracy_vs_latency.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "metrics_full-ranking.png").exists()
    md = (out / "results.md").read_text()
    assert "## synthetic — full-ranking (seed 0)" in md
    assert "> Leave-one-out by time" in md  # the protocol is stated above its table
    assert "**failed**" in md


def test_results_json_schema(run) -> None:
    _, _, out = run
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema_version"] == 1
    assert {
        "config",
        "recommenders",
        "baseline",
        "protocols",
        "datasets",
        "environment",
        "started_at",
        "duration_s",
        "rows",
    } <= set(doc)
    assert {"versions", "git_commit", "cpu_count", "platform"} <= set(doc["environment"])
    assert doc["config"]["seeds"] == [0]
    protocols = {r["protocol"] for r in doc["rows"]}
    assert protocols == {
        "full-ranking",
        "sampled-random",
        "sampled-popularity",
        "pairwise-auc",
        "cold-start",
        "cold-start-text",
    }
    for row in doc["rows"]:
        assert {
            "dataset",
            "protocol",
            "recommender",
            "name",
            "params",
            "seed",
            "status",
            "error",
            "metrics",
            "vs_baseline",
            "fit_time_s",
            "latency",
        } <= set(row)
        for metric in row["metrics"].values():
            assert {"mean", "ci_low", "ci_high", "n"} <= set(metric)
    full = [r for r in doc["rows"] if r["protocol"] == "full-ranking" and r["status"] == "ok"]
    for row in full:
        assert {
            "ndcg@3",
            "hr@5",
            "recall@5",
            "mrr@5",
            "auc",
            "diversity@3",
            "coverage@3",
            "novelty@3",
            "gini@3",
            "avg_popularity@3",
        } <= set(row["metrics"])
        assert {"p50_ms", "p95_ms", "p99_ms", "batch_users_per_s"} <= set(row["latency"])
    pair_labels = {r["recommender"] for r in doc["rows"] if r["protocol"] == "pairwise-auc"}
    assert {"item-mean-rating", "user-mean-rating", "item+user-mean-lr"} <= pair_labels


def test_failures_are_reported_and_do_not_stop_the_run(run) -> None:
    results, _, _ = run
    rows = {(r["protocol"], r["recommender"]): r for r in results["rows"]}
    broken = rows[("full-ranking", "broken-ease")]
    assert broken["status"] == "error" and "l2 must be above 0" in broken["error"]
    unknown = rows[("full-ranking", "no-such-recommender")]
    assert unknown["status"] == "error" and "unknown recommender" in unknown["error"]
    assert rows[("full-ranking", "ease")]["status"] == "ok"  # listed after the broken one


def test_models_beat_random_where_the_answer_is_known(run) -> None:
    results, _, _ = run
    rows = {(r["protocol"], r["recommender"]): r for r in results["rows"]}
    # probe-a and probe-b have one obvious unseen item each; itemknn must find them
    knn = rows[("full-ranking", "itemknn")]["metrics"]["hr@3"]["mean"]
    rnd = rows[("full-ranking", "random")]["metrics"]["hr@3"]["mean"]
    assert knn > rnd
    assert "p_ttest" in rows[("full-ranking", "itemknn")]["vs_baseline"]["ndcg@3"]


def test_per_user_arrays_are_kept(run) -> None:
    _, arrays, out = run
    with np.load(out / "per_user.npz", allow_pickle=False) as data:
        keys = data.files
    assert "synthetic|full-ranking|seed=0|itemknn|ndcg@3" in keys
    assert any(k.endswith("|pair_scores") for k in keys)


def test_same_config_and_seed_give_the_same_numbers(run) -> None:
    first, _, _ = run
    again, _ = run_benchmark(BenchConfig.from_dict(TINY), load=load)

    def accuracy(results):
        return {
            (r["protocol"], r["recommender"], m): v["mean"]
            for r in results["rows"]
            for m, v in r["metrics"].items()
        }

    a, b = accuracy(first), accuracy(again)
    assert a.keys() == b.keys()
    for key in a:
        assert (math.isnan(a[key]) and math.isnan(b[key])) or a[key] == b[key], key


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        BenchConfig.from_dict({"protocols": ["nope"]})
    with pytest.raises(ValueError, match="unknown benchmark config key"):
        BenchConfig.from_dict({"kk": [1]})
    path = tmp_path / "c.toml"
    path.write_text('datasets = ["synthetic"]\nk = [5]\nrecommenders = ["popularity"]\n')
    cfg = BenchConfig.from_file(path)
    assert cfg.k == (5,) and cfg.recommenders[0].name == "popularity"
