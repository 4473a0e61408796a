"""Nearest neighbours of query vectors among the stored image vectors, by inner product.

Stored vectors are L2-normalised, so the inner product is the cosine similarity. Two indexes
share one interface, ``search(queries [q, d], k) -> (scores [q, k'], ids [q, k'])`` with
``k' = min(k, len(index))``, best first:

* :class:`ExactIndex` scans every vector (float32). Scanning is bounded by memory
  bandwidth: ~20 ms per query over 10^5 768-d vectors, ~150 ms over 10^6 on 2 cores
  (bench/RESULTS.md). It reads the matrix in chunks, so a memory-mapped ``.npy`` larger
  than RAM works and the score buffer stays small however many queries come at once.
* :class:`SignCodeIndex` (optional extra ``faiss``) finds candidates by the Hamming distance
  of one sign bit per component, 1/32 of the bytes, and ranks them by exact scores: ~13 ms
  over 10^6 vectors, at a recall of the true top 10 that depends on the data (1.0 on
  clustered and on MiniLM description vectors, 0.28 on random ones, which have no
  neighbourhoods). Chosen over FAISS's inverted files, which need seconds to minutes of
  k-means and reached lower recall at the same speed in the same runs.
"""

from __future__ import annotations

import mmap

import numpy as np
import torch

from imgret.errors import BadInputError, MissingPackageError

GATHER_SHARE = 4
"""A filter that keeps under 1/4 of the rows has them copied out and scored; a broader one
scans every row and leaves the others out (bench/filtered_search.py)."""
CHUNK_BYTES = 256 << 20
"""Bytes of stored vectors (and at most of scores) per step: few steps, since each one costs a
round of thread start-up in BLAS, and a [q, chunk] score buffer that stays small."""


def _scores(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """[q, n] inner products of ``queries`` [q, d] with ``rows`` [n, d].

    Computed by torch, not numpy: a search has just embedded its query with torch, whose
    OpenMP threads keep spinning for a while after each operation, and a numpy product then
    runs on OpenBLAS's own threads, fighting them for the cores (on 2 cores a search over
    10^5 vectors took 50–80 ms that way, 15 ms on torch's pool: bench/RESULTS.md). Arrays
    are shared, not copied (see :func:`_shareable`).
    """
    with torch.inference_mode():
        product = torch.from_numpy(np.ascontiguousarray(rows)) @ torch.from_numpy(queries).T
    return product.T.numpy()


def _shareable(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as an array torch takes as it is: a read-only memory map (the search
    cache's) is mapped again copy-on-write, writable in memory while the file is never
    written; another read-only array is copied once."""
    if vectors.flags.writeable:
        return vectors
    if isinstance(vectors, np.memmap) and isinstance(vectors.base, mmap.mmap):
        return np.memmap(
            vectors.filename,
            dtype=vectors.dtype,
            mode="c",
            offset=vectors.offset,
            shape=vectors.shape,
            order="C" if vectors.flags.c_contiguous else "F",
        )
    return vectors.copy()


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
        raise BadInputError(f"k must be at least 1, got {k}")


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


class _StoredVectors:
    """The stored [n, d] matrix both indexes score exactly."""

    def __init__(self, vectors: np.ndarray):
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a [n, d] matrix, got shape {vectors.shape}")
        # float32 arrays (memory maps included) are used in place, not copied.
        self.vectors = _shareable(
            vectors if vectors.dtype == np.float32 else vectors.astype(np.float32)
        )

    @property
    def dimension(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def _checked(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, int]:
        """Queries as a float32 [q, d] matrix, and k capped at the number of vectors."""
        _check_k(k)
        return _as_queries(queries, self.dimension), min(k, len(self))

    def _exact_among(
        self, queries: np.ndarray, k: int, among: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top k of the rows ``among`` (sorted ids), every one of them scored."""
        k = min(k, len(among))
        if k == 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        if len(among) * GATHER_SHARE < len(self):
            # A selective filter: copying its rows out is cheaper than scanning them all.
            scores = _scores(self.vectors[among], queries)
            return _best(scores, np.broadcast_to(among, scores.shape), k)
        # A broad one: one scan of every row (as unfiltered search), the others left out.
        outside = np.ones(len(self), dtype=bool)
        outside[among] = False
        best_scores = np.empty((len(queries), 0), dtype=np.float32)
        best_ids = np.empty((len(queries), 0), dtype=np.int64)
        rows = CHUNK_BYTES // (4 * max(1, self.dimension))
        step = max(k, min(rows, (CHUNK_BYTES // 4) // max(1, len(queries))))
        for start in range(0, len(self), step):
            scores = _scores(self.vectors[start : start + step], queries)
            scores[:, outside[start : start + step]] = -np.inf
            ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
            chunk = _best(scores, ids, k)
            best_scores, best_ids = _best(
                np.concatenate([best_scores, chunk[0]], axis=1),
                np.concatenate([best_ids, chunk[1]], axis=1),
                k,
            )
        return best_scores, best_ids


class ExactIndex(_StoredVectors):
    """Every stored vector scored against every query: recall 1, cost linear in the vectors."""

    def __init__(self, vectors: np.ndarray, chunk_rows: int | None = None):
        super().__init__(vectors)
        self.chunk_rows = chunk_rows or max(1, CHUNK_BYTES // (4 * max(1, vectors.shape[1])))

    def search(
        self, queries: np.ndarray, k: int, among: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows per query, best first; ``among`` (sorted row ids) limits the rows
        ranked, and the result is still exactly their top k."""
        queries, k = self._checked(queries, k)
        if among is not None:
            return self._exact_among(queries, k, among)
        best_scores = np.empty((len(queries), 0), dtype=np.float32)
        best_ids = np.empty((len(queries), 0), dtype=np.int64)
        # Fewer rows per step when many queries come at once keeps the score buffer bounded.
        step = max(k, min(self.chunk_rows, (CHUNK_BYTES // 4) // max(1, len(queries))))
        for start in range(0, len(self), step):
            chunk = self.vectors[start : start + step]
            scores = _scores(chunk, queries)
            ids = np.broadcast_to(np.arange(start, start + len(chunk)), scores.shape)
            chunk_scores, chunk_ids = _best(scores, ids, k)
            best_scores, best_ids = _best(
                np.concatenate([best_scores, chunk_scores], axis=1),
                np.concatenate([best_ids, chunk_ids], axis=1),
                k,
            )
        return best_scores, best_ids


def sign_codes(vectors: np.ndarray, chunk_rows: int = 1 << 16) -> np.ndarray:
    """The sign of every component, packed eight to a byte: [n, ceil(d / 8)] uint8.

    Chunked, so a memory-mapped matrix larger than RAM never becomes one boolean copy.
    """
    n, dimension = vectors.shape
    codes = np.empty((n, (dimension + 7) // 8), dtype=np.uint8)
    for start in range(0, n, chunk_rows):
        codes[start : start + chunk_rows] = np.packbits(
            np.asarray(vectors[start : start + chunk_rows]) > 0, axis=1
        )
    return codes


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise MissingPackageError(
            "the approximate index needs FAISS: pip install 'imgret[faiss]' (faiss-cpu), "
            "or use the exact index"
        ) from exc
    return faiss


class SignCodeIndex(_StoredVectors):
    """Candidates by the Hamming distance of sign bits, ranked by their exact scores.

    The signs of a vector's components keep much of its direction (the Hamming distance of
    two sign codes tracks the angle between the vectors, as SimHash does with the coordinate
    axes for hyperplanes) in 1/32 of its bytes, so finding candidates among 10^6
    768-d vectors reads 96 MB instead of 3 GB; the best ``candidates`` of them (at least
    ``10 k``) are then scored exactly from the float32 vectors, so scores and order among
    the hits are exact and only a true neighbour missed by the codes is lost. Recall of the
    true top 10 depends on the data (bench/RESULTS.md): near 1 where photos have near
    neighbours, low for random directions, which have none worth finding.
    """

    def __init__(self, vectors: np.ndarray, candidates: int = 500, codes: np.ndarray | None = None):
        super().__init__(vectors)
        self.candidates = candidates
        codes = sign_codes(self.vectors) if codes is None else codes
        if len(codes) != len(self.vectors):
            raise ValueError(f"{len(codes)} sign codes for {len(self.vectors)} vectors")
        self.codes = codes
        self.index = _faiss().IndexBinaryFlat(codes.shape[1] * 8)
        self.index.add(np.ascontiguousarray(codes))

    def _candidates_among(self, codes: np.ndarray, wanted: int, among: np.ndarray) -> np.ndarray:
        """The ``wanted`` rows of ``among`` nearest each query code. A broad filter's are
        found among all codes (the fast index), a selective one's by its own codes."""
        if len(among) * GATHER_SHARE >= len(self):
            found = _oversampled(self.index, codes, wanted, among, len(self))
            if found is not None:
                return found
        return _nearest_codes(self.codes[among], codes, wanted, among)

    def search(
        self, queries: np.ndarray, k: int, among: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`ExactIndex.search`, among each query's candidates.

        With ``among`` (sorted row ids, a filter's), candidates come from those rows only, so a
        selective filter still fills its k hits: one that keeps no more rows than there are
        candidates is ranked exactly, a broader one by the Hamming distances of its own codes
        (of all codes, through the fast index, when it keeps a quarter or more of the rows).
        """
        queries, k = self._checked(queries, k)
        wanted = min(len(self), max(self.candidates, 10 * k))
        if among is not None and len(among) <= wanted:
            return self._exact_among(queries, k, among)
        codes = sign_codes(queries)
        if among is None:
            _, candidates = self.index.search(codes, wanted)
        else:
            candidates = self._candidates_among(codes, wanted, among)
        scores, ids = [], []
        for query, rows in zip(queries, candidates, strict=True):
            # Sorted rows read a memory-mapped matrix front to back.
            rows = np.sort(rows[rows >= 0])
            best = _best(_scores(self.vectors[rows], query[None]), rows[None], k)
            scores.append(best[0][0])
            ids.append(best[1][0])
        return np.stack(scores).astype(np.float32, copy=False), np.stack(ids)


def _oversampled(
    index: object, codes: np.ndarray, wanted: int, among: np.ndarray, total: int
) -> np.ndarray | None:
    """The ``wanted`` nearest codes of a broad filter's rows, found by searching all codes
    for more (twice the filter's inverse share) and keeping those in ``among``; None
    when too few of them are (a filter that leaves out the query's neighbourhood)."""
    inside = np.zeros(total, dtype=bool)
    inside[among] = True
    asked = min(total, 2 * wanted * total // max(1, len(among)))
    _, found = index.search(codes, asked)  # type: ignore[attr-defined]
    rows = []
    for ids in found:
        kept = ids[(ids >= 0) & inside[np.maximum(ids, 0)]][:wanted]
        if len(kept) < wanted:
            return None
        rows.append(kept)
    return np.stack(rows)


def _nearest_codes(
    codes: np.ndarray, queries: np.ndarray, wanted: int, ids: np.ndarray
) -> np.ndarray:
    """Per query code, the ``ids`` of the ``wanted`` codes nearest in Hamming distance."""
    rows = []
    for query in queries:
        distances = np.bitwise_count(codes ^ query).sum(axis=1, dtype=np.int32)
        rows.append(ids[np.argpartition(distances, wanted - 1)[:wanted]])
    return np.stack(rows)


def neighbour_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-k ids (rows of ``truth``) that ``found`` also returned."""
    pairs = zip(found.tolist(), truth.tolist(), strict=True)
    return sum(len(set(f) & set(t)) for f, t in pairs) / truth.size
