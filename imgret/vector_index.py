"""Nearest neighbours of query vectors among the stored image vectors, by inner product.

Stored vectors are L2-normalised, so the inner product is the cosine similarity. Two indexes
share one interface, ``search(queries [q, d], k) -> (scores [q, k'], ids [q, k'])`` with
``k' = min(k, len(index))``, best first:

* :class:`ExactIndex` scans every vector (numpy, float32). Scanning a matrix is bounded by
  memory bandwidth, so it is the right choice up to some 10^4–10^5 vectors; it reads the
  matrix in chunks, so a memory-mapped ``.npy`` larger than RAM works and the score buffer
  stays small however many queries come at once.
* :class:`FaissIndex` (optional extra ``faiss``) is an inverted-file index: k-means cells,
  and a query scans only the ``nprobe`` cells nearest to it. It answers a query over 10^6
  vectors in milliseconds at the price of recall below 1 (measure it with :func:`recall_at_k`).
  Training costs seconds to minutes, so save it next to the store and load it back.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

CHUNK_BYTES = 256 << 20
"""Bytes of stored vectors (and at most of scores) per step: few steps, since each one costs a
round of thread start-up in BLAS, and a [q, chunk] score buffer that stays small."""


def _as_queries(queries: np.ndarray, dimension: int) -> np.ndarray:
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != dimension:
        raise ValueError(
            f"queries must be [q, {dimension}] (the index's dimension), got {queries.shape}; "
            "embed them with the same embedder the index was built with"
        )
    return np.ascontiguousarray(queries)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _best(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k highest scores, best first; equal scores go to the lower id, so results
    do not depend on how the vectors were chunked (duplicate photos give equal scores)."""
    if scores.shape[1] > k:
        # The k-th best score decides membership; everything tied with it stays a candidate.
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
        keep = scores >= kth
        counts = keep.sum(axis=1)
        if (counts == k).all():
            scores = scores[keep].reshape(len(scores), k)
            ids = ids[keep].reshape(len(ids), k)
        else:
            # Ties at the boundary: gather each row's candidates (a stable sort of booleans is
            # linear), padding short rows with -inf, which never beats a real candidate.
            where = np.argsort(~keep, axis=1, kind="stable")[:, : counts.max()]
            ids = np.take_along_axis(ids, where, 1)
            scores = np.where(
                np.take_along_axis(keep, where, 1), np.take_along_axis(scores, where, 1), -np.inf
            ).astype(np.float32)
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


class ExactIndex:
    """Every stored vector scored against every query: recall 1, cost linear in the vectors."""

    def __init__(self, vectors: np.ndarray, chunk_rows: int | None = None):
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a [n, d] matrix, got shape {vectors.shape}")
        # float32 arrays (memory maps included) are used in place, not copied.
        self.vectors = vectors if vectors.dtype == np.float32 else vectors.astype(np.float32)
        self.chunk_rows = chunk_rows or max(1, CHUNK_BYTES // (4 * max(1, vectors.shape[1])))

    @classmethod
    def from_npy(cls, path: Path | str, mmap: bool = True) -> ExactIndex:
        """Open a float32 ``.npy`` (as ``imgret export`` writes), memory-mapped by default."""
        return cls(np.load(path, mmap_mode="r" if mmap else None))

    @property
    def dimension(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _check_k(k)
        queries = _as_queries(queries, self.dimension)
        k = min(k, len(self))
        best_scores = np.empty((len(queries), 0), dtype=np.float32)
        best_ids = np.empty((len(queries), 0), dtype=np.int64)
        # Fewer rows per step when many queries come at once keeps the score buffer bounded.
        step = max(k, min(self.chunk_rows, (CHUNK_BYTES // 4) // max(1, len(queries))))
        for start in range(0, len(self), step):
            chunk = self.vectors[start : start + step]
            # [chunk, d] @ [d, q] runs as a matrix-vector product for one query (gemv), which
            # streams the stored vectors once; queries @ chunk.T would run as a slower gemm.
            scores = (chunk @ queries.T).T
            ids = np.broadcast_to(np.arange(start, start + len(chunk)), scores.shape)
            chunk_scores, chunk_ids = _best(scores, ids, k)
            best_scores, best_ids = _best(
                np.concatenate([best_scores, chunk_scores], axis=1),
                np.concatenate([best_ids, chunk_ids], axis=1),
                k,
            )
        return best_scores, best_ids


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "the approximate index needs FAISS: pip install 'imgret[faiss]' (faiss-cpu), "
            "or use the exact index"
        ) from exc
    return faiss


class FaissIndex:
    """FAISS inverted-file index over inner products: fast over millions, recall below 1.

    ``nlist`` cells (default about √n) are learnt by k-means on a sample; a query scans the
    ``nprobe`` cells nearest to it. ``encoding`` is a FAISS code: ``"Flat"`` keeps float32
    vectors (scores exact within the cells scanned), ``"SQ8"`` keeps one byte per component
    (a quarter of the memory and of the bytes scanned; scores off by about 1e-3).
    Below ``min_train`` vectors per cell the index falls back to a flat (exact) FAISS index.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        nlist: int | None = None,
        nprobe: int = 32,
        encoding: str = "Flat",
        seed: int = 0,
        min_train: int = 39,
    ):
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dimension = vectors.shape
        nlist = nlist or max(1, round(math.sqrt(n)))
        nlist = min(nlist, n // min_train)
        if nlist < 2:
            self.index = faiss.index_factory(dimension, encoding, faiss.METRIC_INNER_PRODUCT)
        else:
            self.index = faiss.index_factory(
                dimension, f"IVF{nlist},{encoding}", faiss.METRIC_INNER_PRODUCT
            )
            self.index.cp.seed = seed
            # k-means on a sample: 64 points per cell locate the cells as well as all of them.
            sample = np.random.default_rng(seed).choice(n, min(n, 64 * nlist), replace=False)
            self.index.train(vectors[np.sort(sample)])
        if not self.index.is_trained:
            self.index.train(vectors)
        self.index.add(vectors)
        self.nprobe = nprobe

    @property
    def nprobe(self) -> int:
        return getattr(self.index, "nprobe", 0)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        """Cells scanned per query: higher is slower and nearer to exact."""
        if hasattr(self.index, "nprobe"):
            self.index.nprobe = max(1, min(int(value), self.index.nlist))

    @property
    def dimension(self) -> int:
        return self.index.d

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`ExactIndex.search`; where the scanned cells hold fewer than k vectors the
        missing places have id -1 and score -inf."""
        _check_k(k)
        queries = _as_queries(queries, self.dimension)
        scores, ids = self.index.search(queries, min(k, len(self)))
        scores[ids < 0] = -np.inf
        return scores, ids.astype(np.int64, copy=False)

    def save(self, path: Path | str) -> None:
        """Write the trained index, so the next process loads it instead of training again."""
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path | str, nprobe: int | None = None) -> FaissIndex:
        """Read an index written by :meth:`save`."""
        self = cls.__new__(cls)
        self.index = _faiss().read_index(str(path))
        if nprobe is not None:
            self.nprobe = nprobe
        return self


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-k ids (rows of ``truth``) that ``found`` also returned."""
    pairs = zip(found.tolist(), truth.tolist(), strict=True)
    return sum(len(set(f) & set(t)) for f, t in pairs) / truth.size
