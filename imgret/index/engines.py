"""Engines: what turns the files a build planned into what the vision stages see in them.

The build driver plans (new, changed, removed), holds the writer lock, describes, embeds and
commits one batch per transaction; an engine only maps planned files to per-image stage
outputs. :class:`InProcessEngine` (the default) decodes with threads and runs the stages in
this process; ``imgret.index.ray_engine.RayEngine`` runs the same stages on a Ray cluster.
Both build rows with :func:`see_each` and :func:`vision_row`, so they give the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from imgret import describe
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


def see_each(stage: str, model: Any, images: list[Image.Image]) -> list[tuple[Any, str | None]]:
    """Per image, the stage's answer and None, or None and why the stage failed on that image.

    The batch runs at once; only when it raises is each image run alone, so one file that a
    model cannot take costs its own row, never the rest of its batch.
    """
    if not images:
        return []
    try:
        return [(answer, None) for answer in run_stage(stage, model, images)]
    except Exception as exc:  # noqa: BLE001 - any model error; retried image by image
        if len(images) == 1:
            return [(None, _failure(stage, exc))]
    results: list[tuple[Any, str | None]] = []
    for image in images:
        try:
            results.append((run_stage(stage, model, [image])[0], None))
        except Exception as exc:  # noqa: BLE001 - reported with the file, the build goes on
            results.append((None, _failure(stage, exc)))
    return results


def _failure(stage: str, exc: Exception) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else ""
    return f"the {stage} failed on it ({type(exc).__name__}: {reason}); the next build retries it"


def see_all(
    models: Mapping[str, Any],
    files: Sequence[tuple[FileFacts, Image.Image]],
    keys: Mapping[str, str],
) -> tuple[list[ImageRow], list[tuple[str, str]]]:
    """Every loaded stage on a batch of decoded files: their rows and (path, reason) of failures.

    A file a stage failed on skips the later stages.
    """
    outputs: list[dict[str, Any]] = [{} for _ in files]
    failures: dict[int, str] = {}
    for stage in VISION_STAGES:
        if stage not in models:
            continue
        todo = [i for i in range(len(files)) if i not in failures]
        answers = see_each(stage, models[stage], [files[i][1] for i in todo])
        for i, (answer, failure) in zip(todo, answers, strict=True):
            if failure is None:
                outputs[i][stage] = answer
            else:
                failures[i] = failure
    rows = [
        vision_row(facts, outputs[i], keys)
        for i, (facts, _) in enumerate(files)
        if i not in failures
    ]
    return rows, [(files[i][0].path, reason) for i, reason in sorted(failures.items())]


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
    if "tags" in values:  # (label, probability) pairs, however they travelled (JSON from Ray)
        values["tags"] = [(label, probability) for label, probability in values["tags"]]
    return ImageRow(
        path=facts.path,
        size=facts.size,
        mtime_ns=facts.mtime_ns,
        sha256=facts.sha256,
        width=facts.width,
        height=facts.height,
        **values,
    )


def row_description(row: ImageRow, config: Config) -> str:
    """The description of a row as the build stores it: from its vision fields, tags, notes
    and (when asked for) place. Query by image describes its photo with this very function."""
    return describe.compose_description(
        row.caption,
        row.counts,
        row.notes,
        row.text_in_image,
        row.tags,
        place=row.place if config.describe_place else "",
    )


@dataclass
class Analysed:
    """One batch back from an engine: rows with their vision fields, and files left out."""

    rows: list[ImageRow] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    """Files that could not be read or decoded (remembered until they change)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of files a stage failed on: reported, not stored, so the next build
    retries them (the cause may have been the worker, not the file)."""
    revisions: dict[str, str | None] = field(default_factory=dict)
    """Stage → revision of the model that ran it, for the index metadata."""

    def __len__(self) -> int:
        return len(self.rows) + len(self.skipped) + len(self.failed)


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
                result.rows, result.failed = see_all(models, good, keys)
            yield result
