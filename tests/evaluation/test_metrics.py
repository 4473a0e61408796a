"""Retrieval metrics against rankings worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from imgret.evaluation.metrics import (
    Metrics,
    folds,
    mean_metrics,
    query_recall_at,
    ranks_from_vectors,
    summarize,
    target_ranks,
)

# Three queries over a gallery of four images.
SIMILARITY = np.array(
    [
        [0.9, 0.1, 0.3, 0.2],  # target 0 is the best: rank 1
        [0.5, 0.4, 0.8, 0.1],  # target 1 is beaten by 2 and 0: rank 3
        [0.2, 0.2, 0.2, 0.7],  # target 0 is tied with 1 and 2 behind 3: pessimistic rank 4
    ]
)


def test_ranks_by_hand():
    assert target_ranks(SIMILARITY, [0, 1, 0]).tolist() == [1, 3, 4]


def test_tie_counts_against_the_target_whatever_the_order():
    tie = np.array([[0.5, 0.5, 0.5, 0.1]])
    assert [target_ranks(tie, [t])[0] for t in (0, 1, 2)] == [3, 3, 3]
    assert target_ranks(tie, [3]).tolist() == [4]


def test_float_noise_is_a_tie_but_a_real_difference_is_not():
    near = np.array([[0.8, 0.8 + 3e-7, 0.8 - 2e-6]], dtype=np.float32)
    assert target_ranks(near, [0]).tolist() == [2]
    assert target_ranks(near, [2]).tolist() == [3]
    assert target_ranks(near, [0], tolerance=0.0).tolist() == [2]
    assert target_ranks(near, [1], tolerance=0.0).tolist() == [1]


def test_constant_scores_rank_every_target_last():
    flat = np.zeros((5, 5))
    assert target_ranks(flat, range(5)).tolist() == [5] * 5


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="one target per query"):
        target_ranks(SIMILARITY, [0, 1])
    with pytest.raises(ValueError, match="0..3"):
        target_ranks(SIMILARITY, [0, 1, 4])
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(np.array([[np.nan, 1.0]]), [0])


def test_ranks_from_vectors_match_the_matrix_in_any_chunking():
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(11, 8)).astype(np.float32)
    gallery = rng.normal(size=(7, 8)).astype(np.float32)
    targets = rng.integers(0, 7, size=11)
    expected = target_ranks(queries @ gallery.T, targets)
    for chunk in (1, 3, 100):
        assert ranks_from_vectors(queries, gallery, targets, chunk=chunk).tolist() == (
            expected.tolist()
        )


def test_summary_by_hand():
    ranks = [1, 3, 4, 6, 12, 25]
    m = summarize(ranks)
    assert m == Metrics(
        r1=1 / 6, r5=3 / 6, r10=4 / 6, r20=5 / 6, median_rank=5.0, mean_rank=51 / 6, queries=6
    )
    assert query_recall_at(np.array(ranks), 3) == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="no queries"):
        summarize([])


def test_folds_are_averaged_not_pooled():
    a = summarize([1, 1, 1, 2])  # R@1 0.75, mean rank 1.25
    b = summarize([10, 30])  # R@1 0, mean rank 20
    mean = mean_metrics([a, b])
    assert mean.r1 == pytest.approx(0.375)
    assert mean.mean_rank == pytest.approx(10.625)
    assert mean.median_rank == pytest.approx((1 + 20) / 2)
    assert mean.queries == 6


def test_folds_cut_whole_galleries_and_drop_the_remainder():
    assert folds(5000, 1000) == [range(i, i + 1000) for i in range(0, 5000, 1000)]
    assert folds(2500, 1000) == [range(0, 1000), range(1000, 2000)]
    assert folds(239, 1000) == [range(239)]
    assert folds(1000, 1000) == [range(1000)]
    assert folds(0, 1000) == []
