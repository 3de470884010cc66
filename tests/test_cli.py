"""The command line, run for real through click's runner on the embedded dataset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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
    assert set(rows[0]) == {"name", "kind", "target", "source"}


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


def test_fit_never_replaces_a_file_or_a_foreign_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "README").write_text("mine")
    note = tmp_path / "note.txt"
    note.write_text("mine too")
    for out in (project, note):
        for extra in ([], ["--overwrite"]):
            result = CliRunner().invoke(main, ["fit", "--out", str(out), *extra])
            assert result.exit_code == 1, result.output
            assert str(out) in result.output and "never replaces" in result.output
    assert (project / "README").read_text() == "mine" and (project / "src").is_dir()
    assert note.read_text() == "mine too"
    monkeypatch.chdir(project)
    result = CliRunner().invoke(main, ["fit", "--out", "."])
    assert result.exit_code == 1 and "is the current folder" in result.output
    assert "empty name" not in result.output


def test_fit_replaces_a_saved_model_only_with_overwrite(tmp_path: Path) -> None:
    model = tmp_path / "pop"
    assert invoke("fit", "--out", str(model)).exit_code == 0
    again = CliRunner().invoke(main, ["fit", "--out", str(model)])
    assert again.exit_code == 1 and "already holds a saved hybridrec model" in again.output
    assert "--overwrite" in again.output
    assert invoke("fit", "--out", str(model), "--overwrite").exit_code == 0


def test_data_info_says_when_there_are_no_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "plays.tsv"
    path.write_text("user_id\titem_id\n2\t51\n2\t52\n3\t51\n")
    doc = json.loads(invoke("data", "info", str(path), "--json").output)
    assert doc["timestamps"] is False and doc["first_timestamp"] is None
    text = invoke("data", "info", str(path)).output
    assert "no timestamps: row order stands in for time" in text
    assert "time          2018-09-24" not in text
    timed = invoke("data", "info", "ml-latest-small").output
    assert "time          1996-03-29 to 2018-09-24" in timed


def test_data_info_reads_a_local_folder_named_like_a_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures = Path(__file__).resolve().parent / "data" / "fixtures"
    shutil.copytree(fixtures / "ml-100k", tmp_path / "ml-100k")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["data", "info", "ml-100k", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["interactions"] == 7
    assert not (tmp_path / "cache").exists()


def test_recommend_says_when_the_text_is_ignored() -> None:
    from click.testing import CliRunner

    from hybridrec.cli import main

    result = CliRunner().invoke(
        main, ["recommend", "-r", "itemknn", "--text", "romantic comedy in Paris", "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "note: preference_text ignored: itemknn does not read it" in result.stderr
    assert "answered with the most popular items" in result.stderr
    assert len([line for line in result.stdout.splitlines() if line.strip()]) == 3


HETREC = Path(__file__).resolve().parent / "data" / "fixtures" / "hetrec" / "user_artists.dat"


def _tiny_bench_args(tmp_path: Path) -> list[str]:
    config = tmp_path / "tiny.json"
    config.write_text(
        json.dumps(
            {
                "datasets": [
                    {
                        "path": str(HETREC),
                        "format": "tsv",
                        "columns": {"user_id": "userID", "item_id": "artistID"},
                    }
                ],
                "protocols": ["full-ranking"],
                "recommenders": ["popularity"],
                "k": [3],
                "bootstrap": 5,
                "latency_requests": 2,
                "latency_warmup": 1,
            }
        )
    )
    return ["bench", str(config), "--quiet"]


@pytest.fixture
def no_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any run of the benchmark fails the test: the output checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark ran before the output folder was checked")

    monkeypatch.setattr("hybridrec.eval.bench.run_benchmark", refuse)


def test_bench_refuses_a_file_or_a_foreign_folder_before_running(
    tmp_path: Path, no_benchmark: None
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("mine")
    project = tmp_path / "project"
    project.mkdir()
    (project / "README").write_text("mine")
    for out, message in ((note, "is a file"), (project, "holds no hybridrec output")):
        result = CliRunner().invoke(main, ["bench", "--quick", "--out", str(out)])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
    assert note.read_text() == "mine" and sorted(p.name for p in project.iterdir()) == ["README"]


def test_bench_refuses_earlier_results_mixed_with_other_files(
    tmp_path: Path, no_benchmark: None
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    (out / "thesis.tex").write_text("mine")
    result = CliRunner().invoke(main, ["bench", "--quick", "--out", str(out)])
    assert result.exit_code == 1 and "thesis.tex" in result.output
    assert (out / "thesis.tex").read_text() == "mine"


def test_bench_refuses_an_unwritable_folder_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_benchmark: None
) -> None:
    import os

    out = tmp_path / "locked"
    out.mkdir()
    real_access = os.access

    def access(path, mode, **kwargs):  # as for a folder of someone else's, without write rights
        if mode & os.W_OK and Path(path) in (out, tmp_path):
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    result = CliRunner().invoke(main, ["bench", "--quick", "--out", str(out)])
    assert result.exit_code == 1 and "no permission to write" in result.output
    new = out / "new"
    result = CliRunner().invoke(main, ["bench", "--quick", "--out", str(new)])
    assert result.exit_code == 1 and "cannot create it: no permission" in result.output


def test_bench_replaces_its_own_earlier_output_without_a_flag(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke(*_tiny_bench_args(tmp_path), "--out", str(out)).exit_code == 0
    doc = json.loads((out / "results.json").read_text())
    first = doc["started_at"]
    assert doc["plots"] == ["accuracy_vs_latency.png", "metrics_full-ranking.png"]
    # a plot an earlier run drew (and recorded) that this run will not draw again ...
    (out / "metrics_old-protocol.png").write_bytes(b"an earlier run's plot")
    doc["plots"].append("metrics_old-protocol.png")
    (out / "results.json").write_text(json.dumps(doc))
    # ... and a file named like a plot that no run recorded (the user's)
    (out / "metrics_mine.png").write_bytes(b"mine")
    result = invoke(*_tiny_bench_args(tmp_path), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "results.json").read_text())["started_at"] != first
    assert not (out / "metrics_old-protocol.png").exists()  # the earlier run's: removed
    assert (out / "metrics_mine.png").read_bytes() == b"mine"  # not recorded: kept, and said
    assert "metrics_mine.png" in result.output and "kept" in result.output
    assert (out / "metrics_full-ranking.png").exists()


def test_bench_keeps_a_recorded_plot_changed_after_the_run(tmp_path: Path) -> None:
    import os

    out = tmp_path / "out"
    assert invoke(*_tiny_bench_args(tmp_path), "--out", str(out)).exit_code == 0
    doc = json.loads((out / "results.json").read_text())
    doc["plots"].append("metrics_gone.png")
    (out / "results.json").write_text(json.dumps(doc))
    later = (out / "results.json").stat().st_mtime_ns + 10**9
    (out / "metrics_gone.png").write_bytes(b"redrawn by the user after that run")
    os.utime(out / "metrics_gone.png", ns=(later, later))
    assert invoke(*_tiny_bench_args(tmp_path), "--out", str(out)).exit_code == 0
    assert (out / "metrics_gone.png").read_bytes() == b"redrawn by the user after that run"


@pytest.mark.parametrize(
    "files",
    [
        {"results.json": b'{"my": 1}\n', "results.md": b"# my notes\n"},
        {"results.json": b'{"my": 1}\n', "holiday.png": b"\x89PNG my holiday\n"},
        {"results.json": b'{"my": 1}\n', "results.md": b"# mine", "metrics_x.png": b"mine"},
        # the harness's keys, but a results.md that is not the benchmark's
        {
            "results.json": json.dumps(
                {"schema_version": 1, "rows": [], "config": {}, "environment": {}}
            ).encode(),
            "results.md": b"# my own results\n",
        },
    ],
)
def test_bench_never_takes_a_users_results_json_for_its_own(
    tmp_path: Path, files: dict[str, bytes], no_benchmark: None
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    result = CliRunner().invoke(main, [*_tiny_bench_args(tmp_path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "holds no hybridrec output" in result.output and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files


def test_bench_refuses_its_earlier_output_once_the_user_added_a_file(tmp_path: Path) -> None:
    out = tmp_path / "o2"
    assert invoke(*_tiny_bench_args(tmp_path), "--out", str(out)).exit_code == 0
    (out / "my-chart.png").write_bytes(b"\x89PNG my chart\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = CliRunner().invoke(main, [*_tiny_bench_args(tmp_path), "--out", str(out)])
    assert result.exit_code == 1 and "my-chart.png" in result.output, result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched


def test_bench_unknown_recommender_fails_before_loading_any_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_benchmark: None
) -> None:
    def no_loading(*args, **kwargs):
        raise AssertionError("a dataset was loaded before the recommenders were checked")

    monkeypatch.setattr("hybridrec.data.load_dataset", no_loading)
    for names in (["nope"], ["all", "nope"]):
        args = [x for n in names for x in ("-r", n)]
        result = CliRunner().invoke(
            main, ["bench", "--dataset", str(HETREC), *args, "--out", str(tmp_path / "o")]
        )
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert lines == [lines[0]] and lines[0].startswith("Error: unknown recommender 'nope'")
        assert "known: " in lines[0] and "popularity" in lines[0]
    assert not (tmp_path / "o").exists()
    result = CliRunner().invoke(
        main, ["bench", "--quick", "-r", "nope", "-r", "bogus", "--out", str(tmp_path / "o")]
    )
    assert "unknown recommenders 'nope', 'bogus'" in result.output


def test_bench_config_that_is_not_utf8_is_a_clean_error(
    tmp_path: Path, no_benchmark: None
) -> None:
    config = tmp_path / "c.json"
    config.write_bytes(b'{"datasets": ["caf\xe9.csv"]}')
    result = CliRunner().invoke(main, ["bench", str(config), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: {config}: invalid benchmark config: the file is not UTF-8" in result.output


def test_bench_users_zero_is_a_clean_error(tmp_path: Path, no_benchmark: None) -> None:
    result = CliRunner().invoke(main, ["bench", "--quick", "--users", "0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'--users': 0 is not in the range x>=1" in result.output


def test_a_saved_model_shows_its_own_titles_and_refuses_another_catalogue(tmp_path) -> None:
    from click.testing import CliRunner

    from hybridrec.cli import main

    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,rating,timestamp\nu1,1,5,1\nu1,2,4,2\nu2,2,5,3\nu2,3,5,4\n")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n1,Liar Liar (1997)\n2,Heat (1995)\n3,Casino (1995)\n")
    runner = CliRunner()
    fit = runner.invoke(
        main,
        ["fit", "--dataset", str(log), "--items", str(items), "-r", "popularity",
         "--out", str(tmp_path / "m")],
    )
    assert fit.exit_code == 0, fit.output
    shown = runner.invoke(main, ["recommend", "--model", str(tmp_path / "m"), "-u", "u1", "--json"])
    assert shown.exit_code == 0, shown.output
    assert [i["title"] for i in json.loads(shown.stdout)["items"]] == ["Casino (1995)"]
    model = str(tmp_path / "m")
    other = runner.invoke(
        main, ["recommend", "--model", model, "--dataset", "ml-latest-small", "-u", "u1"]
    )
    assert other.exit_code == 1 and "Traceback" not in other.output
    assert "fitted on the catalogue of 'log'" in other.output and "9742 items" in other.output


# --------------------------------------------------------------------------- recommend options
@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A popularity recommender and a similarity reranker fitted on the contract's synthetic
    dataset, saved."""
    import hybridrec
    from hybridrec.contract import synthetic_dataset

    ds = synthetic_dataset()
    root = tmp_path_factory.mktemp("models")
    out = {"popularity": root / "pop", "similarity": root / "sim"}
    hybridrec.create("popularity").fit(ds).save(out["popularity"])
    hybridrec.create_reranker("similarity").fit(ds).save(out["similarity"])
    return out


def test_recommend_on_unused_warn_is_the_default_and_prints_notes() -> None:
    args = ["recommend", "-r", "itemknn", "--history", "1,2", "--text", "heist", "-k", "3"]
    default = CliRunner().invoke(main, args)
    warn = CliRunner().invoke(main, [*args, "--on-unused", "warn"])
    for result in (default, warn):
        assert result.exit_code == 0, result.output
        assert "note: preference_text ignored: itemknn does not read it" in result.stderr
        assert "Warning" not in result.stderr  # reported once, as a note
    assert default.stdout == warn.stdout


def test_recommend_on_unused_raise_is_a_clean_error() -> None:
    result = CliRunner().invoke(
        main,
        [
            "recommend",
            "-r",
            "itemknn",
            "--history",
            "1,2",
            "--text",
            "heist",
            "--on-unused",
            "raise",
        ],
    )
    assert result.exit_code == 1
    assert "Error: itemknn does not read preference_text" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_recommend_on_unused_ignore_prints_no_notes() -> None:
    result = CliRunner().invoke(
        main,
        [
            "recommend",
            "-r",
            "itemknn",
            "--history",
            "1,2",
            "--text",
            "heist",
            "-k",
            "3",
            "--on-unused",
            "ignore",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "note:" not in result.stderr
    assert len([line for line in result.stdout.splitlines() if line.strip()]) == 3


def test_recommend_on_unused_rejects_other_values() -> None:
    result = CliRunner().invoke(main, ["recommend", "--user", "1", "--on-unused", "loud"])
    assert result.exit_code == 2 and "--on-unused" in result.output


def test_recommend_profile_builds_the_user_context(monkeypatch: pytest.MonkeyPatch) -> None:
    from hybridrec.recommender import Recommender

    seen = []
    real = Recommender.recommend

    def spy(self, user, *args, **kwargs):
        seen.append((user, kwargs))
        return real(self, user, *args, **kwargs)

    monkeypatch.setattr(Recommender, "recommend", spy)
    result = CliRunner().invoke(
        main,
        [
            "recommend",
            "--user",
            "1",
            "--profile",
            "age=25",
            "--profile",
            "gender=F",
            "--profile",
            'tags=["a", "b"]',
            "-k",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    ((user, kwargs),) = seen
    assert user.user_id == "1"
    assert dict(user.profile) == {"age": 25, "gender": "F", "tags": ["a", "b"]}
    assert kwargs["on_unused"] == "ignore"  # warn: the CLI prints the notes itself
    assert "note: profile ignored: popularity does not read it" in result.stderr


def test_recommend_profile_with_on_unused_raise_fails_cleanly() -> None:
    result = CliRunner().invoke(
        main, ["recommend", "--user", "1", "--profile", "age=25", "--on-unused", "raise"]
    )
    assert result.exit_code == 1
    assert "Error: popularity does not read profile" in result.stderr
    assert "Traceback" not in result.output


def test_recommend_profile_needs_key_value() -> None:
    result = CliRunner().invoke(main, ["recommend", "--user", "1", "--profile", "age"])
    assert result.exit_code == 2 and "--profile" in result.output and "KEY=VALUE" in result.output


@pytest.mark.parametrize(
    "extra",
    [
        ["-r", "itemknn"],
        ["-r", "popularity"],
        ["-p", "neighbours=20"],
        ["--recommender", "ease", "--param", "l2=1"],
    ],
)
def test_recommend_refuses_recommender_or_params_with_model(
    saved_models: dict[str, Path], extra: list[str]
) -> None:
    result = CliRunner().invoke(
        main, ["recommend", "--model", str(saved_models["popularity"]), "--user", "a-user0", *extra]
    )
    assert result.exit_code == 2, result.output
    assert "--model" in result.output and "-r/--recommender" in result.output


def test_recommend_model_without_recommender_still_works(saved_models: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        main,
        [
            "recommend",
            "--model",
            str(saved_models["popularity"]),
            "--user",
            "a-user0",
            "-k",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recommender"] == "popularity"


def test_recommend_saved_reranker_with_candidates(saved_models: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        main,
        [
            "recommend",
            "--model",
            str(saved_models["similarity"]),
            "--user",
            "a-user0",
            "--candidates",
            "b1, a1,b2,b1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    ids = [i["item_id"] for i in doc["items"]]
    assert sorted(ids) == ["b1", "b2"]  # a1 is in a-user0's history; b1 given twice
    assert doc["recommender"] == "similarity"
    assert all(i["stage"] == "similarity" and i["title"] for i in doc["items"])
    plain = CliRunner().invoke(
        main,
        [
            "recommend",
            "--model",
            str(saved_models["similarity"]),
            "--history",
            "a0,a1",
            "--candidates",
            "a5,b5",
            "-k",
            "1",
        ],
    )
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.split()[1] == "a5"  # a sci-fi history prefers the sci-fi item


def test_recommend_seen_candidates_say_why_nothing_came_back(
    saved_models: dict[str, Path],
) -> None:
    args = ["recommend", "--model", str(saved_models["similarity"]), "--user", "a-user0"]
    seen = CliRunner().invoke(main, [*args, "--candidates", "a1"])
    assert seen.exit_code == 0, seen.output
    assert seen.stdout == "" and "--include-seen" in seen.stderr  # a1 is in the history
    ranked = CliRunner().invoke(main, [*args, "--candidates", "a1,b1", "--include-seen", "--json"])
    assert ranked.exit_code == 0, ranked.output
    assert sorted(i["item_id"] for i in json.loads(ranked.stdout)["items"]) == ["a1", "b1"]


def test_recommend_saved_reranker_without_candidates_is_a_clean_error(
    saved_models: dict[str, Path],
) -> None:
    result = CliRunner().invoke(
        main, ["recommend", "--model", str(saved_models["similarity"]), "--user", "a-user0"]
    )
    assert result.exit_code != 0
    assert "--candidates" in result.output and "-r two-stage -p reranker=similarity" in (
        result.output
    )
    assert "candidates=[" not in result.output and "Traceback" not in result.output


def test_recommend_candidates_with_a_recommender() -> None:
    result = CliRunner().invoke(
        main, ["recommend", "-r", "popularity", "--user", "1", "--candidates", "356,50,2", "--json"]
    )
    assert result.exit_code == 0, result.output
    ids = [i["item_id"] for i in json.loads(result.stdout)["items"]]
    assert set(ids) <= {"356", "50", "2"} and ids  # user 1 has seen some of them
    model = CliRunner().invoke(
        main, ["recommend", "-r", "popularity", "--user", "1", "--candidates", "nope"]
    )
    assert model.exit_code == 1 and "nope" in model.stderr and "Traceback" not in model.output
    empty = CliRunner().invoke(main, ["recommend", "--user", "1", "--candidates", " , "])
    assert empty.exit_code == 2 and "--candidates" in empty.output


def test_recommend_profile_alone_is_a_request() -> None:
    result = CliRunner().invoke(main, ["recommend", "--profile", "age=25", "-k", "2"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 2
    assert "note: profile ignored: popularity does not read it" in result.stderr


def test_recommend_shows_explanations_and_stage_notes(tmp_path: Path, tiny_dirs) -> None:
    """A saved ``prompt`` model with ``explain=True`` (tiny random GPT-2: any text will do)."""
    import hybridrec as hr
    from hybridrec.contract import synthetic_dataset

    rec = hr.create("prompt", model=str(tiny_dirs["gpt2"]), prior_weight=0.0, explain=True,
                    n_candidates=6)  # fmt: skip
    folder = rec.fit(synthetic_dataset()).save(tmp_path / "prompt")
    args = ("recommend", "--model", str(folder), "--text", "space adventures", "-k", "2")
    doc = json.loads(invoke(*args, "--json").stdout)  # stderr: transformers' progress bars
    assert [i["rank"] for i in doc["items"]] == [1, 2]
    assert all("explanation" in i and "notes" in i for i in doc["items"])
    shown = [i["explanation"] for i in doc["items"] if i["explanation"]]
    assert shown  # the tiny model writes nonsense, but it writes
    text = invoke(*args).stdout
    assert all(f"why: {e}" in text for e in shown)
    # a long history goes to the retrieval stage: a note on how it was answered, not "unused"
    history = ",".join(f"a{i}" for i in range(1, 7))
    result = CliRunner().invoke(main, ["recommend", "--model", str(folder), "--history", history])
    assert "note: history of 6 items: ranked by embedding" in result.output
    assert "does not use it" not in result.output
