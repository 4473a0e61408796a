"""Shared fixtures: offline environment, tiny random-weight models of the real classes, galleries.

The tiny models are built once per test session and saved in the same folder layout as the
real ones, so the real loading code runs end to end without a hub.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch  # noqa: F401  (before ultralytics, which otherwise sets OMP_NUM_THREADS=1)

import tests.support.offline_env  # noqa: F401  (before the model libraries read the environment)
from tests.support.galleries import make_small_gallery


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Folders/files of tiny random-weight models: captioner, topics, embedder, detector."""
    from tests.support.tiny_detector import build_tiny_yolo
    from tests.support.tiny_text_models import (
        build_tiny_blip,
        build_tiny_instructor,
        build_tiny_topics,
    )

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


@pytest.fixture
def small_gallery(tmp_path) -> Path:
    """A gallery of six real photos: four COCO images and ultralytics' bus and zidane."""
    return make_small_gallery(tmp_path / "gallery")
