"""A FAISS index of unit vectors with stable int64 ids, exact exclusion and safe persistence.

:class:`VectorIndex` wraps one FAISS index (inner product, i.e. cosine on unit vectors):

======================  ===================================================================
``kind``                index
======================  ===================================================================
``"flat"``              ``IndexFlatIP``: exact brute force.
``"hnsw"``              ``IndexHNSWFlat``: graph search; ``hnsw_m``, ``ef_construction``,
                        ``ef_search``.
``"ivf-flat"``          ``IndexIVFFlat``: inverted lists of full vectors; ``nlist``, ``nprobe``.
``"ivf-sq8"``           ``IndexIVFScalarQuantizer`` (8 bits a dimension, 4x smaller).
``"ivf-pq"``            ``IndexIVFPQ`` (``pq_m`` sub-quantizers of ``pq_nbits`` bits).
``"auto"``              ``"flat"`` up to ``auto_flat_max`` vectors (default 100,000), else
                        ``auto_approx`` (default ``"ivf-sq8"``); decided when the index is
                        built.
======================  ===================================================================

Ids are caller-chosen non-negative int64 values that never change when other items are added,
removed or updated. Inside, flat and HNSW indexes address vectors by position and keep a
position -> id array; IVF indexes store the ids themselves (with a hash-table direct map).

Add, remove and update work without a full rebuild:

* flat: removal compacts the FAISS storage (``remove_ids``); update overwrites the stored rows
  in place.
* IVF: removal and update are native (``remove_ids`` + ``add_with_ids``).
* HNSW: FAISS cannot delete from an HNSW graph, so a removed vector becomes a *tombstone*: it
  stays in the graph (where it still helps navigation) but an ``IDSelectorBitmap`` of the live
  positions keeps it out of every result. An update is a tombstone plus an insertion. When
  tombstones exceed ``hnsw_rebuild_fraction`` of the graph (default 0.3) the graph is rebuilt
  from the live vectors, which FAISS stores exactly; :meth:`VectorIndex.compact` does it on
  demand.

Exclusion is exact: :meth:`VectorIndex.search` takes, per query, ids that must not be returned
and passes them to FAISS as ``SearchParameters(sel=IDSelectorNot(IDSelectorBatch(...)))``, so
an excluded id is never returned and no result is wasted on one. Queries that share the same
exclusion are searched in one batch. What comes back:

* flat: exactly the best ``k`` of the allowed vectors.
* every kind: ``min(k, number of allowed vectors)`` results, never fewer. A query that an
  approximate search answers short (its beam or its probed lists held too few allowed
  vectors) is searched again: IVF with 4x the lists probed, up to all of them (an exhaustive
  scan of the quantised vectors); HNSW by an exact scan of its stored vectors.
* HNSW: the approximate best ``k`` of the allowed vectors. A user's excluded (seen) items
  cluster around the user's vector, where they would fill the search beam, so the beam is
  widened to ``efSearch = (max(ef_search, k) + excluded) / (1 - tombstone share)``: the
  room an unexcluded search has, plus a place per excluded vector (tombstones are spread
  over the graph and take their share of the beam). When a widened beam reaches 1/16 of the
  graph, an exact scan of the stored vectors is cheaper and is used instead. Recall is then
  about what HNSW reaches with no exclusion at ``ef_search`` (measured on realistic vectors:
  recall@100 about 0.9 with the 300 nearest of 100,000 excluded, 0.77 unexcluded), not a
  guarantee of the exact best ``k``; raise ``ef_search`` for more.
* IVF: the approximate best ``k`` at ``nprobe`` (plus the widening above when short).

GPU: with ``use_gpu`` (default: when FAISS sees a GPU) flat and IVF searches run on a GPU copy
of the index. FAISS's GPU indexes take no id selector, so there exclusion fetches
``k + len(excluded)`` results and drops the excluded ones; for a flat index this is exact too
(the excluded items can take at most ``len(excluded)`` of the places). Searches that would need
more than the GPU's k limit (2048), and short answers, run on the CPU index.

Persistence (:meth:`VectorIndex.save` / :meth:`VectorIndex.load`): a folder with
``index.faiss`` (FAISS's own format), ``ids.npz`` (no pickle) and ``manifest.json`` (kind,
parameters, dimension, metric, count, caller metadata such as the embedding model and the
checksum of the item texts, library versions, and the sha256 of every file), written
atomically. Loading verifies the checksums and the expected metadata and refuses a corrupted or
mismatched index with :class:`~hybridrec.errors.ModelFileError`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from hybridrec.errors import ModelFileError, UnknownIdError
from hybridrec.persistence import (
    atomic_directory,
    library_versions,
    load_arrays,
    read_manifest,
    save_arrays,
    write_manifest,
)

logger = logging.getLogger(__name__)

KINDS = ("auto", "flat", "hnsw", "ivf-flat", "ivf-sq8", "ivf-pq")
ARTIFACT = "faiss-index"
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.npz"
METRIC = "inner_product"
GPU_MAX_K = 2048


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as err:
        from hybridrec.errors import MissingDependencyError

        raise MissingDependencyError(
            "the FAISS index needs faiss; install it with `pip install faiss-cpu` "
            "(or faiss-gpu)"
        ) from err
    return faiss


@dataclass(frozen=True)
class IndexParams:
    """Parameters of a :class:`VectorIndex` (all exposed; defaults suit 384-d text embeddings).

    Attributes:
        kind: one of :data:`KINDS`.
        auto_flat_max: ``"auto"`` builds an exact flat index up to this many vectors.
        auto_approx: what ``"auto"`` builds above ``auto_flat_max``. IVF-SQ8 by default: on the
            benchmark (``benchmarks/retrieval``) it reaches recall@100 0.95 at a higher
            speed-up than HNSW on 2 CPU cores, builds about 15x faster at 1M items, stores a
            quarter of the bytes and removes items natively.
        hnsw_m: HNSW neighbours per node (memory ~ ``2 * hnsw_m * 4`` bytes a vector).
        ef_construction: HNSW build-time beam width (build time grows with it).
        ef_search: HNSW search beam width (recall and cost grow with it; at least ``k``).
        hnsw_rebuild_fraction: rebuild the HNSW graph when this share of it is tombstones.
        nlist: IVF lists; ``None`` picks a power of two near ``2 * sqrt(n)``, at most ``n / 39``.
        nprobe: IVF lists visited per query; ``None`` means ``max(128, nlist // 8)`` (on the
            benchmark's realistic catalogues, recall@100 0.98 at 10k and 100k items, 0.977 at
            1M, where it is 19x faster than the flat index at batch 1).
        pq_m: IVF-PQ sub-quantizers (must divide the dimension).
        pq_nbits: bits per PQ code.
        train_size: IVF training sample size; ``None`` means ``min(n, 64 * nlist)``.
        refine_factor: with a ``rerank`` function given to :meth:`VectorIndex.search` (exact
            scores from vectors the caller holds), fetch ``refine_factor * k`` candidates and
            keep the best ``k`` by exact score; 4-8 restores most of IVF-PQ's lost recall.
        kmeans_iter: k-means iterations when training an IVF quantizer (and PQ codebooks).
        use_gpu: search on a GPU copy (flat/IVF) when FAISS sees one; ``None`` means auto.
        seed: seed of the IVF training sample and k-means.
    """

    kind: str = "auto"
    auto_flat_max: int = 100_000
    auto_approx: str = "ivf-sq8"
    hnsw_m: int = 32
    ef_construction: int = 40
    ef_search: int = 128
    hnsw_rebuild_fraction: float = 0.3
    nlist: int | None = None
    nprobe: int | None = None
    pq_m: int = 48
    pq_nbits: int = 8
    train_size: int | None = None
    refine_factor: int = 1
    kmeans_iter: int = 10
    use_gpu: bool | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown index kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.auto_approx not in KINDS or self.auto_approx in ("auto", "flat"):
            raise ValueError(f"auto_approx must be an approximate kind, not {self.auto_approx!r}")
        for name in (
            "hnsw_m", "ef_construction", "ef_search", "nprobe", "pq_m", "pq_nbits", "refine_factor"
        ):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.hnsw_rebuild_fraction <= 1:
            raise ValueError("hnsw_rebuild_fraction must be in (0, 1]")

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None = None, **more: Any) -> IndexParams:
        """Build from a mapping, naming unknown keys in the error."""
        merged = {**(params or {}), **more}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ValueError(f"unknown index parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**merged)

    def resolve_kind(self, n: int) -> str:
        """The concrete kind for ``n`` vectors."""
        if self.kind != "auto":
            return self.kind
        return "flat" if n <= self.auto_flat_max else self.auto_approx

    def resolve_nprobe(self, nlist: int) -> int:
        """IVF lists to visit for an index of ``nlist`` lists."""
        return int(min(nlist, self.nprobe or max(128, nlist // 8)))

    def resolve_nlist(self, n: int) -> int:
        """IVF list count for ``n`` training vectors."""
        nlist = self.nlist or 2 ** round(math.log2(max(1.0, 2 * math.sqrt(max(n, 1)))))
        return int(max(1, min(nlist, n // 39 if n >= 39 else 1)))


def _as_vectors(vectors: object, dim: int, what: str = "vectors") -> np.ndarray:
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), got {np.shape(vectors)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return arr


def _as_ids(ids: object, n: int | None = None) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n is not None and len(arr) != n:
        raise ValueError(f"{len(arr)} ids for {n} vectors")
    if (arr < 0).any():
        raise ValueError("ids must be non-negative (FAISS uses -1 for 'no result')")
    if len(np.unique(arr)) != len(arr):
        raise ValueError("ids must be unique")
    return arr


class VectorIndex:
    """FAISS inner-product index with stable int64 ids; see the module docstring.

    Args:
        dim: vector dimension.
        params: an :class:`IndexParams` or a mapping of its fields.
        **kwargs: more :class:`IndexParams` fields (``kind="hnsw", ef_search=64``).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(100, 8)).astype(np.float32)
        >>> index = VectorIndex(8, kind="flat").build(x, np.arange(100) * 10)
        >>> scores, ids = index.search(x[:1], k=3, exclude=[[0]])
        >>> 0 in ids[0], len(index)
        (False, 100)
    """

    def __init__(
        self, dim: int, params: IndexParams | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = int(dim)
        if isinstance(params, IndexParams):
            self.params = replace(params, **kwargs) if kwargs else params
        else:
            self.params = IndexParams.from_dict(params, **kwargs)
        self.kind: str | None = None if self.params.kind == "auto" else self.params.kind
        self._index: Any = None
        # flat / hnsw: position -> id (-1 marks an HNSW tombstone); ivf: the live ids
        self._labels = np.empty(0, np.int64)
        self._n_live = 0
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        self._alive_bitmap: np.ndarray | None = None
        self._gpu_index: Any = None

    # ------------------------------------------------------------------ info
    def __len__(self) -> int:
        """Number of live vectors."""
        return self._n_live

    def __repr__(self) -> str:
        return f"VectorIndex(dim={self.dim}, kind={self.kind or 'auto'!r}, n={len(self)})"

    @property
    def is_ivf(self) -> bool:
        return bool(self.kind and self.kind.startswith("ivf"))

    @property
    def exact(self) -> bool:
        """Whether searches are exact (a flat index)."""
        return self.kind == "flat"

    @property
    def ids(self) -> np.ndarray:
        """Ids of the live vectors, ascending."""
        return self._id_lookup()[0].copy()

    @property
    def n_tombstones(self) -> int:
        """Removed-but-not-yet-compacted vectors in an HNSW graph (0 for other kinds)."""
        return len(self._labels) - self._n_live

    @property
    def faiss_index(self) -> Any:
        """The underlying FAISS index (read it, do not mutate it)."""
        return self._index

    def __contains__(self, item_id: object) -> bool:
        return bool(self._positions(np.asarray([item_id], np.int64))[0] >= 0)

    # ------------------------------------------------------------------ id bookkeeping
    def _touch(self) -> None:
        """Forget what derives from the id map (call after every change to it)."""
        self._n_live = int((self._labels >= 0).sum()) if self.kind == "hnsw" else len(self._labels)
        self._lookup = None
        self._alive_bitmap = None
        self._gpu_index = None

    def _id_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted live ids, their FAISS ids) for vectorised id -> FAISS id lookups."""
        if self._lookup is None:
            if self.is_ivf:
                ids = np.sort(self._labels)
                self._lookup = (ids, ids)
            else:
                pos = np.flatnonzero(self._labels >= 0)
                ids = self._labels[pos]
                order = np.argsort(ids, kind="stable")
                self._lookup = (ids[order], pos[order].astype(np.int64))
        return self._lookup

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """FAISS ids of the given ids; -1 for ids not in the index."""
        sorted_ids, fids = self._id_lookup()
        if not len(sorted_ids):
            return np.full(len(ids), -1, np.int64)
        at = np.searchsorted(sorted_ids, ids).clip(0, len(sorted_ids) - 1)
        return np.where(sorted_ids[at] == ids, fids[at], -1)

    def _to_ids(self, fids: np.ndarray) -> np.ndarray:
        if self.is_ivf:
            return fids
        return np.where(fids >= 0, self._labels[np.maximum(fids, 0)], -1)

    # ------------------------------------------------------------------ building
    def _new_index(self, kind: str, n_train: int) -> Any:
        faiss = _faiss()
        p = self.params
        metric = faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, p.hnsw_m, metric)
            index.hnsw.efConstruction = p.ef_construction
            index.hnsw.efSearch = p.ef_search
            return index
        nlist = p.resolve_nlist(n_train)
        quantizer = faiss.IndexFlatIP(self.dim)
        if kind == "ivf-flat":
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, metric)
        elif kind == "ivf-sq8":
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_8bit, metric
            )
        elif kind == "ivf-pq":
            if self.dim % p.pq_m:
                raise ValueError(f"pq_m={p.pq_m} must divide the dimension {self.dim}")
            index = faiss.IndexIVFPQ(quantizer, self.dim, nlist, p.pq_m, p.pq_nbits, metric)
            index.pq.cp.niter = p.kmeans_iter
        else:  # pragma: no cover - IndexParams validates kinds
            raise ValueError(kind)
        index.nprobe = p.resolve_nprobe(nlist)
        index.cp.niter = p.kmeans_iter
        index.cp.seed = p.seed
        return index

    def _train(self, vectors: np.ndarray) -> None:
        p = self.params
        nlist = self._index.nlist
        size = p.train_size or min(len(vectors), 64 * nlist)
        sample = vectors
        if size < len(vectors):
            rng = np.random.default_rng(p.seed)
            sample = vectors[np.sort(rng.choice(len(vectors), size, replace=False))]
        logger.info("training %s (nlist=%d) on %d vectors", self.kind, nlist, len(sample))
        self._index.train(sample)
        self._index.set_direct_map_type(_faiss().DirectMap.Hashtable)

    def build(self, vectors: object, ids: object | None = None) -> VectorIndex:
        """(Re)build from scratch: choose the kind (for ``"auto"``), train if needed, add.

        Args:
            vectors: ``(n, dim)`` float32 (unit length for cosine scores).
            ids: ``n`` unique non-negative ints; default ``0 .. n-1``.
        """
        x = _as_vectors(vectors, self.dim)
        id_arr = _as_ids(np.arange(len(x)) if ids is None else ids, len(x))
        self.kind = self.params.resolve_kind(len(x))
        self._index = None
        self._labels = np.empty(0, np.int64)
        self._touch()
        if len(x):
            self._create(x)
            self._add(x, id_arr)
        logger.info("built a %s index of %d vectors (dim %d)", self.kind, len(x), self.dim)
        return self

    def _create(self, train_vectors: np.ndarray) -> None:
        assert self.kind is not None
        self._index = self._new_index(self.kind, len(train_vectors))
        if self.is_ivf:
            self._train(train_vectors)

    def _add(self, x: np.ndarray, ids: np.ndarray) -> None:
        if self.is_ivf:
            self._index.add_with_ids(x, ids)
        else:
            self._index.add(x)
        self._labels = np.concatenate([self._labels, ids])
        self._touch()

    def add(self, vectors: object, ids: object) -> None:
        """Add new vectors under new ids (an id already present is an error: use :meth:`update`).

        An empty ``"auto"`` index becomes flat or approximate by the size of this first batch;
        an untrained IVF index is trained on it.
        """
        x = _as_vectors(vectors, self.dim)
        id_arr = _as_ids(ids, len(x))
        if not len(x):
            return
        present = id_arr[self._positions(id_arr) >= 0]
        if len(present):
            raise ValueError(
                f"ids already in the index (use update): {present[:10].tolist()}"
                + (f" and {len(present) - 10} more" if len(present) > 10 else "")
            )
        if self._index is None:
            if self.kind is None:
                self.kind = self.params.resolve_kind(len(x))
            self._create(x)
        self._add(x, id_arr)

    def _require(self, ids: np.ndarray) -> np.ndarray:
        fids = self._positions(ids)
        if (fids < 0).any():
            raise UnknownIdError("index item", [str(i) for i in ids[fids < 0]])
        return fids

    def remove(self, ids: object, *, missing_ok: bool = False) -> int:
        """Remove vectors by id; returns how many were removed.

        Raises:
            UnknownIdError: an id is not in the index (unless ``missing_ok``).
        """
        id_arr = _as_ids(ids)
        if missing_ok:
            id_arr = id_arr[self._positions(id_arr) >= 0]
        fids = self._require(id_arr)
        if not len(fids):
            return 0
        faiss = _faiss()
        if self.kind == "flat":
            self._index.remove_ids(faiss.IDSelectorBatch(fids))
            self._labels = np.delete(self._labels, fids)
        elif self.kind == "hnsw":
            self._labels[fids] = -1
            self._touch()
            if self.n_tombstones > self.params.hnsw_rebuild_fraction * self._index.ntotal:
                self.compact()
        else:
            arr = np.ascontiguousarray(fids)
            self._index.remove_ids(faiss.IDSelectorArray(len(arr), faiss.swig_ptr(arr)))
            self._labels = np.setdiff1d(self._labels, id_arr, assume_unique=True)
        self._touch()
        return len(fids)

    def update(self, vectors: object, ids: object) -> None:
        """Replace the vectors of existing ids (an unknown id is an error: use :meth:`add`)."""
        x = _as_vectors(vectors, self.dim)
        id_arr = _as_ids(ids, len(x))
        fids = self._require(id_arr)
        if not len(fids):
            return
        if self.kind == "flat":
            faiss = _faiss()
            stored = faiss.rev_swig_ptr(self._index.get_xb(), self._index.ntotal * self.dim)
            stored.reshape(self._index.ntotal, self.dim)[fids] = x
            self._touch()
        elif self.kind == "hnsw":
            self._labels[fids] = -1
            self._add(x, id_arr)
            if self.n_tombstones > self.params.hnsw_rebuild_fraction * self._index.ntotal:
                self.compact()
        else:
            self.remove(id_arr)
            self._add(x, id_arr)

    def compact(self) -> None:
        """Rebuild an HNSW graph without its tombstones (other kinds: nothing to do)."""
        if self.kind != "hnsw" or not self.n_tombstones:
            return
        live = np.flatnonzero(self._labels >= 0)
        vectors = self._stored_vectors()[live].copy()
        labels = self._labels[live]
        logger.info("rebuilding the HNSW graph: %d live, %d tombstones", len(live),
                    self.n_tombstones)
        self._index = self._new_index("hnsw", len(vectors))
        self._labels = np.empty(0, np.int64)
        self._add(vectors, labels)

    def _stored_vectors(self) -> np.ndarray:
        """The exact stored vectors of a flat or HNSW index, by position (a view)."""
        faiss = _faiss()
        storage = self._index if self.kind == "flat" else faiss.downcast_index(self._index.storage)
        n = storage.ntotal
        return faiss.rev_swig_ptr(storage.get_xb(), n * self.dim).reshape(n, self.dim)

    def reconstruct(self, ids: object) -> np.ndarray:
        """Stored vectors of ids (exact for flat/HNSW/IVF-flat, decoded for SQ8/PQ)."""
        id_arr = np.asarray(ids, dtype=np.int64).ravel()
        fids = self._require(id_arr)
        if self.is_ivf:
            return np.stack([self._index.reconstruct(int(f)) for f in fids]) if len(fids) else (
                np.zeros((0, self.dim), np.float32)
            )
        return self._stored_vectors()[fids].copy()

    # ------------------------------------------------------------------ searching
    def _alive_selector(self) -> Any:
        """An IDSelectorBitmap of live HNSW positions, or None when there are no tombstones."""
        if self.kind != "hnsw" or not self.n_tombstones:
            return None
        if self._alive_bitmap is None:
            self._alive_bitmap = np.packbits(self._labels >= 0, bitorder="little")
        faiss = _faiss()
        return faiss.IDSelectorBitmap(len(self._labels), faiss.swig_ptr(self._alive_bitmap))

    def _hnsw_ef(self, k: int, n_excluded: int) -> int:
        """HNSW beam width for ``k`` results with ``n_excluded`` live vectors excluded.

        Excluded (seen) items cluster around the query and can fill the beam, so the beam
        keeps the room an unexcluded search has (``max(ef_search, k)``) *plus* one place per
        excluded vector; tombstones are spread over the graph, so it grows by their share of it.
        """
        dead = self.n_tombstones / max(1, len(self._labels))
        room = max(self.params.ef_search, k) + n_excluded
        return int(math.ceil(room / max(1e-3, 1.0 - dead)))

    def _search_params(self, k: int, selector: Any, *, ef: int | None = None,
                       nprobe: int | None = None) -> Any:
        faiss = _faiss()
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = int(ef if ef is not None else max(self.params.ef_search, k))
        elif self.is_ivf:
            params = faiss.SearchParametersIVF()
            params.nprobe = int(
                nprobe if nprobe is not None else self.params.resolve_nprobe(self._index.nlist)
            )
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def _gpu(self) -> Any:
        """A GPU copy of a flat/IVF index when wanted and available, else None."""
        if self.kind == "hnsw" or self.params.use_gpu is False or self._index is None:
            return None
        faiss = _faiss()
        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
            if self.params.use_gpu:
                logger.warning("use_gpu=True but FAISS sees no GPU; searching on the CPU")
            return None
        if self._gpu_index is None:
            if not hasattr(self, "_gpu_resources"):
                self._gpu_resources = faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
            if self.is_ivf:
                self._gpu_index.nprobe = self.params.resolve_nprobe(self._index.nlist)
        return self._gpu_index

    def search(
        self,
        queries: object,
        k: int,
        *,
        exclude: Sequence[Sequence[int] | np.ndarray] | None = None,
        rerank: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` live vectors per query by inner product (approximately, but for flat).

        Every query gets ``min(k, allowed vectors)`` results; see the module docstring for how
        approximate kinds widen their search under exclusion.

        Args:
            queries: ``(nq, dim)`` or ``(dim,)`` float32.
            k: results per query.
            exclude: per query, ids that must not be returned (ids not in the index are
                ignored); ``None`` for none.
            rerank: ``rerank(queries, ids) -> scores`` giving exact scores (``-inf`` for id
                -1) from vectors the caller holds. Approximate indexes then return exact
                scores, re-sorted, after fetching ``refine_factor * k`` candidates.

        Returns:
            ``(scores, ids)``, each ``(nq, k)``, best first; where fewer than ``k`` vectors are
            allowed, ids are -1 and scores ``-inf``.
        """
        q = _as_vectors(queries, self.dim, "queries")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if exclude is not None and len(exclude) != len(q):
            raise ValueError(f"exclude has {len(exclude)} rows for {len(q)} queries")
        scores = np.full((len(q), k), -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        if self._index is None or len(self) == 0 or not len(q):
            return scores, ids
        groups: dict[bytes, list[int]] = {}
        excl_fids: list[np.ndarray] = []
        for row in range(len(q)):
            if exclude is None or exclude[row] is None or len(exclude[row]) == 0:
                fids = np.empty(0, np.int64)
            else:
                fids = self._positions(np.unique(np.asarray(exclude[row], dtype=np.int64)))
                fids = fids[fids >= 0]
            excl_fids.append(fids)
            groups.setdefault(fids.tobytes(), []).append(row)
        fetch = k * self.params.refine_factor if rerank is not None and not self.exact else k
        for rows in groups.values():
            row_arr = np.asarray(rows)
            s, i = self._search_group(q[row_arr], fetch, excl_fids[rows[0]])
            if rerank is not None and not self.exact:
                s = np.asarray(rerank(q[row_arr], i), dtype=np.float32)
                order = np.lexsort((i, -s), axis=1)[:, :k]  # best first, ties by id, -1 last
                i, s = np.take_along_axis(i, order, 1), np.take_along_axis(s, order, 1)
            scores[row_arr], ids[row_arr] = s, i
        return scores, ids

    def _search_group(
        self, q: np.ndarray, k: int, fids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search queries that share one exclusion set (FAISS ids of live vectors).

        Every query gets ``min(k, allowed)`` results: answers an approximate search leaves
        short are searched again, wider (see the module docstring).
        """
        want = min(k, len(self) - len(fids))
        gpu = self._gpu()
        if gpu is not None and k + len(fids) <= GPU_MAX_K:
            d, labels = self._search_gpu(gpu, q, k, fids)
        elif self.kind == "hnsw":
            ef = self._hnsw_ef(k, len(fids))
            if ef > self.params.ef_search and 16 * ef >= self._index.ntotal:
                d, labels = self._search_cpu(q, k, fids, exact=True)
            else:
                d, labels = self._search_cpu(q, k, fids, ef=ef)
        else:
            d, labels = self._search_cpu(q, k, fids)
        short = np.flatnonzero((labels >= 0).sum(axis=1) < want)
        if len(short):
            d, labels = d.copy(), labels.copy()
            d[short], labels[short] = self._search_short(q[short], k, fids, want)
        return self._finish(d, labels, k)

    def _search_short(
        self, q: np.ndarray, k: int, fids: np.ndarray, want: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search again queries whose first answer held fewer than ``want`` results."""
        if not self.is_ivf:  # HNSW (or a flat GPU copy): an exact scan of the stored vectors
            logger.debug("%d short HNSW answer(s); searching them exactly", len(q))
            return self._search_cpu(q, k, fids, exact=True)
        nlist = int(self._index.nlist)
        nprobe = self.params.resolve_nprobe(nlist)
        d = np.full((len(q), min(k, self._index.ntotal)), -np.inf, np.float32)
        labels = np.full(d.shape, -1, np.int64)
        todo = np.arange(len(q))
        while len(todo):
            nprobe = min(nlist, nprobe * 4)
            logger.debug("%d short IVF answer(s); probing %d of %d lists", len(todo), nprobe,
                         nlist)
            d[todo], labels[todo] = self._search_cpu(q[todo], k, fids, nprobe=nprobe)
            if nprobe >= nlist:  # exhaustive: every allowed vector was scored
                break
            todo = todo[(labels[todo] >= 0).sum(axis=1) < want]
        return d, labels

    def _search_gpu(
        self, gpu: Any, q: np.ndarray, k: int, fids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        kk = min(k + len(fids), self._index.ntotal)
        d, labels = gpu.search(q, kk)
        if len(fids):
            drop = np.isin(labels, fids)
            labels = np.where(drop, -1, labels)
            d = np.where(drop, -np.inf, d)
            order = np.argsort(labels < 0, axis=1, kind="stable")  # keep order, -1s last
            labels = np.take_along_axis(labels, order, 1)
            d = np.take_along_axis(d, order, 1)
        return d[:, :k], labels[:, :k]

    def _search_cpu(
        self,
        q: np.ndarray,
        k: int,
        fids: np.ndarray,
        *,
        ef: int | None = None,
        nprobe: int | None = None,
        exact: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One FAISS search on the CPU index with the live-and-not-excluded selector.

        ``exact`` scans an HNSW graph's stored vectors (an ``IndexFlat``) instead of the graph.
        """
        faiss = _faiss()
        keep: list[Any] = []  # SWIG selectors do not own what they point to
        selector = self._alive_selector()
        if selector is not None:
            keep.append(selector)
        if len(fids):
            batch = faiss.IDSelectorBatch(fids)
            negated = faiss.IDSelectorNot(batch)
            keep += [fids, batch, negated]
            if selector is not None:
                selector = faiss.IDSelectorAnd(selector, negated)
                keep.append(selector)
            else:
                selector = negated
        kk = min(k, self._index.ntotal)
        if exact and self.kind == "hnsw":
            params = faiss.SearchParameters()
            if selector is not None:
                params.sel = selector
            d, labels = faiss.downcast_index(self._index.storage).search(q, kk, params=params)
        else:
            params = self._search_params(k, selector, ef=ef, nprobe=nprobe)
            d, labels = self._index.search(q, kk, params=params)
        del keep
        return d, labels

    def _finish(self, d: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        out_ids = np.full((len(d), k), -1, np.int64)
        out_scores = np.full((len(d), k), -np.inf, np.float32)
        got = self._to_ids(labels.astype(np.int64))
        out_ids[:, : got.shape[1]] = got
        out_scores[:, : got.shape[1]] = np.where(got >= 0, d, -np.inf)
        return out_scores, out_ids

    # ------------------------------------------------------------------ persistence
    def manifest_fields(self) -> dict[str, Any]:
        """What the manifest records about this index."""
        return {
            "artifact": ARTIFACT,
            "index_kind": self.kind,
            "index_params": asdict(self.params),
            "dim": self.dim,
            "metric": METRIC,
            "count": len(self),
            "faiss_total": 0 if self._index is None else int(self._index.ntotal),
        }

    def save_into(self, folder: Path) -> None:
        """Write ``index.faiss`` and ``ids.npz`` into an existing (temporary) folder."""
        faiss = _faiss()
        folder.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            faiss.write_index(self._index, str(folder / INDEX_FILE))
        save_arrays(folder / IDS_FILE, {"labels": self._labels})

    def save(
        self,
        path: str | Path,
        metadata: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = False,
    ) -> Path:
        """Save to a folder atomically, with a manifest holding ``metadata`` (model, checksums).

        An existing saved index is replaced only with ``overwrite=True``; any other existing
        file or folder is never replaced (see :func:`hybridrec.persistence.atomic_directory`).

        Example:
            >>> # index.save("catalogue.index", {"model": "sentence-transformers/all-MiniLM-L6-v2"})
        """
        path = Path(path)
        with atomic_directory(path, overwrite=overwrite) as tmp:
            self.save_into(tmp)
            write_manifest(
                tmp,
                {
                    **self.manifest_fields(),
                    "metadata": dict(metadata or {}),
                    "versions": library_versions("faiss-cpu", "faiss-gpu", "sentence-transformers"),
                },
            )
        return path

    @classmethod
    def load(cls, path: str | Path, expect: Mapping[str, Any] | None = None) -> VectorIndex:
        """Load a folder written by :meth:`save`, verifying checksums and expected metadata.

        Args:
            path: the index folder.
            expect: metadata that must match (``{"model": ..., "texts_sha256": ...}``), and/or
                ``dim``.

        Raises:
            ModelFileError: missing or corrupted files, or metadata that does not match.
        """
        path = Path(path)
        manifest = read_manifest(path)
        if manifest.get("artifact") != ARTIFACT:
            raise ModelFileError(f"{path}: not a hybridrec FAISS index folder")
        expect = dict(expect or {})
        dim = expect.pop("dim", None)
        if dim is not None and manifest.get("dim") != dim:
            raise ModelFileError(
                f"{path}: index has dimension {manifest.get('dim')}, expected {dim}"
            )
        metadata = manifest.get("metadata", {})
        for key, want in expect.items():
            if metadata.get(key) != want:
                raise ModelFileError(
                    f"{path}: index was built with {key}={metadata.get(key)!r}, but "
                    f"{key}={want!r} is expected; rebuild the index"
                )
        return cls.from_folder(path, manifest)

    @classmethod
    def from_folder(cls, folder: Path, manifest: Mapping[str, Any]) -> VectorIndex:
        """Read the files of an index folder whose manifest has already been checked."""
        try:
            params = IndexParams.from_dict(manifest["index_params"])
            obj = cls(int(manifest["dim"]), params)
            obj.kind = manifest["index_kind"]
            built = bool(manifest.get("faiss_total"))
            if (obj.kind is None and built) or (obj.kind is not None and obj.kind not in KINDS[1:]):
                raise ValueError(f"bad index kind {obj.kind!r}")
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{folder}: invalid index manifest ({err})") from err
        obj._labels = load_arrays(folder / IDS_FILE).get("labels", np.empty(0, np.int64))
        obj._labels = np.asarray(obj._labels, np.int64)
        if manifest.get("faiss_total", 0):
            faiss = _faiss()
            try:
                obj._index = faiss.read_index(str(folder / INDEX_FILE))
            except RuntimeError as err:
                raise ModelFileError(
                    f"{folder / INDEX_FILE}: cannot read FAISS index ({err})"
                ) from err
            if obj._index.d != obj.dim:
                raise ModelFileError(f"{folder}: FAISS index dimension {obj._index.d} != {obj.dim}")
            expected_total = len(obj._labels)
            if obj._index.ntotal != expected_total:
                raise ModelFileError(
                    f"{folder}: FAISS index holds {obj._index.ntotal} vectors but the id map "
                    f"{expected_total}"
                )
            if obj.kind == "hnsw":
                obj._index.hnsw.efSearch = params.ef_search
        obj._touch()
        if len(obj) != manifest.get("count", len(obj)):
            raise ModelFileError(f"{folder}: id map does not match the manifest's count")
        return obj
