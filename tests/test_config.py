"""Profiles: one word picks a whole pipeline."""

from __future__ import annotations

import pytest
from PIL import Image

from imgret.models.onnx_detector import (
    OnnxDetector,
)
from tests.support.shared_data import COCO_SAMPLE, YOLOX_NANO, needs_shared

# --- profiles ------------------------------------------------------------------------------------


@needs_shared(YOLOX_NANO)
def test_cpu_profile_runs_yolox_nano_from_the_models_folder():
    from imgret.config import apply_profile
    from imgret.models.stages import load_stages

    config = apply_profile("cpu", models_dir=YOLOX_NANO.parent.parent, device="cpu")
    assert (config.captioner, config.topics, config.embedder) == (None, None, "minilm")
    detector = load_stages(config, which=["detector"]).detector
    assert isinstance(detector, OnnxDetector)
    (counts,) = detector.detect([Image.open(COCO_SAMPLE / "images" / "000000000139.jpg")])
    assert counts["tv"] == 1 and counts["person"] >= 1
    assert apply_profile("cpu", ocr="rapidocr").ocr == "rapidocr"


def test_unknown_profile_lists_the_known_ones():
    from imgret.config import apply_profile

    with pytest.raises(ValueError, match="cpu, original"):
        apply_profile("gpu")
