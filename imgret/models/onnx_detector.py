"""Object detection with ONNX exports of YOLOX and Ultralytics YOLO, on onnxruntime alone.

ONNX models run without torch at a fraction of the start-up cost, and the real YOLOX-Nano in
``../shared/models/yolox-nano`` is one of the few detectors whose weights exist on machines
without internet. The two families differ in everything around the network (colour order,
scaling, where the letterbox puts the image, how boxes come out), so the layout is read from
the model's output shape and metadata, and the pre/post-processing below is pure functions
that tests check against hand-computed boxes.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from imgret.config import Config
from imgret.errors import BadInputError
from imgret.images import file_sha256
from imgret.models.counting import Counting
from imgret.models.loading import pick_device

YOLOX = "yolox"
ULTRALYTICS = "ultralytics"
END2END = "end2end"
"""Ultralytics exports with the NMS inside (``nms=True``, YOLO26/YOLOv10): [b, k, 6] rows of
x1, y1, x2, y2, score, class."""

STRIDES = (8, 16, 32)
PAD_VALUE = 114
MAX_DETECTIONS = 300
NAME_FILES = ("*classes*.txt", "names.txt", "names")


@dataclass(frozen=True)
class Detections:
    """What a detector found in one image, in that image's pixel coordinates."""

    boxes: np.ndarray
    """float32 [n, 4]: x1, y1, x2, y2."""
    scores: np.ndarray
    """float32 [n]."""
    class_ids: np.ndarray
    """int64 [n]."""


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the network's input, to map boxes back."""

    ratio: float
    left: int
    top: int
    width: int
    height: int

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes from network-input pixels back to the original image's pixels, clipped."""
        out = (
            boxes - np.array([self.left, self.top, self.left, self.top], np.float32)
        ) / self.ratio
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.height)
        return out.astype(np.float32)


def letterbox(
    image: np.ndarray, size: tuple[int, int], center: bool, fill: int = PAD_VALUE
) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (H×W×3 uint8) to fit ``size`` (h, w) keeping its aspect ratio, and pad.

    YOLOX trains with the image at the top-left, Ultralytics with it centred; both pad with
    114. Resizing uses bilinear interpolation without antialiasing, as both training pipelines
    do (cv2.INTER_LINEAR), so the network sees what it was trained on.
    """
    height, width = image.shape[:2]
    ratio = min(size[0] / height, size[1] / width)
    new_h, new_w = max(1, round(height * ratio)), max(1, round(width * ratio))
    if (new_h, new_w) != (height, width):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, left = ((size[0] - new_h) // 2, (size[1] - new_w) // 2) if center else (0, 0)
    canvas = np.full((size[0], size[1], 3), fill, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = image
    return canvas, Letterbox(ratio, left, top, width, height)


def yolox_grid(size: tuple[int, int], strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """[anchors, 3] rows of (grid x, grid y, stride), in YOLOX's output order."""
    rows = []
    for stride in strides:
        ys, xs = np.meshgrid(
            np.arange(size[0] // stride), np.arange(size[1] // stride), indexing="ij"
        )
        rows.append(np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, stride)], axis=1))
    return np.concatenate(rows).astype(np.float32)


def decode_yolox(raw: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One image's raw YOLOX output [anchors, 5 + classes] → (xyxy boxes, class scores).

    Centres are offsets in cells, sizes log-scaled in strides; a class's score is
    objectness × class probability (YOLOX's README and demo).
    """
    grid = yolox_grid(size)
    if len(grid) != len(raw):
        raise BadInputError(
            f"a YOLOX output of {len(raw)} rows does not fit a {size[1]}×{size[0]} input "
            f"({len(grid)} grid cells at strides {STRIDES})"
        )
    centres = (raw[:, :2] + grid[:, :2]) * grid[:, 2:]
    sizes = np.exp(raw[:, 2:4]) * grid[:, 2:]
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    return boxes, raw[:, 4:5] * raw[:, 5:]


def decode_ultralytics(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image's raw Ultralytics output [4 + classes, anchors] → (xyxy boxes, class scores)."""
    rows = raw.T
    centres, sizes = rows[:, :2], rows[:, 2:4]
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    return boxes, rows[:, 4:]


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou: float,
    max_detections: int = MAX_DETECTIONS,
) -> np.ndarray:
    """Indices of the boxes kept by per-class non-maximum suppression, best score first."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = np.asarray(
        cv2.dnn.NMSBoxesBatched(
            xywh.astype(np.float64).tolist(),
            scores.astype(np.float64).tolist(),
            class_ids.astype(np.int32).tolist(),
            score_threshold=float("-inf"),
            nms_threshold=iou,
        ),
        dtype=np.int64,
    ).reshape(-1)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    return keep[:max_detections]


def select(
    boxes: np.ndarray, class_scores: np.ndarray, confidence: float, iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best class per box, boxes at or above ``confidence``, then per-class NMS."""
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(class_scores)), class_ids]
    kept = scores >= confidence
    boxes, scores, class_ids = boxes[kept], scores[kept], class_ids[kept]
    order = nms(boxes, scores, class_ids, iou)
    return boxes[order], scores[order], class_ids[order]


def detect_layout(output_shape: list, n_classes: int, from_ultralytics: bool) -> str:
    """Which family wrote the model, from its output shape [batch, …] and class count."""
    dims = [d if isinstance(d, int) else None for d in output_shape]
    if len(dims) != 3:
        raise ValueError(f"expected a detector output of rank 3, got shape {output_shape}")
    if dims[1] == 4 + n_classes:
        return ULTRALYTICS
    if dims[2] == 6 and from_ultralytics:
        return END2END
    if dims[2] == 5 + n_classes:
        return YOLOX
    raise BadInputError(
        f"cannot tell the layout of an output of shape {output_shape} for {n_classes} classes: "
        "expected [b, 4 + classes, anchors] (Ultralytics), [b, k, 6] (Ultralytics with NMS) "
        "or [b, anchors, 5 + classes] (YOLOX)"
    )


def find_onnx(path: Path, stage: str = "detector") -> Path | None:
    """The .onnx file ``path`` names: the file itself or the only one in a folder."""
    if path.is_file():
        return path if path.suffix.lower() == ".onnx" else None
    found = sorted(path.glob("*.onnx")) if path.is_dir() else []
    if len(found) > 1:
        raise BadInputError(
            f"{path} holds several ONNX models ({', '.join(p.name for p in found)}); "
            f"pass the one to use as --{stage} path/to/model.onnx"
        )
    return found[0] if found else None


def read_names(model_path: Path, metadata: dict[str, str]) -> list[str]:
    """Class names from a file beside the model (one per line), else Ultralytics' metadata."""
    for pattern in NAME_FILES:
        for candidate in sorted(model_path.parent.glob(pattern)):
            if candidate.is_file():
                return [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
    if "names" in metadata:
        names = ast.literal_eval(metadata["names"])
        return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    raise BadInputError(
        f"no class names for {model_path}: put a classes.txt (one name per line, in the "
        "model's output order) beside it"
    )


def _input_size(shape: list, metadata: dict[str, str]) -> tuple[int, int]:
    if isinstance(shape[2], int) and isinstance(shape[3], int):
        return shape[2], shape[3]
    if "imgsz" in metadata:
        h, w = ast.literal_eval(metadata["imgsz"])
        return int(h), int(w)
    return 640, 640


def providers(device: str) -> list[str | tuple[str, dict[str, int]]]:
    """onnxruntime's execution providers for ``device``: CUDA first when asked and built in."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in available:
            index = device.partition(":")[2] or "0"
            return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
        warnings.warn(
            "this onnxruntime has no CUDA support; ONNX models run on the CPU "
            "(pip install onnxruntime-gpu to use the GPU)",
            stacklevel=3,
        )
    return ["CPUExecutionProvider"]


class OnnxDetector:
    """A YOLOX or Ultralytics YOLO ONNX export behind the :class:`Detector` interface."""

    def __init__(self, model: str, config: Config, path: Path | None = None) -> None:
        import onnxruntime as ort

        self.model_id = model
        self.path = path or find_onnx(Path(model))
        if self.path is None:
            raise BadInputError(f"{model} is not an .onnx file or a folder holding one")
        self.revision: str | None = file_sha256(self.path)[:12]
        self.counting = Counting.from_config(config)
        self.session = ort.InferenceSession(
            str(self.path), providers=providers(pick_device(config.device))
        )
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.names = read_names(self.path, metadata)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.size = _input_size(model_input.shape, metadata)
        batch = model_input.shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None
        self.layout = detect_layout(
            self._output_shape(),
            len(self.names),
            metadata.get("author", "").startswith("Ultralytics") or "names" in metadata,
        )

    def _output_shape(self) -> list:
        """The output's shape; a dynamic export names its axes, so one blank image tells."""
        shape = self.session.get_outputs()[0].shape
        if all(isinstance(d, int) for d in shape[1:]):
            return shape
        blank = np.zeros((self.fixed_batch or 1, 3, *self.size), dtype=np.float32)
        return list(self.session.run(None, {self.input_name: blank})[0].shape)

    def detect(self, images: list[Image.Image]) -> list[dict[str, int]]:
        """Per image, how many boxes of each class pass the confidence threshold after NMS,
        and the classes seen only below it counted 0 (:func:`count_classes`)."""
        return [
            self.counting.count(found.class_ids, found.scores, self.names)
            for found in self.predict(images, self.counting.lowest)
        ]

    def predict(self, images: list[Image.Image], confidence: float) -> list[Detections]:
        """Boxes, scores and classes per image; a lower ``confidence`` serves threshold sweeps."""
        if not images:
            return []
        boxed = [self._prepare(image) for image in images]
        step = self.fixed_batch or len(boxed)
        raws = []
        for start in range(0, len(boxed), step):
            chunk = np.stack([array for array, _ in boxed[start : start + step]])
            filler = step - len(chunk)
            if filler:
                chunk = np.concatenate([chunk, np.zeros((filler, *chunk.shape[1:]), chunk.dtype)])
            output = self.session.run(None, {self.input_name: chunk})[0]
            raws.extend(output[: step - filler])
        return [
            self._decode(raw, box, confidence) for raw, (_, box) in zip(raws, boxed, strict=True)
        ]

    def _prepare(self, image: Image.Image) -> tuple[np.ndarray, Letterbox]:
        rgb = np.asarray(image.convert("RGB"))
        if self.layout == YOLOX:
            array, box = letterbox(rgb[:, :, ::-1], self.size, center=False)
            return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32), box
        array, box = letterbox(rgb, self.size, center=True)
        return array.transpose(2, 0, 1).astype(np.float32) / 255.0, box

    def _decode(self, raw: np.ndarray, box: Letterbox, confidence: float) -> Detections:
        if self.layout == END2END:
            kept = raw[raw[:, 4] >= confidence]
            kept = kept[np.argsort(-kept[:, 4], kind="stable")][:MAX_DETECTIONS]
            boxes, scores, class_ids = kept[:, :4], kept[:, 4], kept[:, 5].astype(np.int64)
        else:
            boxes, class_scores = (
                decode_yolox(raw, self.size) if self.layout == YOLOX else decode_ultralytics(raw)
            )
            boxes, scores, class_ids = select(boxes, class_scores, confidence, self.counting.iou)
        return Detections(
            box.to_image(boxes), scores.astype(np.float32), class_ids.astype(np.int64)
        )
