"""Settings of one imgret run: which model each stage uses and how hard to push the machine.

The defaults are the original framework's four models, so a machine with internet access (or
with the weights in ``models/``) reproduces it. Every stage can be switched off with ``None``
(``"none"`` on the command line), except the embedder, without which there is nothing to search.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CAPTIONER = "noamrot/FuseCap_Image_Captioning"
DEFAULT_DETECTOR = "yolov8m-oiv7.pt"
DEFAULT_TOPICS = "cardiffnlp/tweet-topic-21-multi"
DEFAULT_EMBEDDER = "hkunlp/instructor-large"

STAGES = ("captioner", "detector", "topics", "embedder", "ocr")
VISION_STAGES = ("captioner", "detector", "ocr")


def stage_value(value: str | None) -> str | None:
    """Read a stage choice as typed by a person: ``none``/``off``/empty switch the stage off."""
    if value is None or value.strip().lower() in {"", "none", "off", "false", "0"}:
        return None
    return value.strip()


@dataclass
class Config:
    """One dataclass of settings; stages are hub ids, local folders/files, or None (off)."""

    captioner: str | None = DEFAULT_CAPTIONER
    detector: str | None = DEFAULT_DETECTOR
    topics: str | None = DEFAULT_TOPICS
    embedder: str = DEFAULT_EMBEDDER
    ocr: str | None = None
    embedder_instruction: bool | None = None
    """Whether the embedder takes INSTRUCTOR instructions; None decides from its name."""

    device: str | None = None
    """``cuda``, ``cuda:1``, ``cpu``…; None picks CUDA when there is one."""
    models_dir: Path = field(default_factory=lambda: Path("models"))
    """A ``models/<hub id>/`` folder here is used before the hub, as in the original."""

    batch_size: int = 16
    """Images per batch through the vision stages."""
    text_batch_size: int = 64
    """Texts per batch through the topic classifier and the embedder."""
    decode_workers: int = 4
    """Threads that open, hash and decode images ahead of the models."""
    max_image_megapixels: float = 100.0
    """Larger images are skipped as possible decompression bombs."""

    caption_prompt: str = "a picture of "
    caption_num_beams: int = 3
    caption_max_length: int = 60
    detector_confidence: float = 0.25
    detector_iou: float = 0.45
    detector_possible_floor: float = 0.05
    """Boxes scoring between this and ``detector_confidence`` name their class as possibly
    present (a count of 0: "perhaps also a dog"); 0 switches it off."""
    detector_possible_limit: int = 3
    """At most this many possible classes per image, the best-scoring first; 0 also switches
    them off."""
    topic_threshold: float = 0.2
    ocr_min_confidence: float = 0.5

    def __post_init__(self) -> None:
        for name in ("captioner", "detector", "topics", "ocr"):
            setattr(self, name, stage_value(getattr(self, name)))
        if stage_value(self.embedder) is None:
            raise ValueError("imgret needs an embedder: it is what turns descriptions into vectors")
        # Absolute, so an index built from notebooks/ finds the same models from the repo root.
        self.models_dir = Path(self.models_dir).expanduser().resolve()

    def vision_key(self) -> dict[str, Any]:
        """What decides the caption, counts and OCR text of an image; a change re-runs vision."""
        return {
            "captioner": self.captioner,
            "caption_prompt": self.caption_prompt if self.captioner else None,
            "caption_num_beams": self.caption_num_beams if self.captioner else None,
            "caption_max_length": self.caption_max_length if self.captioner else None,
            "detector": self.detector,
            "detector_confidence": self.detector_confidence if self.detector else None,
            "detector_iou": self.detector_iou if self.detector else None,
            "detector_possible_floor": self.detector_possible_floor if self.detector else None,
            "detector_possible_limit": self.detector_possible_limit if self.detector else None,
            "ocr": self.ocr,
            "ocr_min_confidence": self.ocr_min_confidence if self.ocr else None,
        }

    def text_key(self) -> dict[str, Any]:
        """What decides the instruction and vector from stored text; a change only re-embeds."""
        from imgret.describe import TEMPLATE_VERSION

        return {
            "topics": self.topics,
            "topic_threshold": self.topic_threshold if self.topics else None,
            "embedder": self.embedder,
            "embedder_instruction": self.embedder_instruction,
            "template": TEMPLATE_VERSION,
        }

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["models_dir"] = str(self.models_dir)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, **overrides: Any) -> Config:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


def key_string(key: dict[str, Any]) -> str:
    """A stable string for a stage key, stored per image to tell what is stale."""
    return json.dumps(key, sort_keys=True)
