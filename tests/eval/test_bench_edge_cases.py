"""Edge cases of the harness found in review: -inf scores, implicit data, seeds, specs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import hybridrec as hr
from hybridrec.baselines.popularity import PopularityRecommender
from hybridrec.contract import synthetic_dataset
from hybridrec.eval.bench import expand_recommenders, run_benchmark
from hybridrec.eval.config import BenchConfig, RecommenderSpec
from hybridrec.eval.protocols import PairwiseAUC, Sampled
from hybridrec.eval.report import write_results
from hybridrec.eval.stats import paired_test


class ConstantScores(PopularityRecommender):
    """Scores every item the same: ``value`` (0 or -inf)."""

    name = "constant"
    value = 0.0

    def _score_all(self, users: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        return np.full((len(users), len(self.item_ids_)), self.value)

    _score_candidates = hr.Recommender._score_candidates  # gather from the dense rows


class MinusInfinity(ConstantScores):
    value = -np.inf


def test_sampled_protocol_ranks_minus_infinity_like_any_tie() -> None:
    ds = hr.load_dataset("ml-latest-small")
    proto = Sampled(ds, negatives=19, sampling="random", seed=0, users=60, k=(10,))
    zero = proto.evaluate(ConstantScores().fit(proto.fit_data))
    minus = proto.evaluate(MinusInfinity().fit(proto.fit_data))
    np.testing.assert_array_equal(zero.per_user["mrr"], minus.per_user["mrr"])
    assert minus.per_user["hr@10"].mean() < 0.8  # ~0.5 by chance, never a perfect 1.0


def _implicit(ds: hr.Dataset) -> hr.Dataset:
    inter = ds.interactions.copy()
    inter["rating"] = np.float32(np.nan)
    return ds.with_interactions(inter)


def test_implicit_data_skips_pairwise_auc_and_runs_the_rest() -> None:
    config = BenchConfig.from_dict(
        {
            "datasets": ["x"],
            "recommenders": ["popularity", "itemknn"],
            "k": [3],
            "bootstrap": 10,
            "latency_requests": 2,
            "latency_warmup": 1,
            "negatives": 5,
        }
    )
    results, _ = run_benchmark(config, load=lambda _: _implicit(synthetic_dataset()))
    statuses = {(r["protocol"], r["recommender"]): r["status"] for r in results["rows"]}
    assert statuses[("pairwise-auc", "(protocol)")] == "skipped"
    assert statuses[("full-ranking", "itemknn")] == "ok"
    assert statuses[("cold-start", "popularity")] == "ok"


def test_unrated_events_count_as_liked_in_pairs() -> None:
    ds = synthetic_dataset()
    inter = ds.interactions.copy()
    inter.loc[inter.index % 2 == 0, "rating"] = np.nan
    inter.loc[inter.index % 4 == 1, "rating"] = 1.0
    mixed = ds.with_interactions(inter)
    proto = PairwiseAUC(mixed, history_len=3, pairs_per_user=3, seed=0, users=None, k=(3,))
    pairs = proto.test_pairs
    assert (pairs.loc[pairs["rating"].isna(), "label"] == 1).all()
    ratings = [h.rating for ctx in proto.contexts(pairs) for h in ctx.history]
    assert None in ratings and not any(isinstance(r, float) and np.isnan(r) for r in ratings)


def test_refit_uses_the_new_vocabularies() -> None:
    def data(rows):
        return hr.Dataset.from_frames(pd.DataFrame(rows, columns=["user_id", "item_id"]))

    rec = hr.create("popularity")
    rec.fit(data([("a", "x"), ("b", "y")]))
    rec.recommend("a", k=1)  # builds the id lookups
    rec.fit(data([("c", "w"), ("b", "z"), ("b", "w")]))
    assert rec.recommend("c", k=1)[0].item_id == "z"
    assert rec.recommend("b", k=5) == []  # b has seen everything


def test_paired_test_on_constant_differences() -> None:
    result = paired_test(np.ones(3), np.zeros(3))
    assert np.isnan(result["p_ttest"])
    assert result["p_wilcoxon"] > 0.05  # three users can never be significant


def test_explicit_spec_wins_over_all() -> None:
    specs = expand_recommenders((RecommenderSpec("all"), RecommenderSpec("ease", {"l2": 9.0})))
    ease = [s for s in specs if s.label == "ease"]
    assert len(ease) == 1 and ease[0].params == {"l2": 9.0}
    assert specs[0].name == "random" and specs[1].name == "popularity"



def test_all_leaves_out_the_language_model_stages_unless_named() -> None:
    names = [s.name for s in expand_recommenders((RecommenderSpec("all"),))]
    assert "rerank" not in names and {"ease", "embedding", "two-stage"} <= set(names)
    named = expand_recommenders((RecommenderSpec("all"), RecommenderSpec("rerank", {}, "lm")))
    assert [s.label for s in named].count("lm") == 1


def test_several_seeds_get_their_own_plots_and_tables_line_up(tmp_path: Path) -> None:
    config = BenchConfig.from_dict(
        {
            "datasets": ["x"],
            "protocols": ["full-ranking"],
            "recommenders": ["popularity"],
            "k": [3],
            "seeds": [0, 1],
            "bootstrap": 3,
            "latency_requests": 2,
            "latency_warmup": 1,
        }
    )
    results, arrays = run_benchmark(config, load=lambda _: synthetic_dataset())
    write_results(results, arrays, tmp_path)
    assert (tmp_path / "metrics_full-ranking_x_seed1.png").exists()
    assert (tmp_path / "accuracy_vs_latency_x_seed0.png").exists()
    table = [
        line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| ")
    ]
    assert len({line.count("|") for line in table}) == 1  # header and rows have equal cells
    assert json.loads((tmp_path / "results.json").read_text())["config"]["seeds"] == [0, 1]


HETREC = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "hetrec" / "user_artists.dat"


def _small(datasets: list, **extra) -> BenchConfig:
    return BenchConfig.from_dict(
        {
            "datasets": datasets,
            "protocols": ["full-ranking"],
            "recommenders": ["popularity"],
            "k": [3],
            "bootstrap": 3,
            "latency_requests": 2,
            "latency_warmup": 1,
            **extra,
        }
    )


def test_a_dataset_mapping_is_loaded_with_its_options_and_labelled() -> None:
    entry = {
        "path": str(HETREC),
        "format": "tsv",
        "columns": {"user_id": "userID", "item_id": "artistID"},
    }
    results, _ = run_benchmark(_small([entry, {**entry, "label": "lastfm"}]))
    assert list(results["datasets"]) == ["user_artists.dat", "lastfm"]
    assert results["datasets"]["lastfm"]["interactions"] == 15
    ok = [(r["dataset"], r["recommender"]) for r in results["rows"] if r["status"] == "ok"]
    assert ok == [("user_artists.dat", "popularity"), ("lastfm", "popularity")]


def test_a_named_dataset_mapping_passes_its_options_to_the_loader() -> None:
    calls = []

    def load(source, **options):
        calls.append((source, options))
        return synthetic_dataset()

    results, _ = run_benchmark(_small(["x", {"name": "y", "like_threshold": 3.0}]), load=load)
    assert calls == [("x", {}), ("y", {"like_threshold": 3.0})]
    assert list(results["datasets"]) == ["x", "y"]


def test_bad_dataset_options_fail_before_any_run_naming_the_entry() -> None:
    from hybridrec.eval.config import ConfigError

    loaded = []

    def load(source, **options):
        if options:
            return hr.load_dataset(source, **options)
        loaded.append(source)
        return synthetic_dataset()

    config = _small(["x", {"path": str(HETREC), "format": "tsv", "sepp": "\t"}])
    with pytest.raises(ConfigError, match=r"datasets\[1\] \('user_artists.dat'\).*'sepp'"):
        run_benchmark(config, load=load)
    with pytest.raises(ConfigError, match=r"datasets\[0\].*unknown format 'tvs'"):
        run_benchmark(_small([{"path": str(HETREC), "format": "tvs"}]))


def test_dataset_labels_must_be_unique() -> None:
    from hybridrec.eval.config import ConfigError

    with pytest.raises(ConfigError, match="'user_artists.dat' repeated"):
        _small([{"path": str(HETREC)}, {"path": "elsewhere/user_artists.dat"}])
    with pytest.raises(ConfigError, match="the dataset's 'label' must be a non-empty string"):
        _small([{"path": str(HETREC), "label": ""}])


def test_no_eligible_users_skips_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "ones.csv"
    path.write_text("user_id,item_id,rating\nu1,a,5\nu2,b,4\nu3,c,3\nu4,a,5\n")
    config = _small([str(path)], protocols=["full-ranking", "sampled"], recommenders=["random"])
    results, _ = run_benchmark(config)
    rows = {r["protocol"]: r for r in results["rows"]}
    assert set(rows) == {"full-ranking", "sampled"}
    for row in rows.values():
        assert row["status"] == "skipped" and row["recommender"] == "(protocol)"
        assert row["error"].startswith("no test users with at least 3 interactions")
