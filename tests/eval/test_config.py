"""Benchmark configs: bad ones refused with the offending key named, good ones read from JSON and
TOML files, and the dataclass API the harness uses unchanged."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path

import pytest

from hybridrec.errors import HybridrecError
from hybridrec.eval.config import (
    PROTOCOLS,
    BenchConfig,
    ConfigError,
    RecommenderSpec,
    _BenchModel,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- bad configs
@pytest.mark.parametrize(
    ("data", "key", "why"),
    [
        ({"users": "abc"}, "users", "valid integer"),
        ({"users": 0}, "users", "greater than or equal to 1"),
        ({"users": True}, "users", "valid integer"),  # a boolean is not a count
        ({"users": 200.0}, "users", "valid integer"),
        ({"negatives": "x"}, "negatives", "valid integer"),
        ({"negatives": 0}, "negatives", "greater than or equal to 1"),
        ({"bootstrap": -5}, "bootstrap", "greater than or equal to 0"),
        ({"k": [10, 0]}, "k[1]", "greater than or equal to 1"),
        ({"k": ["10"]}, "k[0]", "valid integer"),
        ({"k": []}, "k", "at least 1 item"),
        ({"k": [10, 10]}, "k", "duplicate"),
        ({"k": None}, "k", "valid tuple"),
        ({"seeds": [-1]}, "seeds[0]", "greater than or equal to 0"),
        ({"seeds": []}, "seeds", "at least 1 item"),
        ({"cold_start_frac": 0}, "cold_start_frac", "greater than 0"),
        ({"cold_start_frac": 1.0}, "cold_start_frac", "less than 1"),
        ({"cold_start_frac": "0.1"}, "cold_start_frac", "valid number"),
        ({"history_len": 0}, "history_len", "greater than or equal to 1"),
        ({"pairs_per_user": 0}, "pairs_per_user", "greater than or equal to 1"),
        ({"latency_requests": -1}, "latency_requests", "greater than or equal to 0"),
        ({"latency_warmup": -1}, "latency_warmup", "greater than or equal to 0"),
        ({"latency_batch": 0}, "latency_batch", "greater than or equal to 1"),
        ({"baseline": ""}, "baseline", "at least 1 character"),
        ({"protocols": ["nope"]}, "protocols[0]", "unknown protocol 'nope'"),
        ({"protocols": []}, "protocols", "at least 1 item"),
        ({"kk": [1]}, "kk", "unknown benchmark config key"),
        ({"datasets": []}, "datasets", "at least 1 item"),
        ({"datasets": [3]}, "datasets[0]", "not int"),
        ({"datasets": [""]}, "datasets[0]", "must not be empty"),
        ({"datasets": [{"format": "csv"}]}, "datasets[0]", "'path' or a 'name'"),
        ({"datasets": ["x", {"path": 5}]}, "datasets[1]", "'path' must be a non-empty string"),
        ({"datasets": [{"name": "x", "k_core": 0}]}, "datasets[0]", "'k_core' must be an integer"),
        ({"datasets": [{"name": "x", "k_core": "5"}]}, "datasets[0]", "'k_core' must be an"),
        ({"datasets": [{"name": "x", "k_core": True}]}, "datasets[0]", "'k_core' must be an"),
        ({"datasets": [{"name": "x", "k_core": 2.0}]}, "datasets[0]", "'k_core' must be an"),
        ({"recommenders": []}, "recommenders", "at least 1 item"),
        ({"recommenders": [5]}, "recommenders[0]", "registry name or a mapping"),
        ({"recommenders": [{"params": {}}]}, "recommenders[0].name", "required"),
        ({"recommenders": [{"name": ""}]}, "recommenders[0].name", "at least 1 character"),
        ({"recommenders": [{"name": "a", "lr": 1}]}, "recommenders[0].lr", "unknown key"),
        ({"recommenders": [{"name": "a", "params": []}]}, "recommenders[0].params", "dict"),
        ({"recommenders": ["ease", "ease"]}, "recommenders", "labels must be unique"),
        (
            {"recommenders": [{"name": "a", "candidates": {"source": "b", "n": 5}}]},
            "recommenders[0].candidates",
            "unknown key; known: name, params, label",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(data: dict, key: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        BenchConfig.from_dict(data)
    message = str(info.value)
    assert f"{key}: " in message and why in message, message
    assert "\n" not in message  # one problem, one line
    assert "pydantic" not in message and "For further information" not in message


def test_every_problem_is_listed_one_line_each() -> None:
    with pytest.raises(ConfigError) as info:
        BenchConfig.from_dict({"users": "abc", "negatives": "x", "bootstrap": -5})
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, HybridrecError)
    assert [p.split(":")[0] for p in err.problems] == ["users", "negatives", "bootstrap"]
    lines = str(err).splitlines()
    assert lines[0] == "invalid benchmark config (3 problems):"
    assert lines[1] == "  users: input should be a valid integer (got 'abc')"
    assert lines[3] == "  bootstrap: input should be greater than or equal to 0 (got -5)"


def test_a_config_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        BenchConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_the_constructor_checks_too() -> None:
    with pytest.raises(ConfigError, match="users: input should be a valid integer"):
        BenchConfig(users="abc")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="name: input should be a valid string"):
        RecommenderSpec(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("suffix", "text", "why"),
    [
        (".json", '{"users": ', "not valid JSON"),
        (".toml", "users = ", "not valid TOML"),
        (".json", '{"users": -3}', "users: input should be greater than or equal to 1"),
        (".toml", "bootstrap = -1\n", "bootstrap: input should be greater than or equal to 0"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, suffix: str, text: str, why: str) -> None:
    path = tmp_path / f"bench{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        BenchConfig.from_file(path)
    assert str(info.value).startswith(f"{path}: invalid benchmark config")
    assert why in str(info.value) and info.value.source == path


def test_a_config_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'{"datasets": ["caf\xe9.csv"]}')  # Latin-1
    with pytest.raises(ConfigError) as info:
        BenchConfig.from_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid benchmark config")
    assert "not UTF-8" in message and "0xe9" in message and "line 1, column 19" in message
    assert info.value.source == path


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_unreadable_configs_are_config_errors_naming_the_file(tmp_path: Path, suffix: str) -> None:
    missing = tmp_path / f"nope{suffix}"
    with pytest.raises(ConfigError, match="no such file") as info:
        BenchConfig.from_file(missing)
    assert str(info.value).startswith(str(missing))
    folder = tmp_path / f"folder{suffix}"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a folder") as info:
        BenchConfig.from_file(folder)
    assert str(info.value).startswith(str(folder))
    locked = tmp_path / f"locked{suffix}"
    locked.write_text("{}")
    locked.chmod(0o000)
    try:
        if not os.access(locked, os.R_OK):  # root reads anything
            with pytest.raises(ConfigError, match="cannot read the file") as info:
                BenchConfig.from_file(locked)
            assert str(info.value).startswith(str(locked))
    finally:
        locked.chmod(0o644)


@pytest.mark.parametrize(("suffix", "text"), [(".json", '{"users": 7}'), (".toml", "users = 7\n")])
def test_a_byte_order_mark_is_accepted(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"c{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # as Windows editors save UTF-8
    assert BenchConfig.from_file(path).users == 7


# --------------------------------------------------------------------------- good configs
def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text(
        json.dumps(
            {
                "datasets": [
                    "ml-latest-small",
                    {"path": "data/r.csv", "format": "csv", "sep": ";"},
                ],
                "protocols": ["full-ranking", "sampled"],
                "recommenders": [
                    "popularity",
                    {"name": "ease", "params": {"l2": 500.0}, "label": "EASE"},
                    {"name": "two-stage", "params": {"candidates": "ease", "n_candidates": 50}},
                ],
                "k": [5, 10],
                "seeds": [0, 1],
                "users": None,
                "cold_start_frac": 0.2,
            }
        )
    )
    cfg = BenchConfig.from_file(path)
    assert cfg.datasets == ("ml-latest-small", {"path": "data/r.csv", "format": "csv", "sep": ";"})
    assert cfg.protocols == ("full-ranking", "sampled") and cfg.k == (5, 10)
    assert cfg.seeds == (0, 1) and cfg.users is None and cfg.cold_start_frac == 0.2
    assert [r.label for r in cfg.recommenders] == ["popularity", "EASE", "two-stage"]
    assert cfg.recommenders[1].params == {"l2": 500.0}
    assert cfg.recommenders[2].params == {"candidates": "ease", "n_candidates": 50}
    assert cfg.negatives == 19  # keys left out keep their defaults


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text(
        'datasets = "synthetic"\n'  # a single value for a list
        "k = 5\n"
        "users = 50\n"
        "bootstrap = 0\n"
        "[[recommenders]]\n"
        'name = "popularity"\n'
        "[[recommenders]]\n"
        'name = "two-stage"\n'
        "[recommenders.params]\n"
        'candidates = "popularity"\n'
        "n_candidates = 20\n"
    )
    cfg = BenchConfig.from_file(path)
    assert cfg.datasets == ("synthetic",) and cfg.k == (5,) and cfg.users == 50
    assert cfg.bootstrap == 0
    assert cfg.recommenders[1].params == {"candidates": "popularity", "n_candidates": 20}


def test_toml_dataset_tables(tmp_path: Path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text(
        'recommenders = ["popularity"]\n'
        "[[datasets]]\n"
        'name = "ml-latest-small"\n'
        "[[datasets]]\n"
        'path = "ratings.csv"\n'
        'format = "csv"\n'
        "[datasets.columns]\n"
        'user_id = "uid"\n'
    )
    cfg = BenchConfig.from_file(path)
    assert cfg.datasets == (
        {"name": "ml-latest-small"},
        {"path": "ratings.csv", "format": "csv", "columns": {"user_id": "uid"}},
    )


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "benchmarks" / "configs").glob("*.json"))
    + sorted((REPO / "benchmarks" / "candidates").glob("*.json")),
)
def test_committed_benchmark_configs_load(path: Path) -> None:
    assert BenchConfig.from_file(path).datasets


# --------------------------------------------------------------------------- the dataclass API
def test_dataclass_api_is_unchanged() -> None:
    cfg = BenchConfig(datasets=["ml-latest-small"], recommenders=[RecommenderSpec("ease")])
    assert cfg.datasets == ("ml-latest-small",) and isinstance(cfg.recommenders, tuple)
    assert cfg.k == (10, 20) and cfg.recommenders[0].label == "ease"
    spec = RecommenderSpec("ease", {"l2": 9.0}, "E")  # positional, as other code uses it
    assert (spec.name, spec.params, spec.label) == ("ease", {"l2": 9.0}, "E")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.users = 5  # type: ignore[misc]
    assert BenchConfig() == BenchConfig.from_dict({})
    quick = BenchConfig.quick()
    assert quick.users == 200 and quick.k == (10,) and quick.protocols == PROTOCOLS


def test_to_dict_round_trips() -> None:
    cfg = BenchConfig.from_dict(
        {
            "datasets": ["x", {"path": "y.csv"}],
            "recommenders": ["popularity", {"name": "r", "params": {"n": 3}}],
        }
    )
    data = cfg.to_dict()
    assert data["recommenders"][1] == {"name": "r", "params": {"n": 3}, "label": "r"}
    assert json.loads(json.dumps(data))["k"] == [10, 20]  # plain JSON values
    assert BenchConfig.from_dict(data) == cfg
    assert BenchConfig.from_dict(json.loads(json.dumps(data))) == cfg


def test_with_recommenders() -> None:
    cfg = BenchConfig.quick().with_recommenders(
        (RecommenderSpec("ease"), RecommenderSpec("r", {"n": 5}))
    )
    assert [r.name for r in cfg.recommenders] == ["ease", "r"] and cfg.users == 200
    assert cfg.recommenders[1].params == {"n": 5}


def test_params_and_datasets_are_copies() -> None:
    params = {"l2": 1.0}
    dataset = {"path": "x.csv"}
    cfg = BenchConfig(datasets=[dataset], recommenders=[RecommenderSpec("ease", params)])
    params["l2"] = 2.0
    dataset["path"] = "other"
    assert cfg.recommenders[0].params == {"l2": 1.0} and cfg.datasets[0] == {"path": "x.csv"}


def test_model_and_dataclass_have_the_same_fields() -> None:
    assert list(_BenchModel.model_fields) == [f.name for f in dataclasses.fields(BenchConfig)]


def test_config_error_pickles() -> None:
    err = ConfigError(["users: bad", "k: bad"], source="c.json")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.problems == err.problems


# --------------------------------------------------------------------------- k-core datasets
def test_a_k_core_dataset_entry() -> None:
    from hybridrec.eval.config import dataset_k_core, dataset_label

    cfg = BenchConfig.from_dict(
        {"datasets": ["ml-latest-small", {"name": "ml-latest-small", "k_core": 5}]}
    )
    plain, core = cfg.datasets
    assert plain == "ml-latest-small" and core == {"name": "ml-latest-small", "k_core": 5}
    assert [dataset_label(d) for d in cfg.datasets] == ["ml-latest-small", "ml-latest-small-5core"]
    assert [dataset_k_core(d) for d in cfg.datasets] == [None, 5]
    assert dataset_label({"path": "data/r.csv", "k_core": 10}) == "r.csv-10core"
    assert dataset_label({"name": "x", "k_core": 5, "label": "mine"}) == "mine"
    assert BenchConfig.from_dict(cfg.to_dict()) == cfg


def test_a_k_core_entry_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text(
        'recommenders = ["popularity"]\n[[datasets]]\nname = "ml-latest-small"\nk_core = 5\n'
    )
    assert BenchConfig.from_file(path).datasets == ({"name": "ml-latest-small", "k_core": 5},)


def test_the_same_dataset_with_and_without_k_core_has_distinct_labels() -> None:
    cfg = BenchConfig.from_dict(
        {"datasets": [{"name": "d"}, {"name": "d", "k_core": 5}, {"name": "d", "k_core": 10}]}
    )
    assert len(cfg.datasets) == 3
    with pytest.raises(ConfigError, match="labels must be unique"):
        BenchConfig.from_dict({"datasets": [{"name": "d", "k_core": 5}, "d-5core"]})
