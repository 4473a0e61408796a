"""Run a text→image retrieval evaluation on a captioned dataset, as in the original's table.

Every human caption is a query for its image; the dataset's images are cut into galleries of
1,000 (and 5,000) images whose metrics are averaged. The vision stages run once: the dataset's
images are indexed with :func:`imgret.index.build.build_index` (incremental, so a second run reuses
it), and each configuration's descriptions are composed from the stored captions and counts
and embedded, so comparing configurations costs text embedding only.

Configurations ("rows") are sets of description parts: ``caption`` (captioner), ``counts``
(detector), ``tags`` (tagger), ``text`` (OCR) and ``human``, the oracle. The oracle's
description is one human caption, given as the image's note: each caption in turn is the
description while the image's other captions are its queries, and the ranks of all turns are
pooled. A perfect captioner writes one good sentence, so this is its upper bound, and
rotating the caption uses every caption as a query equally often, like the other rows (issue
2's hand computation is the first turn alone: caption 0 the description, captions 1–4 the
queries).
"""

from __future__ import annotations

import filecmp
import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm.auto import tqdm

from imgret import describe
from imgret.config import VISION_STAGES, Config
from imgret.encode import TEXT_STAGES, topics_and_instructions
from imgret.errors import BadInputError
from imgret.evaluation.datasets import CaptionedDataset, load_dataset
from imgret.evaluation.metrics import Metrics, folds, mean_metrics, ranks_from_vectors, summarize

if TYPE_CHECKING:
    from imgret.index.engines import Engine

DEFAULT_GALLERY_SIZES = (1000, 5000)
PARTS = ("caption", "counts", "tags", "text", "human")
PART_NAMES = {
    "caption": "captioner",
    "counts": "detector counts",
    "tags": "tagger labels",
    "text": "OCR text",
    "human": "human caption (oracle)",
}
_PART_STAGE = {"caption": "captioner", "counts": "detector", "tags": "tagger", "text": "ocr"}
_EMBED_CHUNK = 512

Instructions = Literal["both", "on", "off"]

PUBLISHED: dict[str, list[tuple[str, str, float, float, float, float]]] = {
    "flickr8k": [
        ("YOLOv8 + Instructor", "counts", 14.9, 33.6, 52.4, 66.95),
        ("FuseCap + Instructor", "caption", 39.7, 67.3, 87.3, 12.53),
        ("FuseCap + YOLOv8 + Instructor", "caption + counts", 43.2, 69.6, 89.2, 10.76),
    ],
    "flickr30k": [
        ("YOLOv8 + Instructor", "counts", 15.4, 31.6, 50.7, 85.34),
        ("FuseCap + Instructor", "caption", 42.8, 70.2, 86.3, 16.27),
        ("FuseCap + YOLOv8 + Instructor", "caption + counts", 47.6, 74.0, 89.0, 11.54),
    ],
    "coco": [
        ("YOLOv8 + Instructor", "counts", 12.7, 25.4, 45.8, 120.35),
        ("FuseCap + Instructor", "caption", 34.1, 59.4, 80.4, 15.03),
        ("FuseCap + YOLOv8 + Instructor", "caption + counts", 37.9, 63.7, 83.7, 12.88),
    ],
}
"""The original's README (Aldenhovel/image-retrieval), "Experimental Data": R@1, R@5, R@20 in
percent and "avg/1k", the mean rank of the right image in a 1,000-image gallery. Published
without code or protocol details; they are quoted, never measured here."""
_PUBLISHED_TITLES = {"flickr8k": "Flickr8k", "flickr30k": "Flickr30k", "coco": "MSCOCO"}


@dataclass
class RowResult:
    """One configuration at one gallery size: fold-averaged metrics and each fold's."""

    parts: tuple[str, ...]
    instructions: bool
    gallery_size: int
    metrics: Metrics
    per_fold: list[Metrics]

    @property
    def name(self) -> str:
        return " + ".join(PART_NAMES[p] for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": "+".join(self.parts),
            "name": self.name,
            "topic_instructions": self.instructions,
            "gallery_size": self.gallery_size,
            "folds": len(self.per_fold),
            **self.metrics.as_dict(),
            "per_fold": [m.as_dict() for m in self.per_fold],
        }


@dataclass
class EvaluationReport:
    """What was measured, how, and the results; printable as Markdown or JSON."""

    dataset: str
    annotations: str
    split: str | None
    images: int
    caption_queries: int
    stages: dict[str, str | None]
    protocol: list[str]
    rows: list[RowResult] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self, compare: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dataset": self.dataset,
            "annotations": self.annotations,
            "split": self.split,
            "images": self.images,
            "caption_queries": self.caption_queries,
            "stages": self.stages,
            "protocol": self.protocol,
            "tie_rule": "pessimistic: rank = images scoring at least as high as the target",
            "rows": [row.to_dict() for row in self.rows],
            "seconds": round(self.seconds, 1),
        }
        if compare:
            data["published_by_the_original"] = {
                key: [
                    dict(
                        zip(
                            ("models", "comparable_row", "r1", "r5", "r20", "avg_1k"),
                            entry,
                            strict=True,
                        )
                    )
                    for entry in PUBLISHED[key]
                ]
                for key in _published_keys(self.dataset)
            }
        return data

    def to_json(self, compare: bool = False) -> str:
        return json.dumps(self.to_dict(compare), indent=2)

    def to_markdown(self, compare: bool = False) -> str:
        stages = ", ".join(f"{name} {model or 'off'}" for name, model in self.stages.items())
        lines = [
            f"**{self.dataset}** ({self.annotations}, split {self.split or 'all'}): "
            f"{self.images} images, {self.caption_queries} caption queries. Stages: {stages}.",
            "",
            *(f"- {note}" for note in self.protocol),
            "",
            "| Description | Topic instructions | Gallery | Folds | Queries | R@1 | R@5 | R@10 "
            "| R@20 | Median rank | Mean rank |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for row in self.rows:
            m = row.metrics
            lines.append(
                f"| {row.name} | {'yes' if row.instructions else 'no'} | {row.gallery_size} "
                f"| {len(row.per_fold)} | {m.queries} | {_pct(m.r1)} | {_pct(m.r5)} "
                f"| {_pct(m.r10)} | {_pct(m.r20)} | {m.median_rank:g} | {m.mean_rank:.2f} |"
            )
        if compare:
            lines += ["", *_published_markdown(self.dataset)]
        return "\n".join(lines)


def evaluate_dataset(
    annotations: Path | str,
    config: Config,
    *,
    images: Path | str | None = None,
    split: str | None = None,
    rows: Sequence[str] | None = None,
    instructions: Instructions = "both",
    gallery_sizes: Sequence[int] = DEFAULT_GALLERY_SIZES,
    first_caption_only: bool = False,
    limit: int | None = None,
    work_dir: Path | str | None = None,
    progress: bool = True,
    engine: Engine | None = None,
) -> EvaluationReport:
    """Measure text→image recall of ``config`` on a Karpathy split file or COCO caption JSON.

    ``rows`` are "+"-joined parts (``caption``, ``counts``, ``tags``, ``text``, ``human``); by
    default every combination of the vision stages ``config`` switches on, then the oracle alone and
    with them. ``instructions`` "both" runs each row with and without topic instructions
    (without: every text gets the fallback instruction); it needs ``config.topics``.
    ``limit`` keeps the first images of the split, for a quick look. The index of the
    dataset's images lives in ``work_dir`` (default ``tmp/eval/<dataset>-<hash>``),
    so the next evaluation of the same images skips the vision models. ``engine`` runs the
    vision stages of that index (:func:`imgret.index.build.build_index`; e.g. a RayEngine).
    """
    started = time.perf_counter()
    dataset = load_dataset(annotations, images, split)
    if limit is not None:
        dataset.images[:] = dataset.images[:limit]
    specs = parse_rows(rows, config)
    modes = instruction_modes(instructions, config)
    work = Path(work_dir) if work_dir else default_work_dir(dataset)
    stored, left_out, analysed = index_dataset(
        dataset, config, work, progress=progress, engine=engine
    )

    protocol = [
        f"index of the images: {work / 'index'}; {analysed} image(s) analysed this time, "
        "the others read from the index"
    ]
    if left_out:
        protocol.append(
            f"{len(left_out)} image(s) could not be read and are left out: "
            + ", ".join(left_out[:5])
            + (" …" if len(left_out) > 5 else "")
        )
    kept = [i for i, image in enumerate(dataset.images) if stored[i] is not None]
    captions = [dataset.images[i].captions for i in kept]
    vision = [stored[i] for i in kept]
    sizes, notes = gallery_plan(len(kept), gallery_sizes)
    protocol += notes
    protocol.append(
        "queries: the first caption of each image"
        if first_caption_only
        else "queries: every caption of each image"
    )
    if any("human" in spec for spec in specs):
        if max(map(len, captions)) < 2:
            raise BadInputError(
                "the oracle rows need images with two or more captions (one is the "
                "description, the others the queries); leave 'human' out of the rows"
            )
        protocol.append(
            "oracle rows: each human caption in turn is the image's note (its description); "
            "the image's other captions are the queries; the ranks of all turns are pooled"
        )
    protocol.append("ties count against the right image (rank = images scoring at least as high)")

    texts = _TextCache(config, progress)
    q_image, q_caption, q_text = _queries(captions, first_caption_only)
    report = EvaluationReport(
        dataset=dataset.name,
        annotations=Path(annotations).name,
        split=dataset.split,
        images=len(kept),
        caption_queries=len(q_text),
        stages={name: getattr(config, name) for name in VISION_STAGES}
        | {"topics": config.topics, "embedder": config.embedder},
        protocol=protocol,
    )
    for spec, instructed in itertools.product(specs, modes):
        query_vectors = texts.vectors(q_text, instructed)
        turns = range(max(map(len, captions), default=0)) if "human" in spec else [None]
        descriptions = {
            turn: texts.vectors(_descriptions(spec, vision, captions, turn), instructed)
            for turn in turns
        }
        for size in sizes:
            per_fold = []
            for fold in folds(len(kept), size):
                ranks = []
                for turn in turns:
                    chosen = (q_image >= fold.start) & (q_image < fold.stop)
                    if turn is not None:
                        chosen &= q_caption != turn
                    ranks.append(
                        ranks_from_vectors(
                            query_vectors[chosen],
                            descriptions[turn][fold.start : fold.stop],
                            q_image[chosen] - fold.start,
                        )
                    )
                per_fold.append(summarize(np.concatenate(ranks)))
            report.rows.append(
                RowResult(spec, instructed, min(size, len(kept)), mean_metrics(per_fold), per_fold)
            )
    report.seconds = time.perf_counter() - started
    return report


def parse_rows(rows: Sequence[str] | None, config: Config) -> list[tuple[str, ...]]:
    """Row specs as part tuples in a fixed order; the default rows follow the stages that are on."""
    if rows is None:
        vision = [p for p in PARTS if p in _PART_STAGE and getattr(config, _PART_STAGE[p])]
        combos = [
            combo
            for size in range(1, len(vision) + 1)
            for combo in itertools.combinations(vision, size)
        ]
        return [*combos, ("human",), *([(*vision, "human")] if vision else [])]
    specs = []
    for row in rows:
        parts = {p.strip() for p in row.split("+") if p.strip()}
        unknown = parts - set(PARTS)
        if not parts or unknown:
            raise BadInputError(
                f"unknown row '{row}': a row joins parts with '+', parts are {', '.join(PARTS)}"
            )
        for part in parts & set(_PART_STAGE):
            stage = _PART_STAGE[part]
            if getattr(config, stage) is None:
                raise BadInputError(
                    f"row '{row}' needs the {stage} stage, which is off; "
                    f"choose a model with --{stage} MODEL or leave '{part}' out of the row"
                )
        specs.append(tuple(p for p in PARTS if p in parts))
    return list(dict.fromkeys(specs))


def instruction_modes(instructions: Instructions, config: Config) -> list[bool]:
    """With topic instructions, without, or both (without only, when topics are off)."""
    if instructions not in ("both", "on", "off"):
        raise BadInputError(f"instructions must be both, on or off (got {instructions!r})")
    if config.topics is None:
        if instructions == "on":
            raise BadInputError(
                "topic instructions need a topic classifier; choose one with --topics MODEL"
            )
        return [False]
    return {"both": [True, False], "on": [True], "off": [False]}[instructions]


def gallery_plan(n_images: int, sizes: Sequence[int]) -> tuple[list[int], list[str]]:
    """The gallery sizes to report and what to tell the reader about them."""
    if n_images == 0:
        raise BadInputError("no images to evaluate: the split is empty")
    if not sizes or min(sizes) < 2:
        raise BadInputError("gallery sizes must be at least 2 images")
    chosen = sorted({min(size, n_images) for size in sizes})
    notes = []
    for size in chosen:
        count = len(folds(n_images, size))
        if size == n_images and n_images < max(sizes):
            smaller = [s for s in sorted(set(sizes)) if s > n_images]
            notes.append(
                f"{n_images} images, fewer than {smaller[0]}: one gallery of all {n_images} "
                f"(a smaller gallery is easier: not comparable with {smaller[0]}-image figures)"
            )
        else:
            left = n_images - count * size
            notes.append(
                f"gallery of {size}: {count} fold(s) of consecutive images, metrics averaged"
                + (
                    f"; the last {left} images do not fill a gallery and are left out"
                    if left
                    else ""
                )
            )
    return chosen, notes


def default_work_dir(dataset: CaptionedDataset) -> Path:
    """``tmp/eval/<dataset>-<hash of the image folder>``: one cache for every split of it."""
    digest = hashlib.sha1(str(dataset.image_root.resolve()).encode()).hexdigest()[:8]
    return Path("tmp") / "eval" / f"{dataset.name}-{digest}"


def index_dataset(
    dataset: CaptionedDataset,
    config: Config,
    work_dir: Path,
    *,
    progress: bool = True,
    engine: Engine | None = None,
) -> tuple[list[Any], list[str], int]:
    """Index the dataset's images (only them): each one's stored row (None if unread), the
    images left out, and how many images the vision stages analysed this time.

    The index covers a folder of links to the dataset's images, so a split of a large image
    folder (5,000 Karpathy test images among COCO's 40,000) is analysed alone. Links are only
    ever added, so evaluating a subset later keeps the rest of the cache.
    """
    from imgret.index.build import build_index
    from imgret.index.store import Store

    gallery = work_dir / "gallery"
    relative = [image.path.relative_to(dataset.image_root).as_posix() for image in dataset.images]
    for rel, image in zip(relative, dataset.images, strict=True):
        _link(image.path, gallery / rel, gallery)
    report = build_index(gallery, work_dir / "index", config, progress=progress, engine=engine)
    with Store.open(work_dir / "index") as store:
        found = {row.path: row for row in store.rows(relative)}
    unread = {path for path, _ in report.skipped}
    left_out = [rel for rel in relative if rel not in found or rel in unread]
    rows = [found.get(rel) if rel not in unread else None for rel in relative]
    return rows, left_out, report.new + report.changed + report.reanalyzed + report.retagged


def _link(target: Path, link: Path, gallery: Path) -> None:
    """Point ``link`` at ``target``: a symlink, else a hard link, else a copy (Windows).

    Only what evaluation made itself is ever replaced, and only inside ``gallery``: a link
    whose folder resolves elsewhere (a symlinked folder in the work folder) is refused, and a
    regular file in the way is kept unless it is the image already (a hard link or a copy).
    """
    target = target.resolve()
    if not link.parent.resolve().is_relative_to(gallery.resolve()):
        raise BadInputError(
            f"{link.parent} leads out of the evaluation's work folder {gallery} (a symlinked "
            "folder); remove it or pass another --work-dir"
        )
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if link.resolve() == target:
            return
        link.unlink()
    elif link.exists():
        if link.is_file() and (link.samefile(target) or filecmp.cmp(link, target, shallow=False)):
            return
        raise BadInputError(
            f"{link} is in the way of the link to {target} and was not made by imgret eval; "
            "move it away or pass another --work-dir"
        )
    try:
        link.symlink_to(target)
    except OSError:
        try:
            os.link(target, link)
        except OSError:
            shutil.copy2(target, link)


def _queries(
    captions: Sequence[Sequence[str]], first_only: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per query: its image's index, the caption's number, and the text."""
    entries = [
        (i, j, text)
        for i, caps in enumerate(captions)
        for j, text in enumerate(caps[:1] if first_only else caps)
    ]
    image = np.array([e[0] for e in entries], dtype=np.int64)
    number = np.array([e[1] for e in entries], dtype=np.int64)
    return image, number, [e[2] for e in entries]


def _descriptions(
    spec: tuple[str, ...],
    rows: Sequence[Any],
    captions: Sequence[Sequence[str]],
    turn: int | None,
) -> list[str]:
    """Each image's description from its stored vision outputs and, for the oracle, a caption."""
    return [
        describe.compose_description(
            caption=row.caption if "caption" in spec else "",
            counts=row.counts if "counts" in spec else None,
            notes=caps[turn] if turn is not None and turn < len(caps) else "",
            text_in_image=row.text_in_image if "text" in spec else "",
            tags=row.tags if "tags" in spec else (),
        )
        for row, caps in zip(rows, captions, strict=True)
    ]


class _TextCache:
    """Topics and vectors of texts, each computed once per run: rows share many texts."""

    def __init__(self, config: Config, progress: bool):
        from imgret.models.stages import load_stages

        self.config = config
        self.stages = load_stages(config, which=TEXT_STAGES)
        if self.stages.embedder is None:
            raise ValueError("evaluation needs the embedder stage")
        self.embedder = self.stages.embedder
        self.progress = progress
        self._instructions: dict[str, str] = {}
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    def instructions(self, texts: Sequence[str], instructed: bool) -> list[str]:
        if not instructed:
            return [describe.instruction([])] * len(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._instructions))
        for start in range(0, len(missing), _EMBED_CHUNK):
            chunk = missing[start : start + _EMBED_CHUNK]
            for text, (_, instruction) in zip(
                chunk, topics_and_instructions(chunk, self.stages, self.config), strict=True
            ):
                self._instructions[text] = instruction
        return [self._instructions[t] for t in texts]

    def vectors(self, texts: Sequence[str], instructed: bool) -> np.ndarray:
        """float32 [len(texts), d], L2-normalised rows, in order."""
        pairs = list(zip(self.instructions(texts, instructed), texts, strict=True))
        missing = list(dict.fromkeys(p for p in pairs if p not in self._vectors))
        with tqdm(
            total=len(missing),
            unit="text",
            desc="embedding",
            disable=not self.progress or not missing,
            dynamic_ncols=True,
        ) as bar:
            for start in range(0, len(missing), _EMBED_CHUNK):
                chunk = missing[start : start + _EMBED_CHUNK]
                for pair, vector in zip(chunk, self.embedder.embed(chunk), strict=True):
                    self._vectors[pair] = vector
                bar.update(len(chunk))
        dimension = self.embedder.dimension
        if not pairs:
            return np.zeros((0, dimension), dtype=np.float32)
        return np.stack([self._vectors[p] for p in pairs])


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _published_keys(dataset: str) -> list[str]:
    return [dataset] if dataset in PUBLISHED else list(PUBLISHED)


def _published_markdown(dataset: str) -> list[str]:
    lines = [
        "Published by the original framework (THEIR figures, quoted from its README, not "
        "measured by imgret; 1,000-image galleries; avg/1k = mean rank of the right image):",
    ]
    for key in _published_keys(dataset):
        lines += [
            "",
            f"| {_PUBLISHED_TITLES[key]} (original, published) | comparable row | R@1 | R@5 "
            "| R@20 | avg/1k |",
            "|---|---|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {models} | {row} | {r1:.1f}% | {r5:.1f}% | {r20:.1f}% | {avg:.2f} |"
            for models, row, r1, r5, r20, avg in PUBLISHED[key]
        ]
    return lines
