"""The detector stage: pre/post-processing against hand-computed boxes, both back ends on tiny
models, the real YOLOX-Nano's counts against COCO annotations, and the missing-weights error."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgret.config import Config
from imgret.models import Detector
from imgret.models.detector import (
    Counting,
    UltralyticsDetector,
    count_classes,
    load_detector,
)
from imgret.models.loading import ModelUnavailableError
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
from tests.conftest import COCO_SAMPLE, YOLOX_NANO, needs_shared
from tests.tiny_detector import TINY_NAMES, build_tiny_yolo, constant_onnx

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


# --- possible classes -----------------------------------------------------------------------------


NAMES = ["person", "dog", "cat", "bus", "car"]


def test_count_classes_names_the_best_unsure_classes_as_possible():
    class_ids = np.array([0, 0, 1, 2, 3, 4, 3, 0, 2])
    scores = np.array([0.9, 0.3, 0.2, 0.1, 0.04, 0.15, 0.22, 0.08, 0.12])
    counts = count_classes(class_ids, scores, NAMES, confidence=0.25, floor=0.05, limit=3)
    # person counted twice (its 0.08 box is below the threshold, not a possible class);
    # bus 0.22, dog 0.2, car 0.15 are possible best first; cat (best 0.12) is past the limit
    assert list(counts.items()) == [("person", 2), ("bus", 0), ("dog", 0), ("car", 0)]
    two = count_classes(class_ids, scores, NAMES, confidence=0.25, floor=0.05, limit=2)
    assert list(two) == ["person", "bus", "dog"]
    # the floor: car at 0.15 and cat at 0.12 are under it; bus's 0.04 box is not its best
    high_floor = count_classes(class_ids, scores, NAMES, confidence=0.25, floor=0.16, limit=3)
    assert list(high_floor.items()) == [("person", 2), ("bus", 0), ("dog", 0)]
    # a class with a counted box is never possible, however many unsure boxes it has
    low = count_classes(class_ids, scores, NAMES, confidence=0.2, floor=0.05, limit=5)
    assert list(low.items()) == [("bus", 1), ("dog", 1), ("person", 2), ("car", 0), ("cat", 0)]
    for floor, limit in [(0.0, 3), (0.05, 0)]:
        off = count_classes(class_ids, scores, NAMES, confidence=0.25, floor=floor, limit=limit)
        assert off == {"person": 2}
    names = dict(enumerate(NAMES))
    assert count_classes(class_ids, scores, names, 0.25, 0.05, 3) == counts
    assert count_classes(np.zeros(0, int), np.zeros(0), NAMES, 0.25, 0.05, 3) == {}


def test_lowest_score_is_the_floor_only_when_possible_classes_are_on():
    def lowest_score(config: Config) -> float:
        return Counting.from_config(config).lowest

    assert lowest_score(Config()) == 0.05
    assert lowest_score(Config(detector_possible_floor=0)) == 0.25
    assert lowest_score(Config(detector_possible_limit=0)) == 0.25
    assert lowest_score(Config(detector_possible_floor=0.4)) == 0.25
    keys = {
        Config(detector_possible_floor=f).vision_key()["detector_possible_floor"] for f in (0, 0.05)
    }
    assert keys == {0, 0.05}
    assert Config(detector=None).vision_key()["detector_possible_limit"] is None


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


# --- the real YOLOX-Nano on real photos ---------------------------------------------------------


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
    from bench.detector_counts import agreement, ground_truth

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
    from bench.detector_counts import agreement, ground_truth

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


# --- profiles ------------------------------------------------------------------------------------


@needs_shared(YOLOX_NANO)
def test_cpu_profile_runs_yolox_nano_from_the_models_folder():
    from imgret.models.stages import load_stages
    from imgret.profiles import apply_profile

    config = apply_profile("cpu", models_dir=YOLOX_NANO.parent.parent, device="cpu")
    assert (config.captioner, config.topics, config.embedder) == (None, None, "minilm")
    detector = load_stages(config, which=["detector"]).detector
    assert isinstance(detector, OnnxDetector)
    (counts,) = detector.detect([Image.open(COCO_SAMPLE / "images" / "000000000139.jpg")])
    assert counts["tv"] == 1 and counts["person"] >= 1
    assert apply_profile("cpu", ocr="rapidocr").ocr == "rapidocr"


def test_unknown_profile_lists_the_known_ones():
    from imgret.profiles import apply_profile

    with pytest.raises(ValueError, match="cpu, original"):
        apply_profile("gpu")
