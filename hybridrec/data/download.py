"""Downloading the named datasets into a local cache, verified and never half-written.

The cache is ``<cache root>/datasets`` (:func:`hybridrec.paths.cache_dir`): that is
``$HYBRIDREC_CACHE/datasets`` when the environment variable ``HYBRIDREC_CACHE`` names a cache
root, else ``~/.cache/hybridrec/datasets``; a ``cache_dir`` argument overrides it. Layout::

    <cache>/ml-100k.zip, <cache>/ml-100k/u.data ...      MovieLens 100K (zip kept, extracted)
    <cache>/ml-1m.zip,   <cache>/ml-1m/ratings.dat ...   MovieLens 1M
    <cache>/amazon2018/<Category>/<Category>_5.json.gz   Amazon 2018, 5-core reviews
    <cache>/amazon2018/<Category>/meta_<Category>.json.gz                metadata

Integrity:

* Every file is streamed to a temporary file in the destination folder, hashed on the way, and
  renamed into place (``os.replace``, atomic) only once complete and verified. An interrupted or
  failed download leaves no file under the final name; an extracted archive appears under its
  final folder name only once fully extracted.
* Files with a known checksum are verified against it: the GroupLens zips against their
  published MD5 (``ml-100k.zip.md5``, ``ml-1m.zip.md5``) and the SHA-256 recorded here, and the
  Amazon "Magazine_Subscriptions" files against the SHA-256 of the copies this project checked.
  Other Amazon categories have no published checksum: their SHA-256 is recorded on first
  download (trust on first use) in a ``<file>.sha256`` file beside them and checked on later use.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from hybridrec.errors import HybridrecError
from hybridrec.paths import CACHE_ENV as CACHE_ENV  # re-exported: the name predates paths.py
from hybridrec.paths import cache_dir
from hybridrec.persistence import atomic_write_text

logger = logging.getLogger(__name__)

GROUPLENS = "https://files.grouplens.org/datasets/movielens"
AMAZON2018_REVIEWS = (
    "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/categoryFilesSmall/{category}_5.json.gz"
)
AMAZON2018_META = (
    "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/metaFiles2/meta_{category}.json.gz"
)
CHUNK = 1 << 20


class DownloadError(HybridrecError, OSError):
    """A download that failed or was cut short; nothing was written under the final name."""


class ChecksumError(DownloadError):
    """A downloaded file whose checksum is not the expected one; it was deleted."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: where from, its name in the cache and what it must hash to.

    Attributes:
        url: http(s) or file URL.
        filename: path relative to the cache folder.
        sha256 / md5: expected hex digests, when known.
        size: expected size in bytes, when known.
    """

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None


MOVIELENS: dict[str, RemoteFile] = {
    "ml-100k": RemoteFile(
        f"{GROUPLENS}/ml-100k.zip",
        "ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        md5="0e33842e24a9c977be4e0107933c0723",  # published: ml-100k.zip.md5
        size=4_924_029,
    ),
    "ml-1m": RemoteFile(
        f"{GROUPLENS}/ml-1m.zip",
        "ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        md5="c4d9eecfca2ab87c1945afe126590906",  # published: ml-1m.zip.md5
    ),
}
"""MovieLens archives with their checksums."""

AMAZON2018_SHA256: dict[str, tuple[str, str]] = {
    "Magazine_Subscriptions": (
        "95c124603d62d6acdfd1bd62284934fb6c513db836ea64c2e8176c14256426f2",
        "4e64f9028648dee43200a4bd3e7b8c497ffd80ea52018e8f994a5fbd5d97faf6",
    ),
}
"""SHA-256 of (reviews, metadata) of Amazon 2018 categories checked by this project."""


def default_cache_dir() -> Path:
    """The dataset cache: ``cache_dir("datasets")``, i.e. ``$HYBRIDREC_CACHE/datasets`` or
    ``~/.cache/hybridrec/datasets`` (see :mod:`hybridrec.paths`).

    Example:
        >>> default_cache_dir().name
        'datasets'
    """
    return cache_dir("datasets")


def amazon2018_files(category: str) -> list[RemoteFile]:
    """The two remote files of an Amazon 2018 category (5-core reviews, metadata).

    Example:
        >>> [f.filename.split("/")[-1] for f in amazon2018_files("Magazine_Subscriptions")]
        ['Magazine_Subscriptions_5.json.gz', 'meta_Magazine_Subscriptions.json.gz']
    """
    if not category or "/" in category or "\\" in category or category.startswith("."):
        raise ValueError(f"not a category name: {category!r}")
    folder = f"amazon2018/{category}"
    known = AMAZON2018_SHA256.get(category, (None, None))
    quoted = urllib.parse.quote(category)
    return [
        RemoteFile(
            AMAZON2018_REVIEWS.format(category=quoted),
            f"{folder}/{category}_5.json.gz",
            sha256=known[0],
        ),
        RemoteFile(
            AMAZON2018_META.format(category=quoted),
            f"{folder}/meta_{category}.json.gz",
            sha256=known[1],
        ),
    ]


# --------------------------------------------------------------------------- one file
def file_digests(path: Path) -> tuple[str, str, int]:
    """SHA-256 and MD5 hex digests and the size of a file, read in chunks."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), md5.hexdigest(), size


def _expectations(remote: RemoteFile, dest: Path) -> tuple[str | None, str | None, int | None]:
    """Expected (sha256, md5, size): the constants, else what was recorded on first download."""
    if remote.sha256 or remote.md5:
        return remote.sha256, remote.md5, remote.size
    record = _record_path(dest)
    if record.is_file():
        try:
            data = json.loads(record.read_text())
            return data.get("sha256"), None, data.get("size")
        except (OSError, ValueError):
            logger.warning("%s: unreadable checksum record; the file is checked again", record)
    return None, None, remote.size


def _record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def verify_file(remote: RemoteFile, dest: Path) -> bool:
    """Whether ``dest`` exists and matches every checksum known for ``remote``."""
    if not dest.is_file():
        return False
    sha256, md5, size = _expectations(remote, dest)
    if sha256 is None and md5 is None:
        return False  # nothing to check against: not trusted, fetch again
    if size is not None and dest.stat().st_size != size:
        return False
    got_sha, got_md5, _ = file_digests(dest)
    return (sha256 is None or got_sha == sha256) and (md5 is None or got_md5 == md5)


def download_file(
    remote: RemoteFile,
    cache_dir: Path | None = None,
    *,
    timeout: float = 60.0,
    progress: bool | None = None,
    force: bool = False,
) -> Path:
    """Fetch one file into the cache (unless a verified copy is there) and return its path.

    The bytes go to a temporary file beside the destination, are hashed on the way, and are
    renamed into place only if complete (the announced length) and matching the checksums. When
    no checksum is known, the SHA-256 is recorded beside the file (``<file>.sha256``) and checked
    on later calls.

    Args:
        remote: what to fetch and what it must hash to.
        cache_dir: the cache folder (default :func:`default_cache_dir`).
        timeout: seconds without data before giving up.
        progress: show a progress bar (None: only on a terminal).
        force: download again even if a verified copy exists.

    Raises:
        DownloadError: the server could not be reached, answered an error or the transfer was
            cut short. ChecksumError: the content is not the expected one.

    Example:
        >>> remote = RemoteFile("file:///etc/hostname", "hostname")  # doctest: +SKIP
        >>> download_file(remote, Path("/tmp/cache"))  # doctest: +SKIP
        PosixPath('/tmp/cache/hostname')
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dest = cache / remote.filename
    if not force and verify_file(remote, dest):
        logger.debug("%s: verified copy in the cache", dest)
        return dest
    scheme = urllib.parse.urlsplit(remote.url).scheme
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"unsupported URL scheme {scheme!r}: {remote.url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s -> %s", remote.url, dest)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            sha, md5, size = _fetch(remote.url, out, timeout=timeout, progress=progress)
            out.flush()
            os.fsync(out.fileno())
        _check(remote, dest, sha, md5, size)
        os.replace(tmp, dest)
        if remote.sha256 is None and remote.md5 is None:
            atomic_write_text(
                _record_path(dest),
                json.dumps({"url": remote.url, "sha256": sha, "size": size}, indent=1) + "\n",
            )
            logger.info("%s: no published checksum; recorded sha256 %s", dest.name, sha)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return dest


def _fetch(
    url: str, out: BinaryIO, *, timeout: float, progress: bool | None
) -> tuple[str, str, int]:
    """Stream ``url`` into ``out``; the SHA-256, MD5 and byte count of what was received."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    request = urllib.request.Request(url, headers={"User-Agent": "hybridrec"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            bar = _progress_bar(expected, url, progress)
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    sha.update(chunk)
                    md5.update(chunk)
                    size += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise DownloadError(f"{url}: cannot connect ({err.reason})") from err
    except (http.client.HTTPException, OSError) as err:
        raise DownloadError(f"{url}: transfer interrupted after {size} bytes ({err!r})") from err
    if expected is not None and size != expected:
        raise DownloadError(f"{url}: transfer interrupted: {size} of {expected} bytes received")
    return sha.hexdigest(), md5.hexdigest(), size


def _progress_bar(total: int | None, url: str, progress: bool | None) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc=PurePosixPath(urllib.parse.urlsplit(url).path).name,
        disable=None if progress is None else False,
        leave=False,
    )


def _check(remote: RemoteFile, dest: Path, sha: str, md5: str, size: int) -> None:
    expected_sha, expected_md5, expected_size = _expectations(remote, dest)
    problems = []
    if expected_size is not None and size != expected_size:
        problems.append(f"size {size} bytes, expected {expected_size}")
    if expected_sha is not None and sha != expected_sha:
        problems.append(f"sha256 {sha}, expected {expected_sha}")
    if expected_md5 is not None and md5 != expected_md5:
        problems.append(f"md5 {md5}, expected {expected_md5}")
    if problems:
        hint = ""
        if remote.sha256 is None and remote.md5 is None:
            hint = (
                f"; the expected sum was recorded on first download in {_record_path(dest)}:"
                " delete that file to accept the new content"
            )
        raise ChecksumError(f"{remote.url}: checksum mismatch ({'; '.join(problems)}){hint}")


# --------------------------------------------------------------------------- archives
def extract_zip(archive: Path, folder: Path, *, strip: str | None = None) -> Path:
    """Extract ``archive`` to ``folder`` atomically: into a temporary folder, then renamed.

    Members with absolute paths or ``..`` are refused. ``strip`` removes a leading folder of the
    member names (the GroupLens zips hold ``ml-100k/...``).

    Raises:
        DownloadError: a corrupt archive or an unsafe member name.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = PurePosixPath(info.filename)
                if strip and name.parts and name.parts[0] == strip:
                    name = PurePosixPath(*name.parts[1:]) if len(name.parts) > 1 else None
                if name is None or info.is_dir() or not name.parts:
                    continue
                if name.is_absolute() or ".." in name.parts:
                    raise DownloadError(f"{archive}: unsafe member name {info.filename!r}")
                target = tmp.joinpath(*name.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except zipfile.BadZipFile as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"{archive}: not a valid zip file ({err})") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


# --------------------------------------------------------------------------- datasets
def fetch_dataset(
    name: str,
    cache_dir: Path | str | None = None,
    *,
    download: bool = True,
    progress: bool | None = None,
    timeout: float = 60.0,
    remotes: dict[str, RemoteFile] | None = None,
    amazon_files: Callable[[str], list[RemoteFile]] | None = None,
) -> Path:
    """The local folder of a named dataset, downloading (and extracting) it when needed.

    Args:
        name: ``"ml-100k"``, ``"ml-1m"`` or ``"amazon2018:<Category>"``.
        cache_dir: the cache folder (default :func:`default_cache_dir`).
        download: fetch what is missing; with False a missing dataset is an error.
        progress: show progress bars (None: only on a terminal).
        timeout: seconds without data before a download gives up.
        remotes / amazon_files: override where MovieLens archives and Amazon files come from
            (mirrors, tests).

    Returns:
        The folder holding the dataset's files.

    Raises:
        DownloadError: not cached and ``download`` is False, or the download failed.
        ValueError: an unknown name.

    Example:
        >>> folder = fetch_dataset("ml-100k")  # doctest: +SKIP
        >>> sorted(p.name for p in folder.iterdir())[:3]  # doctest: +SKIP
        ['README', 'allbut.pl', 'mku.sh']
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if name.startswith("amazon2018:"):
        category = name.split(":", 1)[1]
        files = (amazon_files or amazon2018_files)(category)
        folder = cache / "amazon2018" / category
        missing = [f for f in files if not (cache / f.filename).is_file()]
        if missing and not download:
            raise DownloadError(
                f"{name} is not in the cache ({folder}); pass download=True or a local folder"
            )
        for remote in missing:  # files present were renamed into place only once verified
            download_file(remote, cache, progress=progress, timeout=timeout)
        return folder
    table = remotes if remotes is not None else MOVIELENS
    if name not in table:
        known = ", ".join([*table, "amazon2018:<Category>"])
        raise ValueError(f"no download known for {name!r}; known: {known}")
    remote = table[name]
    folder = cache / name
    if folder.is_dir():
        return folder  # extracted atomically (temporary folder, then rename) from a verified zip
    if not download:
        raise DownloadError(
            f"{name} is not in the cache ({folder}); pass download=True or a local folder"
        )
    archive = download_file(remote, cache, progress=progress, timeout=timeout)
    return extract_zip(archive, folder, strip=name)
