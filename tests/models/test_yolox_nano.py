"""The real YOLOX-Nano on real photos: what its README says it finds, and its counts against
COCO's boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from imgret.config import Config
from imgret.models.detector import load_detector
from tests.support.coco_counts import agreement, ground_truth
from tests.support.shared_data import COCO_SAMPLE, YOLOX_NANO, needs_shared

# --- the real YOLOX-Nano on real photos ---------------------------------------------------------

pytestmark = pytest.mark.slow  # real models: run by default and in CI, `-m 'not slow'` skips


@needs_shared(YOLOX_NANO)
def test_yolox_nano_finds_what_its_readme_says():
    detector = load_detector(str(YOLOX_NANO.parent), Config(device="cpu", detector_confidence=0.3))
    (found,) = detector.predict([Image.open(COCO_SAMPLE / "images" / "000000000139.jpg")], 0.3)
    labels = [detector.names[i] for i in found.class_ids]
    assert labels[0] == "tv" and found.scores[0] == pytest.approx(0.90, abs=0.01)
    assert {"person", "clock", "chair"} <= set(labels)
    # the TV is annotated at x 5–155, y 167–263 in COCO
    np.testing.assert_allclose(found.boxes[0], [5, 167, 155, 263], atol=6)


@needs_shared(COCO_SAMPLE)
@needs_shared(YOLOX_NANO)
def test_yolox_nano_counting_quality_on_val_images():
    """Counts against COCO annotations on 30 val2017 images (bench/detector_counts.py).

    Measured at the default threshold 0.25: exact-count rate 0.362, MAE 1.08. Feeding RGB
    instead of BGR gives 0.317 and 1.33, so the floors tell a real regression from noise.
    """
    truth, splits = ground_truth(COCO_SAMPLE)
    files = [f for f in sorted(truth) if splits[f] == "val2017"][:30]
    detector = load_detector(str(YOLOX_NANO), Config(device="cpu"))
    counts = []
    for start in range(0, len(files), 10):
        batch = [Image.open(COCO_SAMPLE / "images" / f) for f in files[start : start + 10]]
        counts.extend(detector.detect(batch))
    result = agreement(counts, [truth[f] for f in files])
    assert result.pairs > 100
    assert result.exact >= 0.33
    assert result.mae <= 1.2


@needs_shared(COCO_SAMPLE)
@needs_shared(YOLOX_NANO)
def test_yolox_nano_possible_classes_leave_the_counts_as_they_were():
    """One pass at the 0.05 floor counts exactly what a pass at 0.25 counts (NMS only lets a
    box suppress lower-scored ones), and adds possible classes. On all 239 coco-sample images
    the counts were equal and 448 possible classes were added."""
    files = sorted((COCO_SAMPLE / "images").glob("*.jpg"))[:24]
    images = [Image.open(path) for path in files]
    on = load_detector(str(YOLOX_NANO), Config(device="cpu"))
    off = load_detector(str(YOLOX_NANO), Config(device="cpu", detector_possible_floor=0))
    assert (on.counting.lowest, off.counting.lowest) == (0.05, 0.25)
    with_possible, without = on.detect(images), off.detect(images)
    assert [{k: n for k, n in found.items() if n} for found in with_possible] == without
    possible = [[k for k, n in found.items() if n == 0] for found in with_possible]
    assert all(len(classes) <= 3 for classes in possible)
    assert sum(map(len, possible)) > len(images)
    assert all(0 not in found.values() for found in without)


def test_ground_truth_leaves_out_crowds_and_unannotated_images(tmp_path):
    instances = {
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
        "images": [
            {"id": 1, "file_name": "a.jpg", "split": "val2017"},
            {"id": 2, "file_name": "b.jpg", "split": "train2017"},
        ],
        "annotations": [
            {"image_id": 1, "category_id": 1, "iscrowd": 0},
            {"image_id": 1, "category_id": 1, "iscrowd": 0},
            {"image_id": 1, "category_id": 18, "iscrowd": 0},
            {"image_id": 1, "category_id": 1, "iscrowd": 1},
        ],
    }
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    truth, splits = ground_truth(tmp_path)
    assert truth == {"a.jpg": {"person": 2, "dog": 1}} and splits == {"a.jpg": "val2017"}
    result = agreement([{"person": 2, "cat": 1}], [truth["a.jpg"]])
    # pairs: person 2 vs 2, dog 0 vs 1, cat 1 vs 0
    assert (result.pairs, result.exact, result.mae) == (
        3,
        pytest.approx(1 / 3),
        pytest.approx(2 / 3),
    )
