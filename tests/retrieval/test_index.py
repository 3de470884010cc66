"""The FAISS wrapper: exactness, recall, exclusion, add/remove/update and checked persistence."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hybridrec.errors import ModelFileError, UnknownIdError
from hybridrec.persistence import MANIFEST
from hybridrec.retrieval.index import IndexParams, VectorIndex

KINDS = ["flat", "hnsw", "ivf-flat", "ivf-sq8", "ivf-pq"]
SMALL = {"ivf-pq": {"pq_m": 16, "pq_nbits": 6}}  # 64-d test vectors, quick to train


def numpy_top_k(q: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = q @ x.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


@pytest.fixture(scope="module")
def data(make_vectors: Callable[..., np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return make_vectors(4000, seed=0), make_vectors(100, seed=1)


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(got, truth, strict=True)]))


def test_flat_equals_numpy(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    ids = np.arange(len(x)) * 7 + 3
    index = VectorIndex(x.shape[1], kind="flat").build(x, ids)
    scores, got = index.search(q, 20)
    want_scores, want = numpy_top_k(q, x, 20)
    np.testing.assert_array_equal(got, ids[want])
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
    assert index.exact and index.kind == "flat"


def test_flat_exclusion_equals_masked_numpy(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    index = VectorIndex(x.shape[1], kind="flat").build(x)
    _, top = numpy_top_k(q, x, 30)
    exclude = [row[::2] for row in top]  # every other of each query's best 30
    scores, got = index.search(q, 10, exclude=exclude)
    masked = q @ x.T
    for r, row in enumerate(exclude):
        masked[r, row] = -np.inf
    want = np.argsort(-masked, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("kind", "params", "minimum"),
    [
        ("hnsw", {}, 0.95),
        ("ivf-flat", {"nprobe": 24}, 0.95),  # a quarter of the 102 lists
        ("ivf-sq8", {"nprobe": 24}, 0.95),
        ("ivf-pq", {"pq_m": 16, "pq_nbits": 6, "nprobe": 24, "refine_factor": 8}, 0.9),
    ],
)
def test_approximate_recall(
    data: tuple[np.ndarray, np.ndarray], kind: str, params: dict, minimum: float
) -> None:
    x, q = data
    _, truth = numpy_top_k(q, x, 10)
    index = VectorIndex(x.shape[1], kind=kind, **params).build(x)
    rerank = None
    if params.get("refine_factor"):

        def rerank(queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
            exact = np.einsum("qkd,qd->qk", x[np.maximum(ids, 0)], queries)
            return np.where(ids >= 0, exact, -np.inf)

    _, got = index.search(q, 10, rerank=rerank)
    assert recall(got, truth) >= minimum
    assert not index.exact
    # and the set is not trivially easy: a starved search loses recall
    starved = {"ef_search": 10, "hnsw_m": 4, "ef_construction": 8} if kind == "hnsw" else {
        "nprobe": 1
    }
    weak = VectorIndex(x.shape[1], kind=kind, **{**params, **starved}).build(x)
    assert recall(weak.search(q, 10)[1], truth) < 0.9


@pytest.mark.parametrize("kind", KINDS)
def test_excluded_ids_are_never_returned_and_k_is_filled(
    data: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    x, q = data
    x, q = x[:1500], q[:10]
    index = VectorIndex(x.shape[1], kind=kind, **SMALL.get(kind, {})).build(x)
    _, top = numpy_top_k(q, x, 200)
    exclude = [row[:150] for row in top]  # the whole neighbourhood of each query
    scores, got = index.search(q, 25, exclude=exclude)
    for row, excl in zip(got, exclude, strict=True):
        assert not set(row) & set(excl)
        assert (row >= 0).all() and len(set(row)) == 25
    assert np.isfinite(scores).all()


def test_exclusion_of_nearly_everything_returns_the_rest(
    make_vectors: Callable[..., np.ndarray],
) -> None:
    x = make_vectors(50, seed=3)
    for kind in ("flat", "hnsw"):
        index = VectorIndex(x.shape[1], kind=kind).build(x)
        scores, got = index.search(x[:2], 10, exclude=[np.arange(47), np.arange(50)])
        assert sorted(got[0][:3]) == [47, 48, 49] and (got[0][3:] == -1).all()
        assert np.isneginf(scores[0][3:]).all()
        assert (got[1] == -1).all()


@pytest.mark.parametrize("kind", KINDS)
def test_add_remove_update_keep_ids_stable(
    data: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    x, _ = data
    x = x[:2000]
    ids = np.arange(len(x), dtype=np.int64) * 10
    index = VectorIndex(x.shape[1], kind=kind, **SMALL.get(kind, {})).build(x[:1500], ids[:1500])
    index.add(x[1500:], ids[1500:])
    assert len(index) == 2000
    removed = ids[100:300]
    assert index.remove(removed) == 200
    assert len(index) == 1800
    assert not set(removed) & set(index.ids)
    _, got = index.search(x[100:300], 5)
    assert not set(got.ravel()) & set(removed)
    # update: item 500 now carries the vector of item 1000 (and the other way round)
    index.update(x[[1000, 500]], ids[[500, 1000]])
    _, got = index.search(x[[1000, 500]], 2)
    assert got[0][0] == ids[500] and got[1][0] == ids[1000]
    assert len(index) == 1800
    # ids of untouched items still find themselves
    _, got = index.search(x[1600], 1)
    assert got[0][0] == ids[1600]
    # removed ids can come back
    index.add(x[100:110], removed[:10])
    assert len(index) == 1810 and removed[0] in index


def test_hnsw_removal_uses_tombstones_then_rebuilds(
    make_vectors: Callable[..., np.ndarray],
) -> None:
    x = make_vectors(1000, seed=4)
    index = VectorIndex(x.shape[1], kind="hnsw", hnsw_rebuild_fraction=0.25).build(x)
    index.remove(np.arange(200))
    assert index.n_tombstones == 200 and index.faiss_index.ntotal == 1000
    _, got = index.search(x[:200], 10)
    assert (got >= 200).all()
    index.remove(np.arange(200, 300))  # 300 / 1000 > 0.25: rebuilt
    assert index.n_tombstones == 0 and index.faiss_index.ntotal == 700
    _, got = index.search(x[300:310], 1)
    np.testing.assert_array_equal(got[:, 0], np.arange(300, 310))


def test_bad_input_is_reported(make_vectors: Callable[..., np.ndarray]) -> None:
    x = make_vectors(100, seed=5)
    index = VectorIndex(x.shape[1], kind="flat").build(x)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(x[:2], [1, 500])
    with pytest.raises(UnknownIdError, match="777"):
        index.remove([1, 777])
    assert index.remove([1, 777], missing_ok=True) == 1
    with pytest.raises(UnknownIdError, match="9999"):
        index.update(x[:1], [9999])
    with pytest.raises(ValueError, match="shape"):
        index.search(np.zeros((1, 3), np.float32), 5)
    with pytest.raises(ValueError, match="non-negative"):
        index.add(x[:1], [-4])
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((1, x.shape[1]), np.nan), [1000])
    with pytest.raises(ValueError, match="unknown index kind"):
        VectorIndex(8, kind="annoy")
    with pytest.raises(ValueError, match="unknown index parameter"):
        VectorIndex(8, {"ef_serch": 10})


def test_auto_kind_follows_catalogue_size(make_vectors: Callable[..., np.ndarray]) -> None:
    x = make_vectors(300, seed=6)
    assert VectorIndex(x.shape[1]).build(x).kind == "flat"
    assert VectorIndex(x.shape[1], auto_flat_max=100).build(x).kind == "ivf-sq8"
    hnsw = VectorIndex(x.shape[1], auto_flat_max=100, auto_approx="hnsw").build(x)
    assert hnsw.kind == "hnsw"
    assert IndexParams().resolve_nlist(1_000_000) == 2048
    assert IndexParams().resolve_nlist(1000) == 25
    assert IndexParams().resolve_nprobe(2048) == 256 and IndexParams().resolve_nprobe(25) == 25
    assert IndexParams(nprobe=8).resolve_nprobe(2048) == 8


@pytest.mark.parametrize("kind", KINDS)
def test_persistence_round_trip_is_identical(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    x, q = data
    index = VectorIndex(x.shape[1], kind=kind, **SMALL.get(kind, {}))
    index.build(x, np.arange(len(x)) + 5)
    index.remove([5, 6, 7])
    before = index.search(q, 10, exclude=[[8, 9]] * len(q))
    index.save(tmp_path / "ix", {"model": "m1", "texts_sha256": "abc"})
    again = VectorIndex.load(tmp_path / "ix", {"model": "m1", "texts_sha256": "abc", "dim": 64})
    after = again.search(q, 10, exclude=[[8, 9]] * len(q))
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])
    assert again.kind == kind and len(again) == len(index) and again.params == index.params
    manifest = json.loads((tmp_path / "ix" / MANIFEST).read_text())
    for key in ("index_kind", "dim", "metric", "count", "versions", "files"):
        assert key in manifest
    assert manifest["metadata"]["model"] == "m1" and "faiss-cpu" in manifest["versions"]


@pytest.mark.parametrize("name", ["index.faiss", "ids.npz"])
def test_corrupted_index_files_are_refused(
    tmp_path: Path, name: str, make_vectors: Callable[..., np.ndarray]
) -> None:
    x = make_vectors(200, seed=7)
    folder = VectorIndex(x.shape[1], kind="hnsw").build(x).save(tmp_path / "ix")
    blob = bytearray((folder / name).read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match=f"{name}: checksum mismatch"):
        VectorIndex.load(folder)


def test_mismatched_index_is_refused(
    tmp_path: Path, make_vectors: Callable[..., np.ndarray]
) -> None:
    x = make_vectors(200, seed=8)
    folder = VectorIndex(x.shape[1], kind="flat").build(x).save(
        tmp_path / "ix", {"model": "sentence-transformers/all-MiniLM-L6-v2"}
    )
    with pytest.raises(ModelFileError, match="built with model=.*all-MiniLM-L6-v2.*other/model"):
        VectorIndex.load(folder, {"model": "other/model"})
    with pytest.raises(ModelFileError, match="dimension 64, expected 384"):
        VectorIndex.load(folder, {"dim": 384})
    (folder / "ids.npz").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        VectorIndex.load(folder)
    with pytest.raises(ModelFileError, match="no such model folder"):
        VectorIndex.load(tmp_path / "nowhere")


def test_empty_index_searches_to_nothing(tmp_path: Path) -> None:
    index = VectorIndex(16, kind="flat").build(np.zeros((0, 16), np.float32))
    scores, ids = index.search(np.ones((2, 16), np.float32), 3)
    assert (ids == -1).all() and np.isneginf(scores).all()
    again = VectorIndex.load(index.save(tmp_path / "empty"))
    assert len(again) == 0
    again.add(np.eye(16, dtype=np.float32)[:2], [4, 9])
    assert again.search(np.eye(16, dtype=np.float32)[1], 1)[1][0][0] == 9


# ---------------------------------------------------------------------- exclusion near the query
@pytest.fixture(scope="module")
def catalogue_10k(make_vectors: Callable[..., np.ndarray]) -> tuple[np.ndarray, VectorIndex]:
    x = make_vectors(10_000, seed=11)
    return x, VectorIndex(x.shape[1], kind="hnsw").build(x)


def history_queries(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """User vectors as the retriever makes them: the mean of 50 random items."""
    rng = np.random.default_rng(seed)
    q = np.stack([x[rng.choice(len(x), 50, replace=False)].mean(axis=0) for _ in range(n)])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("n_excluded", [300, 2700])
def test_hnsw_exclusion_around_the_query_keeps_recall(
    catalogue_10k: tuple[np.ndarray, VectorIndex], n_excluded: int
) -> None:
    # the user's seen items cluster around the user vector: excluding the nearest ones used to
    # fill the beam with excluded nodes (recall@100 0.16-0.32 with 2,700 excluded)
    x, index = catalogue_10k
    q = history_queries(x, 8, seed=12)
    exclude = [np.argsort(-(x @ row))[:n_excluded] for row in q]
    _, got = index.search(q, 100, exclude=exclude)
    flat = VectorIndex(x.shape[1], kind="flat").build(x)
    _, truth = flat.search(q, 100, exclude=exclude)
    assert (got >= 0).all()
    assert recall(got, truth) >= 0.95
    for row, excl in zip(got, exclude, strict=True):
        assert not set(row) & set(excl)


def test_short_hnsw_answers_are_completed_exactly(
    catalogue_10k: tuple[np.ndarray, VectorIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, index = catalogue_10k
    q = history_queries(x, 4, seed=13)
    exclude = [np.argsort(-(x @ row))[:6000] for row in q]
    # a starved beam (what a plain efSearch = k gave) comes back with fewer than k results
    monkeypatch.setattr(VectorIndex, "_hnsw_ef", lambda self, k, n_excluded: k, raising=False)
    scores, got = index.search(q, 100, exclude=exclude)
    assert (got >= 0).all() and np.isfinite(scores).all()
    _, truth = VectorIndex(x.shape[1], kind="flat").build(x).search(q, 100, exclude=exclude)
    assert recall(got, truth) == 1.0  # the short answers were searched exactly


@pytest.mark.parametrize("kind", ["ivf-flat", "ivf-sq8"])
def test_ivf_with_few_probes_still_fills_k_under_exclusion(
    make_vectors: Callable[..., np.ndarray], kind: str
) -> None:
    x = make_vectors(400, seed=14)
    index = VectorIndex(x.shape[1], kind=kind, nlist=8, nprobe=1).build(x)
    q = x[:5]
    exclude = [np.argsort(-(x @ row))[:300] for row in q]
    _, got = index.search(q, 60, exclude=exclude)
    assert ((got >= 0).sum(axis=1) == 60).all()  # 100 allowed: k is filled
    _, got = index.search(q, 150, exclude=exclude)
    assert ((got >= 0).sum(axis=1) == 100).all()  # only 100 allowed: all of them
    for row, excl in zip(got, exclude, strict=True):
        assert not set(row) & set(excl)
