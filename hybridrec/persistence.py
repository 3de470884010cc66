"""Safe, atomic persistence: JSON manifests with checksums and arrays in ``.npz`` without pickle."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from hybridrec.errors import ModelFileError

MANIFEST = "manifest.json"
FORMAT = "hybridrec-model"
FORMAT_VERSION = 1


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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a file through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``target`` in (almost) one rename.

    An existing ``target`` is moved aside first and removed only once the new folder is in
    place, so an interrupted save never leaves a half-written model where a good one was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        backup = None
        if target.exists():
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(target, backup)
        os.replace(tmp, target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    """Write ``manifest.json`` with the sha256 of every other file in ``folder``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **manifest,
        "files": {str(p.relative_to(folder)): sha256_file(p) for p in files},
    }
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(folder: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """Read and check a saved folder's manifest and (by default) every file's checksum.

    Raises:
        ModelFileError: the folder or manifest is missing, unreadable, of another format,
            or a file is missing or its checksum does not match.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ModelFileError(f"{folder}: no such model folder")
    if not path.is_file():
        raise ModelFileError(f"{folder}: no {MANIFEST}; not a saved hybridrec model")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: corrupted manifest ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {manifest['format_version']} is newer than this "
            f"hybridrec understands ({FORMAT_VERSION}); upgrade hybridrec"
        )
    if verify:
        for name, digest in manifest.get("files", {}).items():
            file = folder / name
            if not file.is_file():
                raise ModelFileError(f"{folder}: file {name} listed in the manifest is missing")
            if sha256_file(file) != digest:
                raise ModelFileError(
                    f"{file}: checksum mismatch; the file is corrupted or was changed after saving"
                )
    return manifest
