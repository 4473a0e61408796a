"""Engines: what turns the files a build planned into what the vision stages see in them.

The build driver plans (new, changed, removed), holds the writer lock, describes, embeds and
commits one batch per transaction; an engine only maps planned files to per-image stage
outputs. :class:`InProcessEngine` (the default) decodes with threads and runs the stages in
this process; ``imgret.index.ray_engine.RayEngine`` runs the same stages on a Ray cluster.
Both build rows with :func:`see` and :func:`vision_row`, so they give the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from imgret.config import KEYED_APART, VISION_STAGES, Config, key_string
from imgret.images import decode_batches
from imgret.index.store import ImageRow, Skipped
from imgret.models.stages import load_stages


def relpath(path: Path, gallery: Path) -> str:
    """The key of an image in the index: its path inside the gallery, POSIX style."""
    return path.relative_to(gallery).as_posix()


@dataclass(frozen=True)
class VisionOutput:
    """Where a vision stage's answer for one image goes: its batch method and ImageRow field."""

    method: str
    field: str


VISION_OUTPUTS: dict[str, VisionOutput] = {
    "captioner": VisionOutput("caption", "caption"),
    "detector": VisionOutput("detect", "counts"),
    "ocr": VisionOutput("read", "text_in_image"),
    "tagger": VisionOutput("tag", "tags"),
}
"""Stage → batch method and ImageRow field; a new vision stage adds its line here."""
if set(VISION_OUTPUTS) != set(VISION_STAGES):
    raise ImportError(f"VISION_OUTPUTS must cover config.VISION_STAGES {VISION_STAGES}")


def run_stage(stage: str, model: Any, images: list[Image.Image]) -> list[Any]:
    """One stage's answer per image, in order."""
    outputs = list(getattr(model, VISION_OUTPUTS[stage].method)(images))
    if len(outputs) != len(images):
        raise RuntimeError(f"the {stage} gave {len(outputs)} answers for {len(images)} images")
    return outputs


def see(models: Mapping[str, Any], images: list[Image.Image]) -> dict[str, list[Any]]:
    """Every loaded vision stage's answers for a batch of images: stage → one per image."""
    return {
        stage: run_stage(stage, models[stage], images) for stage in VISION_STAGES if stage in models
    }


@dataclass
class FileFacts:
    """What reading one file told: its key, stat, hash and pixel size."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    width: int
    height: int


def row_keys(config: Config) -> dict[str, str]:
    """The stale-row keys a row made under ``config`` records: ``vision_key`` for the vision
    stages keyed together, and one ``<stage>_key`` for each stage keyed apart."""
    keys = {"vision_key": key_string(config.vision_key())}
    for stage in KEYED_APART:
        keys[f"{stage}_key"] = key_string(getattr(config, f"{stage}_key")())
    return keys


def vision_row(facts: FileFacts, outputs: Mapping[str, Any], keys: Mapping[str, str]) -> ImageRow:
    """The row of one image from its file facts and each stage's answer (absent stage: default),
    with the stale-row ``keys`` of :func:`row_keys`.

    The text fields (description, topics, vector…) stay empty: the driver fills them.
    """
    values: dict[str, Any] = {
        VISION_OUTPUTS[stage].field: answer for stage, answer in outputs.items()
    } | dict(keys)
    if "counts" in values:
        values["counts"] = dict(values["counts"])
    return ImageRow(
        path=facts.path,
        size=facts.size,
        mtime_ns=facts.mtime_ns,
        sha256=facts.sha256,
        width=facts.width,
        height=facts.height,
        **values,
    )


@dataclass
class Analysed:
    """One batch back from an engine: rows with their vision fields, and files left out."""

    rows: list[ImageRow] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    """Files that could not be read or decoded (remembered until they change)."""
    revisions: dict[str, str | None] = field(default_factory=dict)
    """Stage → revision of the model that ran it, for the index metadata."""

    def __len__(self) -> int:
        return len(self.rows) + len(self.skipped)


class Engine(Protocol):
    """Maps planned files to what the vision stages see in them, batch by batch."""

    def analyse(self, gallery: Path, paths: Sequence[str], config: Config) -> Iterator[Analysed]:
        """Every one of ``paths`` (relative to ``gallery``) once, in batches of any order."""
        ...


class InProcessEngine:
    """Threads decode ahead while the stages run in this process, one batch at a time."""

    def analyse(self, gallery: Path, paths: Sequence[str], config: Config) -> Iterator[Analysed]:
        stages = load_stages(config, which=VISION_STAGES)
        models = {s: getattr(stages, s) for s in VISION_STAGES if getattr(stages, s) is not None}
        revisions = {stage: model.revision for stage, model in models.items()}
        keys = row_keys(config)
        batches = decode_batches(
            [gallery / p for p in paths],
            config.batch_size,
            workers=config.decode_workers,
            max_megapixels=config.max_image_megapixels,
        )
        for batch in batches:
            result = Analysed(revisions=revisions)
            good = []
            for decoded in batch:
                key = relpath(decoded.path, gallery)
                if decoded.image is None:
                    reason = decoded.error or "unreadable"
                    result.skipped.append(Skipped(key, decoded.size, decoded.mtime_ns, reason))
                else:
                    image = decoded.image
                    good.append(
                        (
                            FileFacts(
                                key,
                                decoded.size,
                                decoded.mtime_ns,
                                decoded.sha256,
                                image.width,
                                image.height,
                            ),
                            image,
                        )
                    )
            if good:
                answers = see(models, [image for _, image in good])
                for i, (facts, _) in enumerate(good):
                    outputs = {stage: values[i] for stage, values in answers.items()}
                    result.rows.append(vision_row(facts, outputs, keys))
            yield result
