"""Tiny image classifiers of each tagger back end, built at test time in their real layouts.

- Hugging Face ViT and ConvNeXt with random weights, saved by ``save_pretrained`` with their
  image processors (what a hub checkpoint's folder holds);
- timm's ``test_efficientnet`` with random weights, saved by timm's own ``save_for_hf``
  (``config.json`` with the architecture and label names, ``model.safetensors``);
- an ONNX "colour classifier" exported by torch from a two-line module whose answer is known:
  its logits are the mean red, green and blue of the input (ImageNet-normalised), scaled, so a
  red photo is tagged "red".

Everything is seeded, so the same folders come out every time.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

LABELS = ("kitchen", "beach", "tripod", "restaurant")
COLOURS = ("red", "green", "blue")


def build_tiny_vit(folder: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_tiny_convnext(folder: Path) -> Path:
    from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessor

    torch.manual_seed(0)
    config = ConvNextConfig(
        num_stages=2,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    ConvNextForImageClassification(config).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(folder)
    return folder


def build_tiny_timm(folder: Path) -> Path:
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    net = timm.create_model("test_efficientnet", pretrained=False, num_classes=len(LABELS))
    save_for_hf(
        net,
        str(folder),
        model_config={"label_names": list(LABELS)},
        safe_serialization=True,
    )
    return folder


class ColourClassifier(torch.nn.Module):
    """Logits = 10 × the mean of each normalised channel: red photos score "red" highest."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.mean(dim=(2, 3)) * 10.0


def build_tiny_onnx(folder: Path, labels: bool = True) -> Path:
    """``folder/colours.onnx`` (dynamic batch, 32×32 input) and, with ``labels``, labels.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "colours.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        torch.onnx.export(
            ColourClassifier(),
            (torch.zeros(1, 3, 32, 32),),
            str(path),
            dynamo=False,
            input_names=["pixel_values"],
            output_names=["logits"],
            dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
        )
    if labels:
        (folder / "labels.txt").write_text("\n".join(COLOURS) + "\n")
    return path
