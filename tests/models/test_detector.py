"""The Ultralytics detector on an untrained YOLOv8n, its agreement with its own ONNX export,
and the messages for missing weights."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgret.config import Config
from imgret.errors import ModelUnavailableError
from imgret.models import Detector
from imgret.models.detector import UltralyticsDetector, load_detector
from imgret.models.onnx_detector import (
    ULTRALYTICS,
    OnnxDetector,
)
from tests.support.tiny_detector import TINY_NAMES, build_tiny_yolo

# --- Ultralytics detector on an untrained YOLOv8n ----------------------------------------------


@pytest.fixture
def tiny_yolo(tiny_models):
    """The session's tiny YOLOv8n (a .pt alone in its folder)."""
    return tiny_models["detector"]


def test_ultralytics_detector_counts_and_thresholds(tiny_yolo, small_gallery):
    images = [Image.open(p) for p in sorted(small_gallery.rglob("*.jpg"))[:3]]
    low = load_detector(str(tiny_yolo), Config(device="cpu", detector_confidence=0.25))
    assert isinstance(low, UltralyticsDetector) and isinstance(low, Detector)
    assert low.names == TINY_NAMES and low.revision
    counts = low.detect(images)
    assert len(counts) == 3
    for found in counts:
        assert set(found) == {"cat", "dog"}  # cats score 0.73, dogs 0.38
        assert all(isinstance(n, int) and 0 < n <= 300 for n in found.values())
    high = load_detector(str(tiny_yolo.parent), Config(device="cpu", detector_confidence=0.5))
    assert high.detect(images) == [{"cat": found["cat"], "dog": 0} for found in counts]
    none = load_detector(str(tiny_yolo), Config(device="cpu", detector_confidence=0.9))
    assert [list(found.items()) for found in none.detect(images)] == [[("cat", 0), ("dog", 0)]] * 3
    off = Config(device="cpu", detector_confidence=0.9, detector_possible_limit=0)
    assert load_detector(str(tiny_yolo), off).detect(images) == [{}, {}, {}]
    assert low.detect([]) == []


def square_photos(gallery: Path, n: int = 3) -> list[Image.Image]:
    """Centre squares of real photos.

    Ultralytics' PyTorch predictor pads an image only up to a multiple of 32 while the ONNX
    detector fills the export's square input, so only on square images do both networks see
    the same pixels and give the same boxes.
    """
    photos = [Image.open(p).convert("RGB") for p in sorted(gallery.rglob("*.jpg"))[:n]]
    squares = []
    for photo in photos:
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        squares.append(photo.crop((left, top, left + side, top + side)))
    return squares


@pytest.fixture(scope="module")
def sighted_yolo(tmp_path_factory):
    return build_tiny_yolo(tmp_path_factory.mktemp("sighted-yolo"), sighted=True)


def by_position(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> tuple:
    """Boxes, scores and classes in box order: scores a millionth apart can swap ranks between
    two back ends, positions cannot."""
    order = np.lexsort(boxes.T[::-1])
    return boxes[order], scores[order], classes[order]


@pytest.mark.parametrize("dynamic", [False, True])
def test_onnx_detector_matches_ultralytics_on_its_own_export(
    sighted_yolo, small_gallery, tmp_path, dynamic
):
    """The same weights through Ultralytics' exporter and imgret's ONNX detector, and through
    Ultralytics itself: same names, boxes, scores and counts per photo.

    The back ends' scores differ by up to 2.7e-6. At 0.4 the nearest of these photos' 25,200
    anchor scores is 3.6e-4 away and no photo reaches the 300-box cap, so the counts agree
    exactly; at 0.25 an anchor sits 1.7e-5 from the threshold and the bus photo hits the cap.
    """
    from ultralytics import YOLO

    weights = Path(shutil.copy(sighted_yolo, tmp_path / sighted_yolo.name))
    # 640, the size the .pt predicts at; onnxslim is not installed, hence simplify=False
    exported = YOLO(weights).export(
        format="onnx", imgsz=640, simplify=False, dynamic=dynamic, verbose=False
    )
    config = Config(device="cpu", detector_confidence=0.4)
    onnx_detector = load_detector(exported, config)
    assert isinstance(onnx_detector, OnnxDetector)
    assert (onnx_detector.layout, onnx_detector.names, onnx_detector.size) == (
        ULTRALYTICS,
        list(TINY_NAMES.values()),
        (640, 640),
    )
    torch_detector = load_detector(str(weights), config)
    assert isinstance(torch_detector, UltralyticsDetector)
    images = square_photos(small_gallery)
    counts = onnx_detector.detect(images)
    assert counts == torch_detector.detect(images)
    assert len({json.dumps(found, sort_keys=True) for found in counts}) == len(images)
    assert all(sum(found.values()) < 300 for found in counts)
    results = torch_detector.model.predict(images, conf=0.4, iou=config.detector_iou, verbose=False)
    for found, result in zip(onnx_detector.predict(images, 0.4), results, strict=True):
        boxes, scores, classes = by_position(found.boxes, found.scores, found.class_ids)
        truth = result.boxes
        want = by_position(truth.xyxy.numpy(), truth.conf.numpy(), truth.cls.numpy())
        np.testing.assert_allclose(boxes, want[0], atol=1e-2)
        np.testing.assert_allclose(scores, want[1], atol=1e-5)
        np.testing.assert_array_equal(classes, want[2])


@pytest.mark.parametrize("offline_variable", ["YOLO_OFFLINE", "HF_HUB_OFFLINE"])
def test_missing_ultralytics_weights_fail_fast_and_say_where_to_put_them(
    tmp_path, monkeypatch, offline_variable
):
    for name in ("YOLO_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(offline_variable, "1")
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as error:
        load_detector("yolov8m-oiv7.pt", Config(device="cpu", models_dir=tmp_path / "weights"))
    assert time.perf_counter() - started < 10
    message = str(error.value)
    assert "yolov8m-oiv7.pt" in message and f"{tmp_path / 'weights'}/" in message
    assert "--detector none" in message
    with pytest.raises(ModelUnavailableError, match=r"Put best\.pt in elsewhere/runs/"):
        load_detector("elsewhere/runs/best.pt", Config(device="cpu"))
    with pytest.raises(ModelUnavailableError, match=rf"Put nope\.onnx in {tmp_path}/"):
        load_detector(str(tmp_path / "nope.onnx"), Config(device="cpu"))


def test_folder_without_weights_is_explained(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ModelUnavailableError, match="one .onnx or one .pt file"):
        load_detector(str(tmp_path), Config(device="cpu"))
