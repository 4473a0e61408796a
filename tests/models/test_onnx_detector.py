"""The ONNX detector: letterbox, decoding and NMS against hand-computed boxes, and both
layouts (YOLOX, Ultralytics, end-to-end exports) on hand-made models."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgret.config import Config
from imgret.models import Detector
from imgret.models.detector import load_detector
from imgret.models.onnx_detector import (
    END2END,
    ULTRALYTICS,
    YOLOX,
    OnnxDetector,
    decode_ultralytics,
    decode_yolox,
    detect_layout,
    letterbox,
    nms,
    yolox_grid,
)
from tests.support.tiny_detector import constant_onnx

ULTRALYTICS_META = {
    "author": "Ultralytics",
    "names": str({0: "cat", 1: "dog"}),
    "imgsz": "[64, 64]",
}


def wide_image() -> Image.Image:
    """128 wide, 64 high: fitted into 64×64 it is halved to 64×32 and padded by 32 rows."""
    return Image.new("RGB", (128, 64), (200, 10, 10))


# --- letterbox, decode, NMS ------------------------------------------------------------------


@pytest.mark.parametrize(("center", "top"), [(True, 16), (False, 0)])
def test_letterbox_places_the_resized_image_and_maps_boxes_back(center, top):
    image = np.zeros((64, 128, 3), np.uint8)
    image[:, :, 0] = 200
    canvas, box = letterbox(image, (64, 64), center=center)
    assert canvas.shape == (64, 64, 3)
    assert (box.ratio, box.left, box.top) == (0.5, 0, top)
    assert (canvas[top : top + 32, :, 0] == 200).all()
    assert (canvas[:top] == 114).all() and (canvas[top + 32 :] == 114).all()
    back = box.to_image(np.array([[0, top, 64, top + 32], [-10, 0, 80, 64]], np.float32))
    np.testing.assert_allclose(back, [[0, 0, 128, 64], [0, 0, 128, 64]])


def test_yolox_grid_and_decode():
    grid = yolox_grid((64, 64))
    assert len(grid) == 8 * 8 + 4 * 4 + 2 * 2
    np.testing.assert_array_equal(grid[9], [1, 1, 8])  # stride 8, row 1, column 1
    np.testing.assert_array_equal(grid[64], [0, 0, 16])  # first cell at stride 16
    raw = np.zeros((84, 7), np.float32)
    raw[9] = [0.5, 0.5, np.log(2), 0, 0.8, 0.5, 0.1]
    raw[64] = [0, 0, 0, 0, 1.0, 0.2, 0.3]
    boxes, scores = decode_yolox(raw, (64, 64))
    # centre (0.5 + 1) · 8 = 12, width 2 · 8 = 16, height 1 · 8 = 8
    np.testing.assert_allclose(boxes[9], [4, 8, 20, 16], atol=1e-5)
    np.testing.assert_allclose(scores[9], [0.4, 0.08], atol=1e-6)
    np.testing.assert_allclose(boxes[64], [-8, -8, 8, 8], atol=1e-5)
    np.testing.assert_allclose(scores[64], [0.2, 0.3], atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        decode_yolox(raw[:80], (64, 64))


def test_decode_ultralytics():
    raw = np.array([[10, 40], [20, 40], [4, 10], [6, 20], [0.9, 0.1], [0.05, 0.7]], np.float32)
    boxes, scores = decode_ultralytics(raw)
    np.testing.assert_allclose(boxes, [[8, 17, 12, 23], [35, 30, 45, 50]])
    np.testing.assert_allclose(scores, [[0.9, 0.05], [0.1, 0.7]])


def test_nms_suppresses_overlaps_within_a_class_only():
    boxes = np.array(
        [[0, 0, 10, 10], [1, 0, 11, 10], [5, 0, 15, 10], [0, 0, 10, 10], [50, 50, 60, 60]],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95], np.float32)
    classes = np.array([0, 0, 0, 1, 0])
    # IoU(box 0, box 1) = 90 / 110 = 0.82; IoU(box 0, box 2) = 50 / 150 = 0.33
    assert nms(boxes, scores, classes, iou=0.45).tolist() == [4, 0, 2, 3]
    assert nms(boxes, scores, classes, iou=0.3).tolist() == [4, 0, 3]
    assert nms(boxes, scores, classes, iou=0.3, max_detections=2).tolist() == [4, 0]
    assert nms(boxes[:0], scores[:0], classes[:0], iou=0.45).tolist() == []


def test_detect_layout():
    assert detect_layout([1, 3549, 85], 80, from_ultralytics=False) == YOLOX
    assert detect_layout(["batch", 84, "anchors"], 80, from_ultralytics=True) == ULTRALYTICS
    assert detect_layout([1, 6, 8400], 2, from_ultralytics=True) == ULTRALYTICS
    assert detect_layout([1, 300, 6], 80, from_ultralytics=True) == END2END
    with pytest.raises(ValueError, match="cannot tell the layout"):
        detect_layout([1, 3549, 85], 3, from_ultralytics=False)


# --- ONNX detector on hand-made models --------------------------------------------------------


def ultralytics_raw() -> np.ndarray:
    """[1, 4 + 2, 84]: two overlapping cats, a dog, and a dog below the threshold."""
    raw = np.zeros((1, 6, 84), np.float32)
    raw[0, :, 0] = [32, 32, 20, 20, 0.9, 0]
    raw[0, :, 1] = [33, 32, 20, 20, 0.8, 0]
    raw[0, :, 2] = [10, 24, 8, 8, 0, 0.6]
    raw[0, :, 3] = [50, 40, 8, 8, 0, 0.2]
    return raw


@pytest.mark.parametrize("batch", ["batch", 1])
def test_onnx_detector_on_an_ultralytics_layout(tmp_path, batch):
    path = constant_onnx(
        tmp_path / "yolo.onnx", ultralytics_raw(), (64, 64), batch=batch, metadata=ULTRALYTICS_META
    )
    detector = OnnxDetector(str(path), Config(device="cpu"))
    assert isinstance(detector, Detector)
    assert (detector.layout, detector.names, detector.size) == (
        ULTRALYTICS,
        ["cat", "dog"],
        (64, 64),
    )
    assert detector.fixed_batch == (1 if batch == 1 else None)
    found = detector.predict([wide_image()] * 3, confidence=0.25)
    assert len(found) == 3
    # input boxes [22, 22, 42, 42] and [6, 20, 14, 28]; the image sits 16 rows down, halved
    np.testing.assert_allclose(found[2].boxes, [[44, 12, 84, 52], [12, 8, 28, 24]], atol=1e-4)
    np.testing.assert_allclose(found[2].scores, [0.9, 0.6], atol=1e-6)
    assert detector.detect([wide_image(), wide_image()]) == [{"cat": 1, "dog": 1}] * 2
    assert detector.detect([]) == []


def test_onnx_detector_on_a_yolox_layout_with_a_classes_file(tmp_path):
    raw = np.zeros((1, 84, 7), np.float32)
    raw[0, 9] = [0.5, 0.5, np.log(2), 0, 0.8, 0.5, 0.1]  # box [4, 8, 20, 16], cat 0.4
    raw[0, 64] = [0, 0, 0, 0, 1.0, 0.1, 0.2]  # dog 0.2, under the threshold
    folder = tmp_path / "tiny-yolox"
    constant_onnx(folder / "model.onnx", raw, (64, 64), batch=1)
    (folder / "coco_classes.txt").write_text("cat\ndog\n")
    detector = load_detector(str(folder), Config(device="cpu", detector_confidence=0.25))
    assert isinstance(detector, OnnxDetector) and detector.layout == YOLOX
    (found,) = detector.predict([wide_image()], confidence=0.25)
    # top-left letterbox: the image is only halved, not shifted
    np.testing.assert_allclose(found.boxes, [[8, 16, 40, 32]], atol=1e-4)
    # the dog at 0.2 is named as possible, after the counted classes
    assert [list(found.items()) for found in detector.detect([wide_image()])] == [
        [("cat", 1), ("dog", 0)]
    ]
    off = load_detector(str(folder), Config(device="cpu", detector_possible_floor=0))
    assert off.detect([wide_image()]) == [{"cat": 1}]
    above = load_detector(str(folder), Config(device="cpu", detector_possible_floor=0.21))
    assert above.detect([wide_image()]) == [{"cat": 1}]
    assert detector.revision and len(detector.revision) == 12


def test_onnx_detector_on_an_end_to_end_export(tmp_path):
    raw = np.zeros((1, 5, 6), np.float32)
    raw[0, 0] = [0, 16, 32, 48, 0.8, 1]
    raw[0, 1] = [0, 16, 10, 26, 0.5, 1]
    raw[0, 2] = [0, 16, 10, 26, 0.1, 0]
    path = constant_onnx(tmp_path / "e2e.onnx", raw, (64, 64), metadata=ULTRALYTICS_META)
    detector = OnnxDetector(str(path), Config(device="cpu"))
    assert detector.layout == END2END
    (found,) = detector.predict([wide_image()], confidence=0.25)
    np.testing.assert_allclose(found.boxes, [[0, 0, 64, 64], [0, 0, 20, 20]], atol=1e-4)
    assert detector.detect([wide_image()]) == [{"dog": 2, "cat": 0}]


def test_onnx_errors_say_what_to_do(tmp_path):
    raw = ultralytics_raw()
    constant_onnx(tmp_path / "a" / "model.onnx", raw, (64, 64))
    with pytest.raises(ValueError, match="classes.txt"):
        load_detector(str(tmp_path / "a"), Config(device="cpu"))
    constant_onnx(tmp_path / "b" / "one.onnx", raw, (64, 64), metadata=ULTRALYTICS_META)
    constant_onnx(tmp_path / "b" / "two.onnx", raw, (64, 64), metadata=ULTRALYTICS_META)
    with pytest.raises(ValueError, match="one.onnx, two.onnx"):
        load_detector(str(tmp_path / "b"), Config(device="cpu"))
