"""Safe, atomic persistence: JSON manifests with checksums and arrays in ``.npz`` without pickle."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import secrets
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from hybridrec.errors import ModelFileError, OutputPathError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "hybridrec-model"
FORMAT_VERSION = 1
"""Version of the folder layout. A newer version is refused on loading; an older one (or none)
loads with a warning."""

_OS_JUNK = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
"""Files an operating system's file browser drops into folders; never part of a model."""


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of hybridrec, numpy and the given distributions (absent ones skipped)."""
    out = {"python": platform.python_version()}
    for name in ("hybridrec", "numpy", "scipy", *names):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def current_umask() -> int:
    """The process's umask, so that saved files get the permissions any other tool would give.

    On Linux it is read from ``/proc/self/status`` (no side effect). Elsewhere it is read by
    setting and restoring it with :func:`os.umask`, which is racy if another thread creates a
    file at that very moment (that file would get the umask 0o022 while it is in effect).

    Example:
        >>> 0 <= current_umask() <= 0o777
        True
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _default_mode(*, folder: bool) -> int:
    return (0o777 if folder else 0o666) & ~current_umask()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a file through a temporary file in the same folder and an atomic rename.

    The file gets the mode of the file it replaces, or for a new file ``0o666`` less the
    umask (as ``open`` would give), not the ``0o600`` of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = _default_mode(folder=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------- output folders
def _output_path(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute (``..`` and ``.`` resolved lexically, symbolic links kept)."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def is_model_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding a saved hybridrec model (or index): a readable
    ``manifest.json`` whose ``format`` is ``hybridrec-model``. Checksums are not checked.

    Example:
        >>> is_model_folder("/nonexistent")
        False
    """
    manifest = Path(path) / MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def _foreign_files(folder: Path) -> list[str]:
    """Files in a model folder that its manifest does not list (they would be lost)."""
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("files")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        listed = None
    listed = set(listed) if isinstance(listed, dict) else set()
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_dir() and not p.is_symlink():
            continue
        rel = p.relative_to(folder).as_posix()
        if rel == MANIFEST or rel in listed or p.name in _OS_JUNK or p.name == MANIFEST:
            continue
        out.append(rel)
    return out


def _shown(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_output_dir(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    ours: Callable[[Path], bool] | None = None,
) -> Path:
    """Check, before long work, that a folder can be written (created or replaced) at ``path``.

    The rules (the same :meth:`Recommender.save <hybridrec.recommender.Recommender.save>` and
    :func:`atomic_directory` apply):

    * a path that does not exist is fine if its nearest existing parent is a writable folder;
    * an existing empty folder is fine (it is replaced);
    * a folder that ``ours`` recognises (default: a saved hybridrec model, see
      :func:`is_model_folder`, holding no file its manifest does not list) is replaced only
      with ``overwrite=True``;
    * a file, a symbolic link, a non-empty folder hybridrec did not write, the current folder
      or one above it are never replaced, even with ``overwrite=True``.

    Args:
        path: the output folder.
        overwrite: allow replacing a folder that ``ours`` recognises.
        ours: tells whether an existing non-empty folder was written by the caller's kind of
            output (the benchmark passes one that recognises its own results folder).

    Returns:
        The absolute path.

    Raises:
        OutputPathError: the path cannot or must not be written; the message says why and what
            to do.

    Example:
        >>> import tempfile
        >>> check_output_dir(Path(tempfile.mkdtemp()) / "model").name
        'model'
    """
    target = _output_path(path)
    if target.parent == target:
        raise OutputPathError(f"{target}: cannot save to the root folder; name a new folder")
    try:
        cwd = Path.cwd().resolve()
        resolved = target.resolve()
    except OSError:
        cwd = resolved = None
    if cwd is not None and (resolved == cwd or resolved in cwd.parents):
        where = "the current folder" if resolved == cwd else "a folder above the current one"
        raise OutputPathError(
            f"{target}: is {where}; hybridrec saves a model as a folder of its own and will "
            f"not replace this one: name a new folder such as ./model"
        )
    if target.is_symlink():
        raise OutputPathError(
            f"{target}: is a symbolic link (to {os.readlink(target)}); hybridrec will not "
            f"replace it: pass the path it points to, or another path"
        )
    if target.exists() and not target.is_dir():
        raise OutputPathError(
            f"{target}: is a file, not a folder; hybridrec never replaces a file: choose "
            f"another path, or move the file away yourself"
        )
    if target.is_dir():
        try:
            entries = sorted(p.name for p in target.iterdir())
        except OSError as err:
            raise OutputPathError(
                f"{target}: cannot read the folder ({err.strerror or err})"
            ) from err
        if not entries:
            return target
        recognised = ours(target) if ours is not None else is_model_folder(target)
        if not recognised:
            raise OutputPathError(
                f"{target}: folder is not empty and holds no hybridrec output (it holds "
                f"{_shown(entries)}); hybridrec never replaces such a folder, even with "
                f"overwrite: choose a new or empty folder"
            )
        if ours is None:
            foreign = _foreign_files(target)
            if foreign:
                raise OutputPathError(
                    f"{target}: holds a saved model but also files that are not part of it "
                    f"({_shown(foreign)}); move them away or choose another folder"
                )
        if not overwrite:
            what = "a saved hybridrec model" if ours is None else "earlier output"
            raise OutputPathError(
                f"{target}: already holds {what}; pass overwrite=True (command line: "
                f"--overwrite) to replace it, or choose another folder"
            )
        return target
    # does not exist: the nearest existing parent must be a folder we may write in
    parent = target.parent
    while not parent.exists() and not parent.is_symlink() and parent.parent != parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{target}: cannot create it: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{target}: cannot create it: no permission to write in {parent}")
    return target


class _SaveLock:
    """An exclusive lock on saving to ``target``: the file ``.<name>.lock`` beside it.

    With ``fcntl`` the lock is an ``flock`` (released by the system if the process dies, so a
    stale file never blocks a later save); elsewhere the file is created with ``O_EXCL``.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.with_name(f".{target.name}.lock")
        self.fd: int | None = None

    def _busy(self) -> OutputPathError:
        return OutputPathError(
            f"{self.target}: another process is saving to this folder right now (lock "
            f"{self.path}); wait for it to finish, or save elsewhere"
        )

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            try:
                self.fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                err = self._busy()
                err.args = (f"{err.args[0]} (if no save is running, delete the lock file)",)
                raise err from None
            except OSError as err:
                raise OutputPathError(f"{self.path}: cannot create the lock file ({err})") from err
            os.write(self.fd, f"{os.getpid()}\n".encode())
            return
        deadline = time.monotonic() + 2.0
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o666)
            except OSError as err:
                raise OutputPathError(
                    f"{self.path}: cannot create the lock file ({err.strerror or err})"
                ) from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # a saver writes its pid into the file as soon as it holds it; an empty file
                # is one a saver has just created (its pid follows at once): look again
                holder = os.pread(fd, 32, 0)
                os.close(fd)
                if holder.strip() or time.monotonic() > deadline:
                    raise self._busy() from None
                time.sleep(0.002)
                continue
            except BaseException:
                os.close(fd)
                raise
            # the holder may have removed the file between our open and flock: then the lock
            # we got is on a file nobody else sees; that save is over, so open the file again
            if not _same_file(fd, self.path):
                os.close(fd)
                if time.monotonic() > deadline:
                    raise self._busy()
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            return

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it (see acquire)
        finally:
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------------------- reading
# A save replaces a folder with two renames (old folder aside, new one into place). A reader
# that opened some files before them and some after would mix two models, or find no folder
# at all in between. So readers hold LOCK_SH (flock) on the folder itself while they read,
# and a save holds LOCK_EX on it only around its renames (see _swapping). While the saver
# waits for the readers already inside, new readers wait at a gate, the file ``.<name>.swap``
# beside the folder, which exists (LOCK_EX by the saver) only for that moment: otherwise a
# steady stream of readers could keep the saver waiting for ever. Readers never create or
# write a file, so loading from a read-only place works as before.

_held = threading.local()


def _reads() -> dict[str, int]:
    """The folders this thread reads under :func:`reading`, with their nesting depth."""
    reads = getattr(_held, "reads", None)
    if reads is None:
        reads = _held.reads = {}
    return reads


def _key(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _same_file(fd: int, path: str | os.PathLike[str]) -> bool:
    """Whether the open ``fd`` is still the file or folder at ``path``."""
    try:
        held, now = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _gate_path(target: Path) -> Path | None:
    target = _output_path(target)
    return target.with_name(f".{target.name}.swap") if target.name else None


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _lock_shared(folder: Path) -> int | None:
    """An open descriptor of ``folder`` holding LOCK_SH, or None where it cannot be locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locks, reads as before
        return None
    gate_path = _gate_path(folder)
    for _ in range(100):
        gate = None
        if gate_path is not None:
            with contextlib.suppress(OSError):  # absent: no save is swapping the folder
                gate = os.open(gate_path, os.O_RDONLY)
                fcntl.flock(gate, fcntl.LOCK_SH)  # a save is swapping it: wait until it is done
        try:
            try:
                fd = _open_dir(folder)
            except OSError:
                return None  # missing, not a folder, unreadable: the reader says so
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
            except OSError:  # a file system without locks
                os.close(fd)
                return None
            if _same_file(fd, folder):
                return fd
            os.close(fd)  # replaced between our open and our lock: lock the new folder
        finally:
            if gate is not None:
                os.close(gate)
    logger.warning("%s: replaced again and again while loading; reading it unlocked", folder)
    return None


@contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Read a saved folder (model, index) knowing that no save swaps it meanwhile.

    Inside the block, a save to the same path (:func:`atomic_directory`, e.g.
    ``rec.save(path, overwrite=True)``) in another thread or process waits before it replaces
    the folder, and a save already replacing it is waited for, so everything read in the
    block comes from one saved version, the old or the new, never a mix. The lock is a shared
    ``flock`` on the folder; nothing is created or written, so read-only folders load as
    before. Where locks are not available (Windows, a folder that cannot be opened, a file
    system without ``flock``) the block runs unlocked. Blocks nest (also for the same path).

    A thread must not save to a path while it reads it (that save would wait for itself):
    :func:`atomic_directory` refuses that.

    Example:
        >>> with reading("/nonexistent/model") as folder:
        ...     folder.name
        'model'
    """
    folder = Path(path)
    key = _key(folder)
    reads = _reads()
    fd = None if key in reads else _lock_shared(folder)
    reads[key] = reads.get(key, 0) + 1
    try:
        yield folder
    finally:
        reads[key] -= 1
        if not reads[key]:
            del reads[key]
        if fd is not None:
            os.close(fd)  # releases the lock


def _check_not_reading(target: Path) -> None:
    if _key(target) in _reads():
        raise OutputPathError(
            f"{target}: this thread is reading the saved folder there (inside "
            f"hybridrec.persistence.reading); save to it after the read is over"
        )


@contextmanager
def _swapping(target: Path) -> Iterator[None]:
    """Hold ``target`` exclusively for the renames that replace it (see :func:`reading`)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    gate_path = _gate_path(target)
    gate = folder = None
    try:
        if gate_path is not None:
            try:
                gate = os.open(gate_path, os.O_CREAT | os.O_RDWR, 0o666)
                fcntl.flock(gate, fcntl.LOCK_EX)  # readers hold it only for an instant
            except OSError:  # no gate: new readers are not held back, but still waited for
                if gate is not None:
                    os.close(gate)
                gate = None
        try:
            folder = _open_dir(target)
            fcntl.flock(folder, fcntl.LOCK_EX)  # until the readers inside are done
        except OSError:
            if folder is not None:
                os.close(folder)
            folder = None
        yield
    finally:
        if folder is not None:
            os.close(folder)
        if gate is not None:
            if gate_path is not None and _same_file(gate, gate_path):
                with contextlib.suppress(OSError):
                    gate_path.unlink()  # while still holding it, as _SaveLock does
            os.close(gate)


@contextmanager
def atomic_directory(
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    ours: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield a temporary folder; on success it is moved to ``target`` in (almost) one rename.

    ``target`` is checked with :func:`check_output_dir` before anything is written and again
    just before the rename: only a new path, an empty folder or (with ``overwrite=True``) a
    saved model is replaced; a file or any other folder is never touched. A replaced model is
    moved aside first and removed only once the new folder is in place, so an interrupted save
    never leaves a half-written model where a good one was.

    Saves to the same ``target`` are serialised by a lock file ``.<name>.lock`` beside it: a
    second process that tries while one is saving gets :class:`OutputPathError` at once.
    Readers of ``target`` (:func:`reading`, which :func:`read_manifest` and the ``load``
    methods use) are never shown a half-replaced folder: the renames wait until reads already
    under way are over, and reads that start meanwhile wait for the renames (an instant).
    The folder gets mode ``0o777`` less the umask, like ``mkdir``.

    Raises:
        OutputPathError: the path must not be written, or another process is saving there.
    """
    target = check_output_dir(target, overwrite=overwrite, ours=ours)
    _check_not_reading(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(
            f"{target}: cannot create its parent folder ({err.strerror or err})"
        ) from err
    lock = _SaveLock(target)
    lock.acquire()
    try:
        check_output_dir(target, overwrite=overwrite, ours=ours)  # changed while unlocked?
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            os.chmod(tmp, _default_mode(folder=True))
            yield tmp
            check_output_dir(target, overwrite=overwrite, ours=ours)  # changed meanwhile?
            _move_into_place(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        lock.release()


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``: nothing there, an empty folder, or a checked old output.

    Readers of ``target`` (see :func:`reading`) are waited for, and held back, meanwhile.
    """
    _check_not_reading(target)
    backup = None
    with _swapping(target) if target.is_dir() else contextlib.nullcontext():
        try:
            if target.is_dir() and any(target.iterdir()):
                backup = target.with_name(
                    f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
                )
                os.replace(target, backup)
            elif target.is_dir():
                os.rmdir(target)  # empty: removed, so that the rename works everywhere
            os.replace(tmp, target)
        except OSError as err:
            if backup is not None and not target.exists():
                with contextlib.suppress(OSError):
                    os.replace(backup, target)  # put the old model back
            raise OutputPathError(
                f"{target}: cannot move the saved folder into place ({err.strerror or err}); "
                f"did something else write there meanwhile?"
            ) from err
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Save arrays to an uncompressed ``.npz``; object arrays are refused (they would pickle)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"array {key!r} has dtype object; convert it (e.g. to str) first")
    with open(path, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Load an ``.npz`` written by :func:`save_arrays`, never unpickling anything.

    Raises:
        ModelFileError: the file is missing, truncated or corrupted.
    """
    import zipfile
    import zlib

    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (
        OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError
    ) as err:
        raise ModelFileError(f"{path}: cannot read arrays ({err})") from err


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` with the sha256 of every other file in ``folder``.

    Every file is listed, in sub-folders too (the manifests of nested artifacts such as a
    retriever's ``index/`` included), by its ``/``-separated path relative to ``folder``.
    """
    top = folder / MANIFEST
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p != top)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **manifest,
        "files": {p.relative_to(folder).as_posix(): sha256_file(p) for p in files},
    }
    atomic_write_text(top, json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(
    folder: str | os.PathLike[str], *, verify: bool = True, required: Iterable[str] = ()
) -> dict[str, Any]:
    """Read and check a saved folder's manifest and (by default) every file's checksum.

    With ``verify=True`` the folder must match its manifest exactly, so that no file a loader
    reads can be swapped or added after saving:

    * every listed file exists and has the listed sha256;
    * every file in the folder (sub-folders too) is listed, except the manifest itself and
      files a file browser drops (``.DS_Store``, ``Thumbs.db``, ``desktop.ini``). A nested
      ``manifest.json`` that is not listed is accepted: folders saved before nested manifests
      were listed have them, and a nested artifact checks its own manifest when it is loaded;
    * every name in ``required`` is listed (a loader passes the files it reads).

    Format versions: a manifest with a ``format_version`` newer than :data:`FORMAT_VERSION` is
    refused (upgrade hybridrec); an older one (or none) loads with a warning (save the model
    again to upgrade it).

    The folder is read under :func:`reading`, so a save replacing it meanwhile is waited for;
    a loader that reads more files after the manifest holds :func:`reading` around it all.

    Raises:
        ModelFileError: the folder or manifest is missing, unreadable, of another format or a
            newer version; a file is missing, unlisted or its checksum does not match.
    """
    folder = Path(folder)
    with reading(folder):
        return _read_manifest(folder, verify=verify, required=required)


def _read_manifest(folder: Path, *, verify: bool, required: Iterable[str]) -> dict[str, Any]:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ModelFileError(f"{folder}: no such model folder")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{folder}: no {MANIFEST}; not a saved hybridrec model") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder, not a manifest file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: corrupted manifest ({err})") from err
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read the manifest ({err.strerror or err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a {FORMAT} manifest")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ModelFileError(f"{path}: corrupted manifest (format_version {version!r})")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version} is newer than this "
            f"hybridrec understands ({FORMAT_VERSION}); upgrade hybridrec"
        )
    if verify:
        if version < FORMAT_VERSION:
            logger.warning(
                "%s: saved in an older format (version %d, current %d); it loads, but save it "
                "again to upgrade it",
                path,
                version,
                FORMAT_VERSION,
            )
        verify_files(folder, manifest, required=required)
    return manifest


def verify_files(
    folder: Path, manifest: Mapping[str, Any], *, required: Iterable[str] = ()
) -> None:
    """The checks of :func:`read_manifest` with ``verify=True`` on the files of ``folder``.

    Raises:
        ModelFileError: see :func:`read_manifest`.
    """
    path = folder / MANIFEST
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ModelFileError(f"{path}: corrupted manifest (no valid 'files' list)")
    for name in files:
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or ".." in parts or "\\" in name or ":" in name:
            raise ModelFileError(f"{path}: corrupted manifest (unsafe file name {name!r})")
    for name in required:
        if name not in files:
            raise ModelFileError(
                f"{folder}: {name} is not listed in the manifest, so it cannot be checked; "
                f"the folder was changed after saving: save the model again"
            )
    try:
        entries = sorted(folder.rglob("*"))
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        raise ModelFileError(
            f"{folder}: cannot list the folder's files ({err.strerror or err}{where}); was it "
            f"changed or removed while loading?"
        ) from err
    unlisted = []
    for p in entries:
        if p.is_dir() and not p.is_symlink():
            continue
        rel = p.relative_to(folder).as_posix()
        if rel in files or rel == MANIFEST or p.name in _OS_JUNK or p.name == MANIFEST:
            continue
        unlisted.append(rel)
    if unlisted:
        raise ModelFileError(
            f"{folder}: file(s) {_shown(unlisted)} not listed in the manifest; files cannot be "
            f"added to or swapped in a saved model: save the model again"
        )
    for name, digest in files.items():
        file = folder / name
        if not file.is_file():
            raise ModelFileError(f"{folder}: file {name} listed in the manifest is missing")
        try:
            actual = sha256_file(file)
        except FileNotFoundError:
            raise ModelFileError(
                f"{folder}: file {name} listed in the manifest is missing"
            ) from None
        except OSError as err:
            raise ModelFileError(f"{file}: cannot read it ({err.strerror or err})") from err
        if actual != digest:
            raise ModelFileError(
                f"{file}: checksum mismatch; the file is corrupted or was changed after saving"
            )
