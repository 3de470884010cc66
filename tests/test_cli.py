"""The command line, run for real through click's runner on the embedded dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from hybridrec.cli import main


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_help_is_fast_and_imports_no_heavy_library() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom hybridrec.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'sentence_transformers',"
        " 'langchain_core', 'matplotlib') if m in sys.modules]\nprint(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_recommenders_json() -> None:
    result = invoke("recommenders", "--json")
    rows = json.loads(result.output)
    by_name = {r["name"]: r for r in rows}
    assert by_name["ease"]["source"] == "builtin"
    assert set(rows[0]) == {"name", "target", "source"}


def test_data_info_json() -> None:
    result = invoke("data", "info", "ml-latest-small", "--json")
    info = json.loads(result.output)
    assert (info["users"], info["items"], info["interactions"]) == (610, 9742, 100836)
    assert sum(info["rating_histogram"].values()) == 100836


def test_data_info_missing_file_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["data", "info", str(tmp_path / "nope.csv")])
    assert result.exit_code != 0
    assert "nope.csv" in result.output and "Traceback" not in result.output


def test_fit_save_and_recommend_from_the_saved_model(tmp_path: Path) -> None:
    model = tmp_path / "pop"
    assert invoke("fit", "-r", "popularity", "--out", str(model)).exit_code == 0
    result = invoke("recommend", "--model", str(model), "--user", "1", "-k", "3", "--json")
    doc = json.loads(result.output)
    assert [i["rank"] for i in doc["items"]] == [1, 2, 3]
    assert doc["items"][0]["title"]  # titles come from the dataset
    text = invoke(
        "recommend", "-r", "itemknn", "-p", "neighbours=20", "--history", "1,2", "-k", "2"
    )
    assert text.exit_code == 0 and len(text.output.strip().splitlines()) == 2


def test_recommend_unknown_user_is_a_clean_error() -> None:
    result = CliRunner().invoke(main, ["recommend", "--user", "999999"])
    assert result.exit_code != 0 and "unknown user id(s): '999999'" in result.output


def test_bench_writes_results(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps(
            {
                "protocols": ["full-ranking"],
                "recommenders": ["random", "popularity"],
                "k": [10],
                "users": 30,
                "bootstrap": 20,
                "latency_requests": 5,
                "latency_warmup": 1,
            }
        )
    )
    out = tmp_path / "out"
    result = invoke("bench", str(config), "--out", str(out), "--quiet")
    assert "full-ranking" in result.output and "  popularity " in result.output
    doc = json.loads((out / "results.json").read_text())
    assert {r["recommender"] for r in doc["rows"]} == {"random", "popularity"}
