"""Generic files from the command line: format, separator and column options of ``data info``,
``fit``, ``recommend`` and ``bench`` (one shared set of options), and datasets given as mappings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hybridrec as hr
from hybridrec.cli import main

FIXTURES = Path(__file__).resolve().parent / "data" / "fixtures"
HETREC = FIXTURES / "hetrec" / "user_artists.dat"  # tab-separated: userID, artistID, weight
LASTFM = ("--column", "user_id=userID", "--column", "item_id=artistID")


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def info(*args: str) -> dict:
    result = run("data", "info", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "options",
    [
        ("--format", "csv", "--sep", "\t", *LASTFM),  # what a shell's $'\t' passes
        ("--format", "csv", "--sep", "\\t", *LASTFM),  # a literal backslash-t
        ("--format", "csv", "--sep", "tab", *LASTFM),
        ("--format", "tsv", *LASTFM),  # tsv splits on tabs, whatever the file's name
        ("--format", "tsv", "--column", "user_id=userID,item_id=artistID"),
    ],
)
def test_data_info_reads_the_hetrec_dat_file(options: tuple[str, ...]) -> None:
    doc = info(str(HETREC), *options)
    assert (doc["users"], doc["items"], doc["interactions"]) == (3, 13, 15)
    assert doc["explicit"] is False  # weight is a play count: left unmapped, implicit
    assert doc["timestamps"] is False


def test_format_tsv_splits_on_tabs_in_python_too() -> None:
    columns = {"user_id": "userID", "item_id": "artistID"}
    ds = hr.load_dataset(HETREC, format="tsv", columns=columns)
    assert ds.n_interactions == 15 and not ds.is_explicit
    with pytest.raises(hr.DataError, match="missing column 'userID'"):  # an explicit sep wins
        hr.load_dataset(HETREC, format="tsv", sep=",", columns=columns)


def test_weight_can_be_mapped_to_a_rating() -> None:
    doc = info(str(HETREC), "--format", "tsv", *LASTFM, "--column", "rating=weight",
               "--like-threshold", "1000")
    assert doc["explicit"] is True and doc["like_threshold"] == 1000
    assert doc["liked_share"] == pytest.approx(5 / 15)  # user 2's five artists


def test_fit_and_recommend_take_the_same_options(tmp_path: Path) -> None:
    items = tmp_path / "artists.tsv"
    items.write_text("id\tname\n51\tDuran Duran\n52\tMorcheeba\n")
    fit = run("fit", "--dataset", HETREC, "--format", "tsv", *LASTFM, "--out", tmp_path / "m")
    assert fit.exit_code == 0, fit.output
    result = run(
        "recommend", "--dataset", HETREC, "--format", "tsv", *LASTFM, "--items", items,
        "--item-column", "item_id=id,title=name", "--model", tmp_path / "m", "--user", "3",
        "-k", "2", "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [(i["item_id"], i["title"]) for i in doc["items"]] == [
        ("51", "Duran Duran"),
        ("52", "Morcheeba"),
    ]


@pytest.mark.parametrize("command", [["data", "info"], ["fit"], ["recommend"], ["bench"]])
def test_every_dataset_command_documents_the_options(command: list[str]) -> None:
    text = run(*command, "--help").output
    for flag in ("--format", "--sep", "--column", "--items", "--item-column", "--like-threshold",
                 "--lenient"):
        assert flag in text, (command, flag)


def test_options_a_format_does_not_take_are_a_clean_error() -> None:
    result = run("data", "info", "ml-latest-small", "--sep", "tab")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "format 'ml-latest' takes no option(s) ['sep']" in result.output
    assert "--sep" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sep", "ab"), "expected one character"),
        (("--column", "user_id"), "expected ROLE=COLUMN"),
        (("--column", "user_id=a", "--column", "user_id=b"), "mapped twice"),
        (("--item-column", "title=name"), "--item-column needs --items"),
        (("--column", "who=userID"), "unknown column role"),
    ],
)
def test_bad_dataset_options_are_clean_errors(args: tuple[str, ...], message: str) -> None:
    result = run("data", "info", HETREC, "--format", "tsv", *args)
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output


def _tiny_bench(tmp_path: Path, datasets: list) -> Path:
    config = tmp_path / "bench.json"
    config.write_text(
        json.dumps(
            {
                "datasets": datasets,
                "protocols": ["full-ranking"],
                "recommenders": ["random", "popularity"],
                "k": [3],
                "bootstrap": 5,
                "latency_requests": 2,
                "latency_warmup": 1,
            }
        )
    )
    return config


def test_bench_dataset_option_takes_a_path_and_the_dataset_options(tmp_path: Path) -> None:
    config = _tiny_bench(tmp_path, ["ml-latest-small"])
    out = tmp_path / "out"
    result = run("bench", config, "--dataset", HETREC, "--format", "tsv", *LASTFM,
                 "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert list(doc["datasets"]) == ["user_artists.dat"]
    assert {r["dataset"] for r in doc["rows"]} == {"user_artists.dat"}
    assert doc["config"]["datasets"] == [
        {
            "path": str(HETREC),
            "format": "tsv",
            "columns": {"user_id": "userID", "item_id": "artistID"},
        }
    ]


def test_bench_dataset_options_need_a_dataset(tmp_path: Path) -> None:
    result = run("bench", "--quick", "--sep", "tab", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "apply to --dataset" in result.output
    assert not (tmp_path / "out").exists()


def test_bench_config_with_a_dataset_mapping_and_a_label(tmp_path: Path) -> None:
    entry = {
        "path": str(HETREC),
        "label": "lastfm",
        "format": "csv",
        "sep": "\t",
        "columns": {"user_id": "userID", "item_id": "artistID"},
    }
    out = tmp_path / "out"
    result = run("bench", _tiny_bench(tmp_path, [entry]), "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "lastfm · full-ranking" in result.output
    doc = json.loads((out / "results.json").read_text())
    assert list(doc["datasets"]) == ["lastfm"] and doc["datasets"]["lastfm"]["interactions"] == 15


def test_bench_config_with_a_bad_dataset_option_names_the_entry(tmp_path: Path) -> None:
    entry = {"path": str(HETREC), "format": "tsv", "colums": {"user_id": "userID"}}
    result = run("bench", _tiny_bench(tmp_path, [entry]), "--out", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "datasets[0] ('user_artists.dat')" in result.output and "'colums'" in result.output


def test_the_items_file_can_be_given_a_format(tmp_path: Path) -> None:
    for name, text, fmt in (
        ("artists.dat", "id\tname\n51\tDuran Duran\n", "tsv"),
        ("artists.txt", "id,name\n51,Duran Duran\n", "csv"),  # comma, though the log is tsv
        ("artists.ndj", '{"id": "51", "name": "Duran Duran"}\n', "jsonl"),
    ):
        (tmp_path / name).write_text(text)
        result = run(
            "recommend", "--dataset", HETREC, "--format", "tsv", *LASTFM,
            "--items", tmp_path / name, "--items-format", fmt,
            "--item-column", "item_id=id,title=name", "--user", "3", "-k", "1", "--json",
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["items"][0]["title"] == "Duran Duran"
