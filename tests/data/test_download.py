"""Tests of hybridrec.data.download against a local HTTP server on 127.0.0.1 (never the network):
verified downloads, checksum mismatches and interrupted transfers that leave nothing behind."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hybridrec.data import download
from hybridrec.data.download import (
    AMAZON2018_SHA256,
    MOVIELENS,
    ChecksumError,
    DownloadError,
    RemoteFile,
    amazon2018_files,
    default_cache_dir,
    download_file,
    extract_zip,
    fetch_dataset,
)
from hybridrec.data.loaders import load_dataset

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that would reach past this machine, and bypass proxies."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: object) -> object:
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise AssertionError(f"a test tried to connect to {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in LOOPBACK and host is not None:
            raise AssertionError(f"a test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


class Server:
    """Files served at ``/<mode>/<name>``: ``ok``, ``truncate`` (half, then the connection
    closes) and ``stall`` (half, then silence)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                mode, _, name = self.path.lstrip("/").partition("/")
                server.hits[self.path] += 1
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "not found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "ok":
                    self.wfile.write(data)
                elif mode == "truncate":
                    self.wfile.write(data[: len(data) // 2])
                elif mode == "stall":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    time.sleep(1.0)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, name: str, mode: str = "ok") -> str:
        return f"{self.base}/{mode}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def _server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def server(_server: Server) -> Server:
    _server.files.clear()
    _server.hits.clear()
    return _server


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders left in ``folder`` (recursively)."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".part")]


PAYLOAD = os.urandom(3000) + b"hybridrec"


# --------------------------------------------------------------------------- single files
def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "datasets"  # the variable names the root
    monkeypatch.delenv("HYBRIDREC_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "hybridrec" / "datasets"


def test_verified_download_is_cached(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    remote = RemoteFile(
        server.url("a.bin"),
        "sub/a.bin",
        sha256=sha256(PAYLOAD),
        md5=hashlib.md5(PAYLOAD).hexdigest(),
        size=len(PAYLOAD),
    )
    path = download_file(remote, tmp_path, progress=False)
    assert path == tmp_path / "sub" / "a.bin" and path.read_bytes() == PAYLOAD
    assert download_file(remote, tmp_path, progress=False) == path
    assert server.hits["/ok/a.bin"] == 1  # the verified copy was used
    path.write_bytes(b"corrupted")
    assert download_file(remote, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.hits["/ok/a.bin"] == 2  # a copy that fails verification is fetched again
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sha256": "0" * 64}, "sha256"),
        ({"md5": "0" * 32}, "md5"),
        ({"sha256": sha256(PAYLOAD), "size": 10}, "size"),
    ],
)
def test_checksum_mismatch_leaves_nothing(
    server: Server, tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    server.files["a.bin"] = PAYLOAD
    remote = RemoteFile(server.url("a.bin"), "a.bin", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ChecksumError, match=f"checksum mismatch.*{message}"):
        download_file(remote, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_nothing(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    remote = RemoteFile(server.url("a.bin", "truncate"), "a.bin", sha256=sha256(PAYLOAD))
    with pytest.raises(DownloadError, match="interrupted"):
        download_file(remote, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    # a good copy in the cache survives a failed forced re-download untouched
    (tmp_path / "a.bin").write_bytes(PAYLOAD)
    with pytest.raises(DownloadError, match="interrupted"):
        download_file(remote, tmp_path, progress=False, force=True)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == []


def test_stalled_download_times_out(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    remote = RemoteFile(server.url("a.bin", "stall"), "a.bin", sha256=sha256(PAYLOAD))
    with pytest.raises(DownloadError):
        download_file(remote, tmp_path, progress=False, timeout=0.2)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_bad_scheme(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(RemoteFile(server.url("missing"), "m", sha256="0" * 64), tmp_path)
    with pytest.raises(DownloadError, match="unsupported URL scheme 'ftp'"):
        download_file(RemoteFile("ftp://127.0.0.1/x", "x"), tmp_path)
    assert leftovers(tmp_path) == []


def test_checksum_recorded_on_first_download(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    remote = RemoteFile(server.url("a.bin"), "a.bin")
    path = download_file(remote, tmp_path, progress=False)
    record = json.loads((tmp_path / "a.bin.sha256").read_text())
    assert record["sha256"] == sha256(PAYLOAD) and record["size"] == len(PAYLOAD)
    download_file(remote, tmp_path, progress=False)
    assert server.hits["/ok/a.bin"] == 1
    # upstream content changes: the recorded checksum refuses it
    path.unlink()
    server.files["a.bin"] = b"something else"
    with pytest.raises(ChecksumError, match="delete that file"):
        download_file(remote, tmp_path, progress=False)
    assert not path.exists() and leftovers(tmp_path) == []


def test_file_url(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(PAYLOAD)
    remote = RemoteFile(source.as_uri(), "copy.bin", sha256=sha256(PAYLOAD))
    assert download_file(remote, tmp_path / "cache").read_bytes() == PAYLOAD


# --------------------------------------------------------------------------- archives
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_extract_zip_refuses_unsafe_names(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip({"ml-100k/u.data": b"1\t2\t3\t4\n", "../evil": b"x"}))
    with pytest.raises(DownloadError, match="unsafe member"):
        extract_zip(archive, tmp_path / "out", strip="ml-100k")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil").exists()
    assert leftovers(tmp_path) == []
    archive.write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match="not a valid zip"):
        extract_zip(archive, tmp_path / "out")


def _ml100k_zip() -> bytes:
    return _zip({f"ml-100k/{p.name}": p.read_bytes() for p in (FIXTURES / "ml-100k").iterdir()})


def test_load_named_ml100k_through_the_cache(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _ml100k_zip()
    server.files["ml-100k.zip"] = data
    monkeypatch.setitem(
        MOVIELENS,
        "ml-100k",
        RemoteFile(server.url("ml-100k.zip"), "ml-100k.zip", sha256=sha256(data)),
    )
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path / "cache"))
    ds = load_dataset("ml-100k", progress=False)
    assert ds.name == "ml-100k" and ds.n_interactions == 7
    assert (tmp_path / "cache" / "datasets" / "ml-100k" / "u.item").is_file()
    assert (tmp_path / "cache" / "datasets" / "ml-100k.zip").is_file()
    again = load_dataset("ml-100k", download=False)
    assert again.n_interactions == 7 and server.hits["/ok/ml-100k.zip"] == 1
    assert leftovers(tmp_path) == []


def test_ml100k_checksum_mismatch_leaves_no_folder(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files["ml-100k.zip"] = _ml100k_zip()
    monkeypatch.setitem(
        MOVIELENS, "ml-100k", RemoteFile(server.url("ml-100k.zip"), "ml-100k.zip", md5="0" * 32)
    )
    with pytest.raises(ChecksumError):
        load_dataset("ml-100k", cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_load_named_amazon_category(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in (FIXTURES / "amazon2018").iterdir():
        server.files[path.name] = path.read_bytes()
    monkeypatch.setattr(download, "AMAZON2018_REVIEWS", server.url("{category}_5.json.gz"))
    monkeypatch.setattr(download, "AMAZON2018_META", server.url("meta_{category}.json.gz"))
    ds = load_dataset("amazon2018:Tiny_Magazines", cache_dir=tmp_path, progress=False)
    assert ds.name == "amazon2018:Tiny_Magazines" and ds.n_items == 4
    folder = tmp_path / "amazon2018" / "Tiny_Magazines"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Tiny_Magazines_5.json.gz",
        "Tiny_Magazines_5.json.gz.sha256",
        "meta_Tiny_Magazines.json.gz",
        "meta_Tiny_Magazines.json.gz.sha256",
    ]
    assert load_dataset("amazon2018:Tiny_Magazines", cache_dir=tmp_path, download=False).n_items
    assert sum(server.hits.values()) == 2
    with pytest.raises(DownloadError, match="not in the cache"):
        fetch_dataset("amazon2018:Other", tmp_path, download=False)
    with pytest.raises(ValueError, match="not a category"):
        amazon2018_files("../etc")
    with pytest.raises(ValueError, match="no download known"):
        fetch_dataset("ml-20m", tmp_path)


def test_published_locations_and_checksums() -> None:
    assert MOVIELENS["ml-100k"].url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert MOVIELENS["ml-1m"].url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert MOVIELENS["ml-100k"].md5 == "0e33842e24a9c977be4e0107933c0723"
    assert MOVIELENS["ml-1m"].md5 == "c4d9eecfca2ab87c1945afe126590906"
    reviews, meta = amazon2018_files("Magazine_Subscriptions")
    base = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2"
    assert reviews.url == f"{base}/categoryFilesSmall/Magazine_Subscriptions_5.json.gz"
    assert meta.url == f"{base}/metaFiles2/meta_Magazine_Subscriptions.json.gz"
    assert (reviews.sha256, meta.sha256) == AMAZON2018_SHA256["Magazine_Subscriptions"]
    env = os.environ.get("HYBRIDREC_SHARED_DATA")
    shared = Path(env) if env else REPO / ".." / "shared" / "data"
    folder = shared / "amazon2018-magazine-subscriptions"
    if folder.is_dir():  # the recorded constants are those of the checked copies
        for remote in (reviews, meta):
            data = (folder / Path(remote.filename).name).read_bytes()
            assert sha256(data) == remote.sha256
