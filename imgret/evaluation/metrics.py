"""Retrieval metrics: where does the right image land for each query, and how often near the top.

Pure numpy, so the numbers can be checked by hand and reused on any similarity matrix.

Ties are ranked pessimistically: the right image's rank is the number of gallery images that
score at least as high as it does (itself included). Identical descriptions give identical
vectors, so exact ties are common (counts-only descriptions such as "one person is in the
photo." are shared by many images). Counting the tie against the system makes the result
independent of the gallery's order and of the sort algorithm, keeps ranks whole numbers so
R@K stays the plain fraction of queries with rank ≤ K, and cannot be gamed: a model that
gives every image the same vector ranks every target last instead of first. The figures are
therefore a lower bound on what a search that breaks ties by luck would show.

"At least as high" allows a tolerance of 1e-6: the same text embedded in two batches can come
out a few float32 steps apart (padding changes the arithmetic), and that noise must not decide
whether two images with the same description tie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

RECALL_KS = (1, 5, 10, 20)
TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Metrics:
    """Recall at 1/5/10/20 (fractions), median and mean rank of the right image (1 = top)."""

    r1: float
    r5: float
    r10: float
    r20: float
    median_rank: float
    mean_rank: float
    queries: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def target_ranks(
    similarity: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    tolerance: float = TIE_TOLERANCE,
) -> np.ndarray:
    """1-based rank of each query's target image in its row of ``similarity`` [queries × gallery].

    A tie (a score within ``tolerance`` of the target's) counts against the target.
    """
    sim = np.asarray(similarity)
    idx = np.asarray(targets, dtype=np.int64)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be a 2-d [queries × gallery] matrix, got {sim.shape}")
    if idx.shape != (sim.shape[0],):
        raise ValueError(f"need one target per query: {sim.shape[0]} queries, {idx.shape} targets")
    if idx.size and (idx.min() < 0 or idx.max() >= sim.shape[1]):
        raise ValueError(f"target indices must lie in 0..{sim.shape[1] - 1}")
    if np.isnan(sim).any():
        raise ValueError("the similarity matrix holds NaN: the embedder produced invalid vectors")
    target_scores = sim[np.arange(sim.shape[0]), idx]
    return (sim >= target_scores[:, None] - tolerance).sum(axis=1).astype(np.int64)


def ranks_from_vectors(
    queries: np.ndarray,
    gallery: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    chunk: int = 2048,
) -> np.ndarray:
    """Ranks from L2-normalised vectors (cosine = dot product), a chunk of queries at a time.

    Chunking keeps memory flat: 25,000 COCO queries against a 5,000-image gallery would
    otherwise need a 500 MB matrix.
    """
    idx = np.asarray(targets, dtype=np.int64)
    parts = [
        target_ranks(queries[start : start + chunk] @ gallery.T, idx[start : start + chunk])
        for start in range(0, len(queries), chunk)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def query_recall_at(ranks: np.ndarray, k: int) -> float:
    """Fraction of queries whose target is within the top ``k``."""
    ranks = np.asarray(ranks)
    return float((ranks <= k).mean()) if ranks.size else float("nan")


def summarize(ranks: Sequence[int] | np.ndarray) -> Metrics:
    """All metrics of one gallery (fold) from its queries' ranks."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no queries to evaluate: the gallery's images have no captions")
    r1, r5, r10, r20 = (query_recall_at(ranks, k) for k in RECALL_KS)
    return Metrics(
        r1=r1,
        r5=r5,
        r10=r10,
        r20=r20,
        median_rank=float(np.median(ranks)),
        mean_rank=float(ranks.mean()),
        queries=int(ranks.size),
    )


def mean_metrics(per_fold: Sequence[Metrics]) -> Metrics:
    """The mean of per-fold metrics, as the 1k-gallery protocol reports them; queries are summed."""
    if not per_fold:
        raise ValueError("no folds to average")
    values = {
        f.name: float(np.mean([getattr(m, f.name) for m in per_fold]))
        for f in fields(Metrics)
        if f.name != "queries"
    }
    return Metrics(**values, queries=sum(m.queries for m in per_fold))


def folds(n_images: int, gallery_size: int) -> list[range]:
    """Consecutive galleries of ``gallery_size`` images, as the Karpathy 1k protocol cuts them.

    A remainder smaller than a gallery is left out (a smaller gallery would inflate recall);
    with fewer images than one gallery there is one fold of all of them.
    """
    if gallery_size < 1:
        raise ValueError("the gallery size must be at least 1")
    if n_images <= gallery_size:
        return [range(n_images)] if n_images else []
    return [
        range(start, start + gallery_size)
        for start in range(0, n_images - gallery_size + 1, gallery_size)
    ]
