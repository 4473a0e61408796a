"""Shared fixtures: offline environment, tiny random-weight models of the real classes, galleries.

The tiny models are built once per test session and saved in the same folder layout as the
real ones, so the real loading code runs end to end without a hub.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch  # noqa: F401  (before ultralytics, which otherwise sets OMP_NUM_THREADS=1)

import tests.offline_env  # noqa: F401  (before the model libraries read the environment)
from tests.shared_data import COCO_SAMPLE, REPO, YOLOX_NANO  # noqa: F401  (re-exported)


def needs_shared(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is not on this machine")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Folders/files of tiny random-weight models: captioner, topics, embedder, detector."""
    from tests.tiny_detector import build_tiny_yolo
    from tests.tiny_text_models import build_tiny_blip, build_tiny_instructor, build_tiny_topics

    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "captioner": build_tiny_blip(root / "tiny-blip"),
        "topics": build_tiny_topics(root / "tiny-topics"),
        "embedder": build_tiny_instructor(root / "tiny-instructor"),
        "detector": build_tiny_yolo(root / "tiny-yolo"),
    }


@pytest.fixture(scope="session")
def tiny_config(tiny_models):
    """A Config with every stage on a tiny model, on the CPU."""
    from imgret.config import Config

    return Config(
        captioner=str(tiny_models["captioner"]),
        detector=str(tiny_models["detector"]),
        topics=str(tiny_models["topics"]),
        embedder=str(tiny_models["embedder"]),
        device="cpu",
        batch_size=4,
        caption_max_length=12,
    )


@pytest.fixture(scope="session")
def text_only(tiny_models):
    """Vision stages off: the cheapest configuration that still runs topics and embedder."""
    from imgret.config import Config

    return Config(
        captioner=None,
        detector=None,
        topics=str(tiny_models["topics"]),
        embedder=str(tiny_models["embedder"]),
        device="cpu",
        batch_size=2,
    )


def coco_images(n: int | None = None) -> list[Path]:
    images = sorted((COCO_SAMPLE / "images").glob("*.jpg"))
    return images[:n] if n else images


@pytest.fixture
def small_gallery(tmp_path) -> Path:
    """A gallery of six real photos: four COCO images and ultralytics' bus and zidane."""
    return make_small_gallery(tmp_path / "gallery")


def make_small_gallery(gallery: Path) -> Path:
    """The photos of :func:`small_gallery` in ``gallery``, for fixtures of a wider scope."""
    from ultralytics.utils import ASSETS

    (gallery / "sub").mkdir(parents=True)
    for i, image in enumerate(coco_images(4)):
        shutil.copy(image, gallery / ("sub" if i % 2 else "") / image.name)
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(Path(ASSETS) / name, gallery / name)
    return gallery
