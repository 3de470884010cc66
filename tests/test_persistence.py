"""Saved models: atomic folders, manifests, checksums and clear refusals."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import hybridrec as hr
from hybridrec.baselines.itemknn import ItemKNNRecommender
from hybridrec.baselines.popularity import PopularityRecommender
from hybridrec.contract import synthetic_dataset
from hybridrec.errors import OutputPathError
from hybridrec.persistence import (
    atomic_directory,
    atomic_write_text,
    check_output_dir,
    load_arrays,
    read_manifest,
    save_arrays,
    write_manifest,
)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return hr.create("popularity").fit(synthetic_dataset()).save(tmp_path / "model")


def test_manifest_records_what_loading_checks(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["recommender"] == "popularity"
    assert manifest["format"] == "hybridrec-model"
    assert "state.npz" in manifest["files"]
    assert manifest["versions"]["numpy"]
    assert manifest["params"] == {"liked_only": False}


def test_missing_folder_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(hr.ModelFileError, match="no such model folder"):
        hr.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(hr.ModelFileError, match="no manifest.json"):
        hr.load(tmp_path / "empty")


def test_corrupted_manifest(saved: Path) -> None:
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(hr.ModelFileError, match="corrupted manifest"):
        hr.load(saved)


def test_newer_format_is_refused(saved: Path) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["format_version"] = 99
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(hr.ModelFileError, match="newer than this hybridrec"):
        hr.load(saved)


def test_missing_state_file(saved: Path) -> None:
    (saved / "state.npz").unlink()
    with pytest.raises(hr.ModelFileError, match="state.npz listed in the manifest is missing"):
        hr.load(saved)


def test_loading_with_the_wrong_class(saved: Path) -> None:
    with pytest.raises(hr.ModelFileError, match="holds a 'popularity' recommender, not 'itemknn'"):
        ItemKNNRecommender.load(saved)


def test_pickled_arrays_are_never_loaded(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="dtype object"):
        save_arrays(tmp_path / "a.npz", {"x": np.array([{"evil": 1}], dtype=object)})
    np.savez(tmp_path / "b.npz", x=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(hr.ModelFileError, match="cannot read arrays"):
        load_arrays(tmp_path / "b.npz")


def test_failed_save_keeps_the_previous_model(saved: Path) -> None:
    before = read_manifest(saved)
    with pytest.raises(RuntimeError), atomic_directory(saved, overwrite=True) as tmp:
        (tmp / "half-written").write_text("x")
        raise RuntimeError("crash mid-save")
    assert read_manifest(saved) == before
    assert not list(saved.parent.glob(".model.tmp-*"))


def test_save_over_an_existing_model_needs_overwrite(saved: Path) -> None:
    rec = hr.create("itemknn").fit(synthetic_dataset())
    with pytest.raises(OutputPathError, match="already holds a saved hybridrec model.*overwrite"):
        rec.save(saved)
    assert type(hr.load(saved)).__name__ == "PopularityRecommender"
    rec.save(saved, overwrite=True)
    assert type(hr.load(saved)).__name__ == "ItemKNNRecommender"
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model"]  # no temporary left


def test_unfitted_save_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(hr.NotFittedError):
        hr.create("ease").save(tmp_path / "x")
    with pytest.raises(hr.NotFittedError):
        hr.create("ease").recommend("1")


# --------------------------------------------------------------------------- where saving may write
def fitted() -> PopularityRecommender:
    return PopularityRecommender().fit(synthetic_dataset())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_a_folder_holding_other_files_is_never_replaced(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "README").write_text("my project")
    (project / "src" / "a.py").write_text("print(1)")
    before = snapshot(project)
    for overwrite in (False, True):
        with pytest.raises(OutputPathError, match=r"project: folder is not empty.*README, src"):
            fitted().save(project, overwrite=overwrite)
        with pytest.raises(OutputPathError, match="never replaces"):
            check_output_dir(project, overwrite=overwrite)
    assert snapshot(project) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]  # no lock, no temporary


def test_a_file_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(OutputPathError, match="notes.txt: is a file.*never replaces a file"):
            fitted().save(target, overwrite=overwrite)
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    inside = target / "model"  # a path under a file cannot be created
    with pytest.raises(OutputPathError, match="is not a folder"):
        check_output_dir(inside)


def test_an_empty_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    folder = fitted().save(tmp_path / "empty")
    assert hr.load(folder).is_fitted


def test_a_model_folder_with_foreign_files_is_not_replaced(saved: Path) -> None:
    (saved / "my-notes.txt").write_text("results of the run")
    with pytest.raises(OutputPathError, match="files that are not part of it.*my-notes.txt"):
        fitted().save(saved, overwrite=True)
    assert (saved / "my-notes.txt").read_text() == "results of the run"


def test_current_folder_and_above_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for path in (".", "", "..", str(work)):
        with pytest.raises(OutputPathError, match="current folder|above the current"):
            fitted().save(path, overwrite=True)
    # even when the current folder is empty: it would be replaced under the shell's feet
    assert list(work.iterdir()) == []
    assert fitted().save("model").is_dir()  # a relative sub-folder is fine


def test_symbolic_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OutputPathError, match="symbolic link"):
        fitted().save(tmp_path / "link", overwrite=True)


def test_check_output_dir(tmp_path: Path, saved: Path) -> None:
    assert check_output_dir(tmp_path / "a" / "b" / "c") == tmp_path / "a" / "b" / "c"
    assert not (tmp_path / "a").exists()  # checking creates nothing
    with pytest.raises(OutputPathError, match="already holds"):
        check_output_dir(saved)
    assert check_output_dir(saved, overwrite=True) == saved
    # callers with their own kind of output say what they recognise
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results.json").write_text("{}")
    with pytest.raises(OutputPathError, match="already holds earlier output"):
        check_output_dir(tmp_path / "bench", ours=lambda p: (p / "results.json").is_file())
    assert check_output_dir(
        tmp_path / "bench", overwrite=True, ours=lambda p: (p / "results.json").is_file()
    )


def test_cli_fit_checks_the_output_before_fitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from hybridrec.cli import main

    project = tmp_path / "project"
    project.mkdir()
    (project / "README").write_text("x")
    fits = []
    monkeypatch.setattr(PopularityRecommender, "_fit", lambda self, train: fits.append(1))
    result = CliRunner().invoke(main, ["fit", "--out", str(project), "--overwrite"])
    assert result.exit_code != 0 and "never replaces" in result.output
    assert fits == [] and (project / "README").read_text() == "x"


# --------------------------------------------------------------------------- two processes
needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork"
)


class SlowSave(PopularityRecommender):
    """Saving takes long enough for a second process to arrive meanwhile."""

    def _save_extra(self, folder: Path) -> None:
        time.sleep(0.5)


def _save_in_child(path: str, overwrite: bool, barrier, results) -> None:  # noqa: ANN001
    rec = SlowSave().fit(synthetic_dataset())
    barrier.wait()
    try:
        rec.save(path, overwrite=overwrite)
        results.put(("ok", ""))
    except BaseException as err:  # noqa: BLE001 - everything is reported to the parent
        results.put((type(err).__name__, str(err)))


@needs_fork
@pytest.mark.parametrize("overwrite", [False, True])
def test_two_processes_saving_the_same_folder(tmp_path: Path, overwrite: bool) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    target = tmp_path / "model"
    procs = [
        ctx.Process(target=_save_in_child, args=(str(target), overwrite, barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes[0] == ("OutputPathError", outcomes[0][1]), outcomes
    assert outcomes[1] == ("ok", ""), outcomes
    assert "another process is saving" in outcomes[0][1] or "already holds" in outcomes[0][1]
    assert hr.load(target).is_fitted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no lock or temporary left


def _save_once(path: str, results) -> None:  # noqa: ANN001
    try:
        fitted().save(path)
        results.put(("ok", ""))
    except BaseException as err:  # noqa: BLE001
        results.put((type(err).__name__, str(err)))


@needs_fork
def test_a_save_in_progress_locks_out_another_process(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "state.npz").write_bytes(b"")
        child = ctx.Process(target=_save_once, args=(str(target), results))
        child.start()
        kind, message = results.get(timeout=60)
        child.join(timeout=60)
    assert kind == "OutputPathError"
    assert "another process is saving to this folder" in message and ".model.lock" in message
    assert not (tmp_path / ".model.lock").exists()


def test_a_stale_lock_file_does_not_block(tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("locks are files created with O_EXCL on Windows")
    (tmp_path / ".model.lock").write_text("12345\n")  # left by a process that was killed
    assert hr.load(fitted().save(tmp_path / "model")).is_fitted
    assert not (tmp_path / ".model.lock").exists()


# --------------------------------------------------------------------------- integrity
def test_swapped_state_with_an_emptied_file_list_is_refused(tmp_path: Path, saved: Path) -> None:
    other = hr.create("itemknn").fit(synthetic_dataset()).save(tmp_path / "other")
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"] = {}
    (saved / "manifest.json").write_text(json.dumps(manifest))
    shutil.copy(other / "state.npz", saved / "state.npz")
    with pytest.raises(hr.ModelFileError, match="state.npz is not listed in the manifest"):
        hr.load(saved)
    del manifest["files"]
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(hr.ModelFileError, match="no valid 'files' list"):
        hr.load(saved)


def test_unlisted_and_unsafe_files_are_refused(saved: Path) -> None:
    (saved / "extra.npz").write_bytes(b"x")
    with pytest.raises(hr.ModelFileError, match="extra.npz not listed in the manifest"):
        hr.load(saved)
    (saved / "extra.npz").unlink()
    (saved / ".DS_Store").write_bytes(b"x")  # what a file browser drops is ignored
    assert hr.load(saved).is_fitted
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"]["../outside"] = "0" * 64
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(hr.ModelFileError, match="unsafe file name '../outside'"):
        hr.load(saved)


class WithIndex(PopularityRecommender):
    """Saves a nested artifact with its own manifest, as the embedding retriever does."""

    def _save_extra(self, folder: Path) -> None:
        (folder / "index").mkdir()
        (folder / "index" / "vectors.bin").write_bytes(b"vectors")
        write_manifest(folder / "index", {"artifact": "test-index"})

    def _load_extra(self, folder: Path, manifest: dict) -> None:
        read_manifest(folder / "index")
        self.vectors_ = (folder / "index" / "vectors.bin").read_bytes()


def test_nested_files_are_checked(tmp_path: Path) -> None:
    folder = WithIndex().fit(synthetic_dataset()).save(tmp_path / "m")
    files = read_manifest(folder)["files"]
    assert {"state.npz", "index/vectors.bin", "index/manifest.json"} <= set(files)
    assert WithIndex.load(folder).vectors_ == b"vectors"
    # a folder saved before nested manifests were listed still loads
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]["index/manifest.json"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert WithIndex.load(folder).vectors_ == b"vectors"
    # but a nested file cannot be swapped, nor dropped from the list
    (folder / "index" / "vectors.bin").write_bytes(b"other vectors")
    with pytest.raises(hr.ModelFileError, match="vectors.bin: checksum mismatch"):
        WithIndex.load(folder)
    del manifest["files"]["index/vectors.bin"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(hr.ModelFileError, match="index/vectors.bin not listed"):
        WithIndex.load(folder)


def test_older_format_warns_and_bad_version_is_refused(
    saved: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    del manifest["format_version"]
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="hybridrec.persistence"):
        assert hr.load(saved).is_fitted
    assert "older format (version 0" in caplog.text
    manifest["format_version"] = "1"
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(hr.ModelFileError, match="format_version '1'"):
        hr.load(saved)


# --------------------------------------------------------------------------- permissions
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saved_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        folder = fitted().save(tmp_path / "model")
        atomic_write_text(tmp_path / "results.json", "{}")
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o750
    assert (folder / "manifest.json").stat().st_mode & 0o777 == 0o640
    assert (folder / "state.npz").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o640
    os.chmod(tmp_path / "results.json", 0o604)  # a replaced file keeps its mode
    atomic_write_text(tmp_path / "results.json", "{}")
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o604


# --------------------------------------------------------------------------- loads while saving
needs_flock = pytest.mark.skipif(sys.platform == "win32", reason="reads are locked with flock")


def _first_user_top5(rec) -> list[str]:  # noqa: ANN001
    return [r.item_id for r in rec.recommend(synthetic_dataset().user_ids[0], k=5)]


@pytest.fixture(scope="module")
def two_models() -> dict[str, object]:
    ds = synthetic_dataset()
    return {name: hr.create(name).fit(ds) for name in ("itemknn", "popularity")}


def _load_while_saving(
    path: Path, models: dict, *, locked: bool, saves: int = 20, threads: int = 4
) -> tuple[dict[str, int], list[str], list[BaseException]]:
    """``threads`` threads load ``path`` in a loop (at most 300 loads in all) while this
    thread saves the two models in turn over it ``saves`` times."""
    from hybridrec.persistence import reading

    expected = {name: _first_user_top5(m) for name, m in models.items()}
    done = threading.Event()
    lock = threading.Lock()
    loaded: dict[str, int] = {}
    refused: list[str] = []
    problems: list[BaseException] = []

    def loader() -> None:
        while not done.is_set():
            with lock:
                if sum(loaded.values()) + len(refused) >= 300:
                    return
            try:
                if locked:
                    with reading(path):
                        rec = hr.load(path)
                else:
                    rec = hr.load(path)
                top = _first_user_top5(rec)
                assert top == expected[rec.name], f"{rec.name} recommends {top}"
                with lock:
                    loaded[rec.name] = loaded.get(rec.name, 0) + 1
            except hr.ModelFileError as err:
                with lock:
                    refused.append(str(err))
            except BaseException as err:  # noqa: BLE001 - reported to the test
                with lock:
                    problems.append(err)

    workers = [threading.Thread(target=loader) for _ in range(threads)]
    for w in workers:
        w.start()
    try:
        for i in range(saves):
            models["popularity" if i % 2 else "itemknn"].save(path, overwrite=True)
    finally:
        done.set()
        for w in workers:
            w.join(timeout=120)
    return loaded, refused, problems



@needs_flock
def test_loads_under_reading_never_see_a_half_replaced_model(
    tmp_path: Path, two_models: dict
) -> None:
    path = two_models["itemknn"].save(tmp_path / "m")
    loaded, refused, problems = _load_while_saving(path, two_models, locked=True)
    assert not problems and not refused, (problems[:3], refused[:3])
    assert sum(loaded.values()) > 0
    assert hr.load(path).name == "popularity"  # the last save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no lock, gate or backup left


def test_plain_loads_while_saving_fail_only_with_model_file_errors(
    tmp_path: Path, two_models: dict
) -> None:
    """Without a lock around the whole load (hr.load reads the manifest, then the class's
    load reads it again and the arrays), a load may still meet the other model; it must then
    be a ModelFileError naming the folder, never a bare OSError or a mixed model."""
    path = two_models["itemknn"].save(tmp_path / "m")
    loaded, refused, problems = _load_while_saving(path, two_models, locked=False)
    assert not problems, problems[:3]
    assert sum(loaded.values()) > 0
    assert all(str(path) in message for message in refused), refused[:3]


_LOAD_LOOP = """
import json, sys, time
from pathlib import Path
import hybridrec as hr
from hybridrec.contract import synthetic_dataset
from hybridrec.persistence import reading
path, stop = Path(sys.argv[1]), Path(sys.argv[2])
user = synthetic_dataset().user_ids[0]
seen, errors = {}, []
Path(sys.argv[3]).write_text("ready")
for _ in range(300):
    if stop.exists():
        break
    try:
        with reading(path):
            rec = hr.load(path)
        key = rec.name + ":" + ",".join(r.item_id for r in rec.recommend(user, k=5))
        seen[key] = seen.get(key, 0) + 1
    except Exception as err:
        errors.append(type(err).__name__ + ": " + str(err))
print(json.dumps({"seen": seen, "errors": errors[:5]}))
"""


@needs_flock
def test_loads_in_other_processes_never_see_a_half_replaced_model(
    tmp_path: Path, two_models: dict
) -> None:
    import subprocess

    path = two_models["itemknn"].save(tmp_path / "models" / "m")
    stop = tmp_path / "stop"
    procs = []
    for i in range(2):
        ready = tmp_path / f"ready{i}"
        procs.append(
            (
                subprocess.Popen(
                    [sys.executable, "-c", _LOAD_LOOP, str(path), str(stop), str(ready)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                ready,
            )
        )
    deadline = time.monotonic() + 120
    while not all(ready.exists() for _, ready in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        for i in range(20):
            two_models["popularity" if i % 2 else "itemknn"].save(path, overwrite=True)
            time.sleep(0.01)
    finally:
        stop.write_text("stop")
    expected = {f"{n}:{','.join(_first_user_top5(m))}" for n, m in two_models.items()}
    total = 0
    for proc, _ in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        doc = json.loads(out.strip().splitlines()[-1])
        assert doc["errors"] == [], doc["errors"]
        assert set(doc["seen"]) <= expected, doc["seen"]
        total += sum(doc["seen"].values())
    assert total > 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["m"]


@needs_flock
def test_a_save_waits_for_a_read_under_way(tmp_path: Path, two_models: dict) -> None:
    from hybridrec.persistence import reading

    path = two_models["itemknn"].save(tmp_path / "m")
    saved = threading.Event()
    errors: list[BaseException] = []

    def save() -> None:
        try:
            two_models["popularity"].save(path, overwrite=True)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)
        saved.set()

    with reading(path):
        worker = threading.Thread(target=save)
        worker.start()
        assert not saved.wait(0.5)  # the save waits for the read ...
        assert read_manifest(path)["recommender"] == "itemknn"  # ... which sees one model
    worker.join(timeout=60)
    assert saved.is_set() and not errors, errors
    assert hr.load(path).name == "popularity"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_saving_over_a_folder_this_thread_reads_is_refused(saved: Path) -> None:
    from hybridrec.persistence import reading

    with reading(saved), reading(saved):  # nests
        with pytest.raises(OutputPathError, match="this thread is reading"):
            fitted().save(saved, overwrite=True)
    fitted().save(saved, overwrite=True)  # after the read: fine


@needs_flock
def test_loading_needs_no_write_permission(tmp_path: Path) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    folder = tmp_path / "ro"
    model = fitted().save(folder / "model")
    folder.chmod(0o555)
    try:
        assert hr.load(model).is_fitted
        assert sorted(p.name for p in folder.iterdir()) == ["model"]
    finally:
        folder.chmod(0o755)


def test_files_vanishing_while_verifying_are_model_file_errors(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hybridrec.persistence as persistence

    def gone(self, pattern):  # noqa: ANN001 - as rglob meets a folder removed under it
        raise FileNotFoundError(2, "No such file or directory", str(self / "index"))

    with monkeypatch.context() as m:
        m.setattr(Path, "rglob", gone)
        with pytest.raises(hr.ModelFileError, match="cannot list the folder's files") as info:
            read_manifest(saved)
        assert str(saved) in str(info.value)

    def unreadable(path, chunk=0):  # noqa: ANN001
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(persistence, "sha256_file", unreadable)
    with pytest.raises(hr.ModelFileError, match="cannot read it"):
        read_manifest(saved)
    (saved / "manifest.json").chmod(0o000)
    try:
        if os.access(saved / "manifest.json", os.R_OK):
            return  # root reads anything
        with pytest.raises(hr.ModelFileError, match="cannot read the manifest"):
            read_manifest(saved)
    finally:
        (saved / "manifest.json").chmod(0o644)
