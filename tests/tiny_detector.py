"""Tiny detectors built at test time: an untrained Ultralytics YOLOv8 and hand-made ONNX models.

No detector weights can be downloaded here, so the Ultralytics model is built from
``yolov8n.yaml`` with random weights. A random network's class scores are all near zero, so
the class head's biases are set by hand: every stride-32 cell sees a "cat" at 0.73 and every
stride-16 cell a "dog" at 0.38, on random boxes. The counting code then has boxes to count,
and the confidence threshold visibly decides which classes pass.

The ONNX models are written by a tiny protobuf encoder, because the ``onnx`` package (needed by
every exporter, Ultralytics' and torch's alike) is not installed here. Each model returns a
fixed, hand-chosen raw output for any input, so the whole ONNX detector (layout detection,
letterbox, decode, NMS, names) runs on boxes whose answer is known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_NAMES = {0: "cat", 1: "dog", 2: "bus"}


def build_tiny_yolo(folder: Path) -> Path:
    """An untrained YOLOv8n with three classes, saved as a .pt that ``YOLO(path)`` loads offline."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = DetectionModel("yolov8n.yaml", nc=len(TINY_NAMES), verbose=False)
    net.names = dict(TINY_NAMES)
    with torch.no_grad():
        biases = [branch[-1].bias for branch in net.model[-1].cv3]
        for bias in biases:
            bias.fill_(-10.0)
        biases[1][1] = -0.5
        biases[2][0] = 1.0
    yolo = YOLO("yolov8n.yaml", task="detect")
    yolo.model = net
    path = folder / "tiny-yolov8n.pt"
    yolo.save(path)
    return path


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


FLOAT, INT64 = 1, 7


def _tensor(name: str, array: np.ndarray) -> bytes:
    kind = INT64 if array.dtype == np.int64 else FLOAT
    data = array.astype(np.int64 if kind == INT64 else np.float32).tobytes()
    dims = b"".join(_int(1, d) for d in array.shape)
    return dims + _int(2, kind) + _bytes(8, name) + _bytes(9, data)


def _value_info(name: str, shape: list[int | str]) -> bytes:
    dims = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in shape)
    tensor_type = _int(1, FLOAT) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _node(op: str, inputs: list[str], output: str, attributes: bytes = b"") -> bytes:
    return b"".join(_bytes(1, i) for i in inputs) + _bytes(2, output) + _bytes(4, op) + attributes


def _ints_attribute(name: str, values: list[int]) -> bytes:
    return _bytes(5, _bytes(1, name) + b"".join(_int(8, v) for v in values) + _int(20, 7))


def constant_onnx(
    path: Path,
    output: np.ndarray,
    input_size: tuple[int, int],
    batch: int | str = "batch",
    metadata: dict[str, str] | None = None,
) -> Path:
    """An ONNX model whose output is ``output`` (shape [1, …]) repeated over the input's batch.

    The graph is mean(images) · 0 + output, so the output's batch follows the input's.
    """
    tail = [1] * (output.ndim - 1)
    nodes = [
        _node("ReduceMean", ["images"], "mean", _ints_attribute("axes", [1, 2, 3])),
        _node("Reshape", ["mean", "shape"], "flat"),
        _node("Mul", ["flat", "zero"], "zeros"),
        _node("Add", ["zeros", "raw"], "output0"),
    ]
    initializers = [
        _tensor("shape", np.array([-1, *tail], np.int64)),
        _tensor("zero", np.zeros((), np.float32)),
        _tensor("raw", output.astype(np.float32)),
    ]
    graph = (
        b"".join(_bytes(1, n) for n in nodes)
        + _bytes(2, "constant")
        + b"".join(_bytes(5, t) for t in initializers)
        + _bytes(11, _value_info("images", [batch, 3, *input_size]))
        + _bytes(12, _value_info("output0", [batch, *output.shape[1:]]))
    )
    model = (
        _int(1, 8)
        + _bytes(7, graph)
        + _bytes(8, _bytes(1, "") + _int(2, 17))
        + b"".join(_bytes(14, _bytes(1, k) + _bytes(2, v)) for k, v in (metadata or {}).items())
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model)
    return path
