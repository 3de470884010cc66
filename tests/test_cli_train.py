"""``hybridrec train-reranker CONFIG``: a real run with the tiny model on the contract's synthetic
data (written to csv files), and bad input refused with the key or file named, before training."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hybridrec
from hybridrec.cli import main

USERS = ["probe-a", "probe-b", "a-user3"]
LISTS = [["a0", "b0", "a5"], ["b1", "a1"], ["a2"]]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread: the tiny model gains nothing from more (and the machine is shared)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The contract's synthetic dataset as an interactions csv and a catalogue csv."""
    from hybridrec.contract import synthetic_dataset

    ds = synthetic_dataset()
    root = tmp_path_factory.mktemp("data")
    inter = ds.interactions.copy()
    inter["user_id"] = ds.user_ids[inter.pop("user").to_numpy()]
    inter["item_id"] = ds.item_ids[inter.pop("item").to_numpy()]
    inter[["user_id", "item_id", "rating", "timestamp"]].to_csv(root / "ratings.csv", index=False)
    items = ds.items[["item_id", "title", "description", "genres"]].copy()
    items["genres"] = items["genres"].map("|".join)
    items.to_csv(root / "items.csv", index=False)
    return {"ratings": root / "ratings.csv", "items": root / "items.csv"}


def write_config(folder: Path, data_files: dict[str, Path], extra: str = "", **over: str) -> Path:
    """A config training the tiny model for one epoch on the synthetic data."""
    reranker = {
        "model": '"tiny-gpt2"',
        "task": '"ranking"',
        "shots": "16",
        **over,
    }
    text = "\n".join(
        [
            "[dataset]",
            f"path = {json.dumps(str(data_files['ratings']))}",
            f"items = {json.dumps(str(data_files['items']))}",
            'list_columns = {genres = "|"}',
            "[reranker]",
            *(f"{k} = {v}" for k, v in reranker.items()),
            "[reranker.training]",
            'strategy = "full"',
            "num_train_epochs = 1",
            extra,
        ]
    )
    path = folder / "train.toml"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any fit of the lm reranker fails the test: the checks must come first."""
    from hybridrec.rerank.lm import LMReranker

    def refuse(*args, **kwargs):
        raise AssertionError("the reranker was trained before the checks")

    monkeypatch.setattr(LMReranker, "fit", refuse)


def test_train_save_load_and_recommend(tmp_path: Path, data_files: dict[str, Path]) -> None:
    config = write_config(tmp_path, data_files)
    out = tmp_path / "model"
    result = invoke("train-reranker", config, "--out", out)
    assert result.exit_code == 0, result.output
    assert "steps" in result.stdout and f"saved to {out}" in result.stdout
    assert "best validation AUC" in result.stdout
    assert (out / "manifest.json").is_file() and (out / "lm" / "manifest.json").is_file()

    loaded = hybridrec.load(out)
    assert loaded.name == "lm" and loaded.get_params()["shots"] == 16
    assert loaded.training_config().strategy == "full"
    # scores equal those of the same settings fitted in this process (same seed, one thread)
    from hybridrec.contract import synthetic_dataset

    direct = hybridrec.create_reranker(
        "lm", model="tiny-gpt2", task="ranking", shots=16,
        training={"strategy": "full", "num_train_epochs": 1},
    ).fit(synthetic_dataset())  # fmt: skip
    for a, b in zip(
        loaded.score_candidates(USERS, LISTS), direct.score_candidates(USERS, LISTS), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)

    rec = invoke(
        "recommend", "--model", out, "--user", "probe-a", "--candidates", "a0,b3,b4", "--json"
    )
    assert rec.exit_code == 0, rec.output
    doc = json.loads(rec.stdout)
    assert doc["recommender"] == "lm" and sorted(i["item_id"] for i in doc["items"]) == [
        "a0", "b3", "b4"
    ]  # fmt: skip
    bare = invoke("recommend", "--model", out, "--user", "probe-a")
    assert bare.exit_code != 0 and "--candidates" in bare.output

    again = invoke("train-reranker", config, "--out", out)  # a saved model: only --overwrite
    assert again.exit_code != 0 and "overwrite" in again.output


def test_dry_run_trains_and_writes_nothing(
    tmp_path: Path, data_files: dict[str, Path], no_training: None
) -> None:
    config = write_config(tmp_path, data_files, 'learning_rate = 5e-4\n[reranker.prompt]\n'
                          "history_items = 3")  # fmt: skip
    out = tmp_path / "model"
    result = invoke("train-reranker", config, "--out", out, "--dry-run")
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert "nothing trained or written" in result.stdout
    assert "32 users, 20 items" in result.stdout  # the dataset was loaded
    assert '"learning_rate": 0.0005' in result.stdout and '"history_items": 3' in result.stdout
    assert '"max_grad_norm": 1.0' in result.stdout  # the defaults, resolved


def test_out_from_the_config_and_dataset_from_the_command_line(
    tmp_path: Path, data_files: dict[str, Path], no_training: None, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.toml"
    config.write_text('out = "from-config"\n[reranker]\nshots = 4\n', encoding="utf-8")
    result = invoke(
        "train-reranker", config, "--dry-run", "--dataset", data_files["ratings"],
        "--items", data_files["items"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "from-config") in result.stdout and "ratings.csv" in result.stdout
    neither = invoke("train-reranker", config, "--dry-run")
    assert neither.exit_code == 1 and "dataset: required" in neither.output


def test_missing_config_file(tmp_path: Path) -> None:
    result = invoke("train-reranker", tmp_path / "nope.toml")
    assert result.exit_code == 1
    assert "nope.toml" in result.output and "no such file" in result.output
    assert "Traceback" not in result.output


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('dataset = "ml-latest-small"\n[reranker\nshots = 3\n', encoding="utf-8")
    result = invoke("train-reranker", config, "--out", tmp_path / "m")
    assert result.exit_code == 1
    assert "bad.toml" in result.output and "not valid TOML" in result.output
    assert "line 2" in result.output


def test_unknown_keys_are_named_at_every_level(
    tmp_path: Path, data_files: dict[str, Path], no_training: None
) -> None:
    config = write_config(
        tmp_path, data_files, "lr = 0.1\n[reranker.prompt]\nhistory = 3\n[reranker.samples]\n"
        "negatives = 2", shot="4",
    )  # fmt: skip
    text = config.read_text(encoding="utf-8")
    config.write_text("epochs = 3\n" + text, encoding="utf-8")
    result = invoke("train-reranker", config, "--out", tmp_path / "m")
    assert result.exit_code == 1, result.output
    for key in (
        "epochs: unknown key",
        "reranker.shot: unknown key",
        "reranker.training.lr: unknown key",
        "reranker.prompt.history: unknown key",
        "reranker.samples.negatives: unknown key for the ranking task",
    ):
        assert key in result.output, (key, result.output)
    assert not (tmp_path / "m").exists()


def test_wrong_types_are_named(
    tmp_path: Path, data_files: dict[str, Path], no_training: None
) -> None:
    config = write_config(
        tmp_path, data_files, 'batch_size = "eight"\n[reranker.prompt]\nshow_genres = "yes"'
        "\n[reranker.samples]\nmin_history = -5",
        shots='"many"', head='"decoder"',
    )  # fmt: skip
    result = invoke("train-reranker", config, "--out", tmp_path / "m")
    assert result.exit_code == 1, result.output
    assert "reranker.shots: shots must be an integer, not 'many'" in result.output
    assert "reranker.head: unknown head 'decoder'" in result.output
    assert "reranker.training.batch_size: input should be a valid integer" in result.output
    assert "reranker.prompt.show_genres: show_genres must be True or False" in result.output
    assert "reranker.samples: min_history must be at least 0, not -5" in result.output
    assert "Traceback" not in result.output


def test_a_foreign_folder_is_refused_before_training(
    tmp_path: Path, data_files: dict[str, Path], no_training: None
) -> None:
    config = write_config(tmp_path, data_files)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    for extra in ([], ["--overwrite"], ["--dry-run"]):
        result = invoke("train-reranker", config, "--out", out, *extra)
        assert result.exit_code == 1, result.output
        assert str(out) in result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"
