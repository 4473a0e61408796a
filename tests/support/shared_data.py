"""Where the real data and models shared beside the repository are: ``../shared``, or the
folder ``IMGRET_SHARED`` names (a machine that keeps them elsewhere)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("IMGRET_SHARED", REPO.parent / "shared"))
COCO_SAMPLE = SHARED / "data" / "coco-sample"
YOLOX_NANO = SHARED / "models" / "yolox-nano" / "yolox_nano.onnx"


def needs_shared(path: Path) -> pytest.MarkDecorator:
    """Skip a test whose data is not on this machine (a GPU box without ../shared)."""
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is not on this machine")
