"""Tiny detectors built at test time: an untrained Ultralytics YOLOv8 and hand-made ONNX models.

No detector weights can be downloaded here, so the Ultralytics model is built from
``yolov8n.yaml`` with random weights. PyTorch's default initialisation shrinks the signal at
every layer, so such a network's output does not depend on the image: its class scores are its
head's biases and its boxes a fixed grid. The default model sets those biases by hand: every
stride-32 cell sees a "cat" at 0.73 and every stride-16 cell a "dog" at 0.38, so the counting
code has boxes to count and the confidence threshold visibly decides which classes pass. The
"sighted" model is initialised so that the image reaches the head; its counts differ from photo
to photo and change when the pixels are fed in another colour order or scale, which is what a
comparison of two back ends needs.

The hand-made ONNX models are built with ``onnx.helper``. Each returns a fixed, hand-chosen
raw output for any input, so the whole ONNX detector (layout detection, letterbox, decode, NMS,
names) runs on boxes whose answer is known; the tiny YOLOv8 exported by Ultralytics' own
exporter checks the same code on a real export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TINY_NAMES = {0: "cat", 1: "dog", 2: "bus"}


def build_tiny_yolo(folder: Path, sighted: bool = False) -> Path:
    """An untrained YOLOv8n with three classes, saved as a .pt that ``YOLO(path)`` loads offline.

    By default its output ignores the image (see the module's docstring); ``sighted`` gives
    a model whose boxes and scores follow the pixels instead.
    """
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = DetectionModel("yolov8n.yaml", nc=len(TINY_NAMES), verbose=False)
    net.names = dict(TINY_NAMES)
    with torch.no_grad():
        if sighted:
            _let_the_image_through(net)
        else:
            _fixed_class_scores(net)
    yolo = YOLO("yolov8n.yaml", task="detect")
    yolo.model = net
    path = folder / ("tiny-yolov8n-sighted.pt" if sighted else "tiny-yolov8n.pt")
    yolo.save(path)
    return path


def _fixed_class_scores(net) -> None:
    """Cats at 0.73 on every stride-32 cell, dogs at 0.38 on every stride-16 cell."""
    biases = [branch[-1].bias for branch in net.model[-1].cv3]
    for bias in biases:
        bias.fill_(-10.0)
    biases[1][1] = -0.5
    biases[2][0] = 1.0


def _let_the_image_through(net) -> None:
    """He initialisation keeps the signal's scale through the layers; the class logits are
    scaled up (std ≈ 0.7) and shifted down so that a few dozen boxes per photo pass 0.25."""
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    for branch in net.model[-1].cv3:
        branch[-1].weight.mul_(100.0)
        branch[-1].bias.fill_(-3.0)


def constant_onnx(
    path: Path,
    output: np.ndarray,
    input_size: tuple[int, int],
    batch: int | str = "batch",
    metadata: dict[str, str] | None = None,
) -> Path:
    """An ONNX model whose output is ``output`` (shape [1, …]) repeated over the input's batch.

    The graph is mean(images) · 0 + output, so the output's batch follows the input's.
    Opset 17 keeps ReduceMean's axes an attribute, the form every onnxruntime reads.
    """
    tail = [1] * (output.ndim - 1)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3]),
        helper.make_node("Reshape", ["mean", "shape"], ["flat"]),
        helper.make_node("Mul", ["flat", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "raw"], ["output0"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, *tail], np.int64), "shape"),
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(output.astype(np.float32), "raw"),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *input_size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, *output.shape[1:]])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, metadata or {})
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path
