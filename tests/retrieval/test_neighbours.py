"""Nearest-neighbour search: exact top-k against a full sort, ties, edge cases, sign-code recall."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from imgret.retrieval.neighbours import (
    ExactIndex,
    SignCodeIndex,
    _oversampled,
    neighbour_recall,
    sign_codes,
)


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n: int, d: int, clusters: int, seed: int) -> np.ndarray:
    """Unit vectors around random centres, as embeddings of a photo collection group by subject;
    the noise is wide enough that neighbourhoods overlap."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(clusters, d, seed + 1)
    x = centres[rng.integers(clusters, size=n)] + 1.5 * unit_rows(n, d, seed + 2)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int):
    """Sort every score; equal scores in id order (the contract of both indexes)."""
    scores = queries.astype(np.float64) @ vectors.T.astype(np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


@pytest.mark.parametrize("chunk_rows", [None, 7, 64])
@pytest.mark.parametrize("k", [1, 10, 50])
def test_exact_matches_a_full_sort(chunk_rows, k):
    vectors, queries = unit_rows(500, 32, 0), unit_rows(9, 32, 1)
    scores, ids = ExactIndex(vectors, chunk_rows=chunk_rows).search(queries, k)
    want_scores, want_ids = brute_force(vectors, queries, k)
    assert ids.shape == scores.shape == (9, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert scores.dtype == np.float32 and ids.dtype == np.int64


@pytest.mark.parametrize("chunk_rows", [None, 3, 5])
def test_equal_scores_rank_by_id_whatever_the_chunks(chunk_rows):
    vectors = unit_rows(18, 16, 2)
    duplicates = [0, 1, 4, 9, 12, 17]  # one photo stored six times
    vectors[duplicates] = vectors[0]
    index = ExactIndex(vectors, chunk_rows=chunk_rows)
    scores, ids = index.search(vectors[0], 4)
    assert ids[0].tolist() == duplicates[:4]
    scores, ids = index.search(vectors[0], 8)
    assert ids[0, :6].tolist() == duplicates
    np.testing.assert_allclose(scores[0, :6], 1.0, atol=1e-6)
    assert scores[0, 6] < scores[0, 5] - 1e-3


def test_k_beyond_the_index_returns_everything_once():
    vectors = unit_rows(5, 8, 3)
    scores, ids = ExactIndex(vectors).search(unit_rows(2, 8, 4), 100)
    assert ids.shape == (2, 5)
    assert sorted(ids[0].tolist()) == list(range(5))
    assert (np.diff(scores, axis=1) <= 0).all()


def test_bad_queries_say_what_is_wrong():
    index = ExactIndex(unit_rows(5, 8, 3))
    with pytest.raises(ValueError, match=r"\[q, 8\]"):
        index.search(unit_rows(1, 7, 0), 3)
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search(unit_rows(1, 8, 0), 0)


def test_memory_mapped_npy_gives_the_same_hits(tmp_path):
    vectors, queries = unit_rows(300, 24, 5), unit_rows(4, 24, 6)
    np.save(tmp_path / "feature_matrix.npy", vectors)
    stored = (tmp_path / "feature_matrix.npy").read_bytes()
    mapped = ExactIndex(np.load(tmp_path / "feature_matrix.npy", mmap_mode="r"))
    # Still a map of the file (not a copy in memory), writable copy-on-write so torch can
    # score it in place; the file itself is never written.
    assert isinstance(mapped.vectors, np.memmap) and mapped.vectors.flags.writeable
    assert Path(mapped.vectors.filename) == (tmp_path / "feature_matrix.npy").resolve()
    expected = ExactIndex(vectors).search(queries, 10)
    for got, want in zip(mapped.search(queries, 10), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert (tmp_path / "feature_matrix.npy").read_bytes() == stored


def test_recall_at_k_counts_shared_ids():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])
    assert neighbour_recall(found, truth) == pytest.approx(6 / 8)


needs_faiss = pytest.mark.skipif(
    importlib.util.find_spec("faiss") is None, reason="faiss-cpu (extra 'faiss') not installed"
)


def test_sign_codes_pack_signs_in_chunks_of_a_memory_map(tmp_path):
    vectors = unit_rows(1000, 36, 13)
    np.save(tmp_path / "v.npy", vectors)
    codes = sign_codes(np.load(tmp_path / "v.npy", mmap_mode="r"), chunk_rows=64)
    assert codes.shape == (1000, 5) and codes.dtype == np.uint8
    np.testing.assert_array_equal(np.unpackbits(codes, axis=1)[:, :36], vectors > 0)


@needs_faiss
def test_sign_codes_find_neighbours_and_rank_them_by_exact_scores():
    """At a real embedder's dimension: fewer bits estimate angles too coarsely."""
    vectors = clustered(4000, 384, clusters=50, seed=14)
    queries = vectors[:100] + 0.3 * unit_rows(100, 384, 15)
    _, truth = ExactIndex(vectors).search(queries, 10)
    scores, ids = SignCodeIndex(vectors, candidates=100).search(queries, 10)
    assert neighbour_recall(ids, truth) > 0.9
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[ids]), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


@needs_faiss
def test_sign_codes_with_every_vector_a_candidate_are_exact():
    vectors, queries = unit_rows(300, 20, 16), unit_rows(7, 20, 17)
    index = SignCodeIndex(vectors, candidates=300, codes=sign_codes(vectors))
    for got, want in zip(
        index.search(queries, 25), ExactIndex(vectors).search(queries, 25), strict=True
    ):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert index.search(queries, 1000)[1].shape == (7, 300)
    with pytest.raises(ValueError, match="299 sign codes for 300 vectors"):
        SignCodeIndex(vectors, codes=sign_codes(vectors)[1:])


@needs_faiss
@pytest.mark.parametrize("share", ["half", "far half"])
def test_sign_codes_among_a_broad_filter_rank_only_its_rows_and_fill_k(share):
    """A broad filter's candidates come from the fast index over every code (kept when in
    the filter); a filter that leaves out the query's neighbourhood (the far half) falls
    back to its own codes. Either way: only its rows, k of them, exactly scored."""
    vectors = clustered(4000, 384, clusters=50, seed=18)
    queries = vectors[:20] + 0.3 * unit_rows(20, 384, 19)
    index = SignCodeIndex(vectors, candidates=100)
    for query in queries:
        if share == "half":
            among = np.arange(0, 4000, 2)
        else:  # the half of the rows least like the query
            among = np.sort(np.argsort(vectors @ query)[:2000])
        _, truth = ExactIndex(vectors).search(query, 10, among=among)
        scores, ids = index.search(query, 10, among=among)
        assert ids.shape == (1, 10) and np.isin(ids, among).all()
        np.testing.assert_allclose(scores[0], vectors[ids[0]] @ query, atol=1e-5)
        oversampled = _oversampled(index.index, sign_codes(query[None]), 100, among, 4000)
        if share == "half":
            assert oversampled is not None and neighbour_recall(ids, truth) >= 0.8
        else:
            assert oversampled is None
