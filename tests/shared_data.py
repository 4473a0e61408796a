"""Where the real data and models shared beside the repository are: ``../shared``, or the
folder ``IMGRET_SHARED`` names (a machine that keeps them elsewhere)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMGRET_SHARED", REPO.parent / "shared"))
COCO_SAMPLE = SHARED / "data" / "coco-sample"
YOLOX_NANO = SHARED / "models" / "yolox-nano" / "yolox_nano.onnx"
