"""Profiles: one word picks a whole pipeline."""

from __future__ import annotations

import pytest
from PIL import Image

from imgret.config import Config
from imgret.errors import BadInputError
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


def test_the_cpu_profile_tags_and_the_original_keeps_its_four_models():
    from imgret.config import Config, apply_profile

    assert apply_profile("cpu").tagger == "efficientnet-lite0"
    assert apply_profile("cpu", tagger=None).tagger is None
    assert apply_profile("original").tagger is None and Config().tagger is None


def test_the_tagger_is_keyed_apart_from_the_other_vision_stages():
    from imgret.config import Config

    plain, tagged = Config(), Config(tagger="efficientnet-lite0", tagger_top_k=3)
    assert plain.vision_key() == tagged.vision_key()
    assert plain.tagger_key() == {} and tagged.tagger_key()["tagger_top_k"] == 3
    assert "tagger_top_k" not in tagged.text_key()


def test_unknown_profile_lists_the_known_ones():
    from imgret.config import apply_profile

    with pytest.raises(ValueError, match="cpu, original"):
        apply_profile("gpu")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("batch_size", 0),
        ("batch_size", -1),
        ("text_batch_size", 1.5),
        ("decode_workers", True),
        ("detector_confidence", float("nan")),
        ("topic_threshold", float("inf")),
        ("max_image_megapixels", -1.0),
    ],
)
def test_numbers_outside_their_range_are_refused(name, value):
    with pytest.raises(BadInputError, match=f"the setting {name} must be"):
        Config(**{name: value})


def test_a_remembered_number_this_release_refuses_takes_its_default():
    """An older release stored --batch-size -1 (and then indexed nothing, run after run)."""
    stored = {**Config(batch_size=8).to_dict(), "batch_size": -1, "topic_threshold": 0.3}
    assert Config.from_dict(stored).batch_size == Config().batch_size
    assert Config.from_dict(stored).topic_threshold == 0.3
