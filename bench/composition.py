"""Which wording of the detector's findings finds the right photo: the CPU profile, end to end.

Counts-only descriptions (YOLOX-Nano, no captioner) embedded by all-MiniLM-L6-v2, every human
caption of coco-sample as a query, one gallery per split. Each row changes one thing in how
the detections become a description and reports R@1/5/10 and the mean rank of the right
image (ties count against the system, as in ``imgret eval``; two more columns give R@1/R@5
with ties broken in its favour, the convention of issue 5's hand computation). Δ log-rank is
the mean over images of log(rank in "vs") − log(rank in this row), with its standard error
over images: positive is better, and a change within two standard errors is noise.

Tune on train2017 (80 images), read val2017 (159) once at the end. The detector runs once
(boxes and scores down to 0.05 are cached in tmp/composition/), so a row costs text embedding
only. The baseline row is checked against ``imgret.evaluation.evaluate_dataset`` (the real
index path) before the table is printed.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/composition.py            # train2017, then val2017
    HF_HUB_OFFLINE=1 .venv/bin/python bench/composition.py --ocr      # with the OCR rows (slow)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from importlib import metadata
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (before the model libraries, as everywhere in imgret)
from common import busy_note, machine
from tqdm import tqdm

from imgret import describe
from imgret.config import Config, apply_profile
from imgret.evaluation.datasets import CaptionedDataset, load_dataset
from imgret.evaluation.metrics import TIE_TOLERANCE, Metrics, summarize, target_ranks
from imgret.evaluation.protocol import evaluate_dataset
from imgret.images import load_image
from imgret.models.counting import count_classes
from imgret.models.stages import load_stages
from tests.support.shared_data import COCO_SAMPLE, REPO, YOLOX_NANO

CAPTIONS = COCO_SAMPLE / "captions.json"
CACHE = REPO / "tmp" / "composition"
CONFIDENCE = 0.25
"""The cpu profile's detector threshold: what the stored counts hold."""
FLOOR = Config.detector_possible_floor
"""The lowest score cached; "possible" classes are scored between it and CONFIDENCE."""
POSSIBLE_LIMIT = Config.detector_possible_limit
EXAMPLE = "000000030752.jpg"
"""A train2017 photo (a skier and a dog) whose description each row prints."""

RIDDEN = {
    "horse": "riding",
    "motorcycle": "riding",
    "bicycle": "riding",
    "elephant": "riding",
    "skateboard": "riding",
    "surfboard": "surfing on",
    "skis": "skiing on",
    "snowboard": "snowboarding on",
}
HELD = {
    "umbrella",
    "tennis racket",
    "baseball bat",
    "frisbee",
    "cell phone",
    "kite",
    "remote",
    "wine glass",
    "cup",
    "banana",
    "donut",
    "pizza",
    "hot dog",
    "sandwich",
    "book",
    "toothbrush",
    "knife",
    "scissors",
    "teddy bear",
}
SUPPORTS = {"bed", "couch", "bench", "dining table", "chair", "toilet"}
SCENES = {
    "skis": "skiing down a snowy slope",
    "snowboard": "snowboarding on snow",
    "surfboard": "surfing on a wave in the ocean",
    "skateboard": "skateboarding",
    "tennis racket": "playing tennis on a tennis court",
    "baseball bat": "a baseball game",
    "baseball glove": "a baseball game",
    "frisbee": "playing frisbee in a park",
    "kite": "flying a kite",
    "oven": "a kitchen",
    "microwave": "a kitchen",
    "refrigerator": "a kitchen",
    "toaster": "a kitchen",
    "toilet": "a bathroom",
    "bed": "a bedroom",
    "couch": "a living room",
    "car": "a city street",
    "bus": "a city street",
    "truck": "a city street",
    "traffic light": "a city street",
    "stop sign": "a street sign",
    "fire hydrant": "a street",
    "parking meter": "a street",
    "airplane": "an airport",
    "train": "a train station",
    "boat": "the water",
    "giraffe": "the wild",
    "zebra": "the wild",
    "elephant": "the wild",
    "cow": "a grassy field",
    "sheep": "a grassy field",
    "horse": "a grassy field",
    "laptop": "a desk",
    "keyboard": "a desk",
    "mouse": "a desk",
    "pizza": "food on a plate",
    "sandwich": "food on a plate",
    "broccoli": "food on a plate",
    "donut": "food",
    "cake": "food",
    "hot dog": "food",
    "dining table": "a table",
}
"""Scene and activity words that photo captions use with a class: general, written by hand."""


@dataclass(frozen=True)
class Box:
    label: str
    score: float
    xyxy: tuple[float, float, float, float]
    area: float
    """The fraction of the image the box covers."""


@dataclass(frozen=True)
class Found:
    """What the vision stages saw in one image: boxes down to FLOOR (best first), OCR text."""

    boxes: tuple[Box, ...]
    text: str = ""

    def confident(self, confidence: float = CONFIDENCE, min_area: float = 0.0) -> list[Box]:
        """Boxes at or above ``confidence``; a class whose boxes are all small keeps its best."""
        kept = [b for b in self.boxes if b.score >= confidence]
        large = [b for b in kept if b.area >= min_area]
        lost = dict.fromkeys(b.label for b in kept if b.label not in {x.label for x in large})
        return large + [next(b for b in kept if b.label == label) for label in lost]

    def possible(self, confidence: float = CONFIDENCE, limit: int = POSSIBLE_LIMIT) -> list[str]:
        """Classes scored between FLOOR and ``confidence`` and not counted, best first."""
        counted = {b.label for b in self.boxes if b.score >= confidence}
        unsure = (b.label for b in self.boxes if b.label not in counted)
        return list(dict.fromkeys(unsure))[:limit]

    def counts(self, confidence: float = CONFIDENCE, possible: int = 0) -> dict[str, int]:
        """What imgret's store would hold: boxes per class, 0 for ``possible`` unsure classes,
        by imgret's own rule (the study's other variants reshape this)."""
        labels = [b.label for b in self.boxes]
        scores = np.array([b.score for b in self.boxes])
        return count_classes(np.arange(len(labels)), scores, labels, confidence, FLOOR, possible)


def counts(boxes: Sequence[Box]) -> dict[str, int]:
    labels = [b.label for b in boxes]
    return {label: labels.count(label) for label in dict.fromkeys(labels)}


def by_area(boxes: Sequence[Box]) -> list[tuple[str, int]]:
    """(class, count), the class covering most of the image first."""
    area: dict[str, float] = {}
    for b in boxes:
        area[b.label] = area.get(b.label, 0.0) + b.area
    found = counts(boxes)
    return [(label, found[label]) for label in sorted(area, key=lambda k: -area[k])]


def phrases(items: Sequence[tuple[str, int]], one: str = "one", many: str = "many") -> list[str]:
    """ "a dog" or "one dog", "two cats", … "many cats", in the order given."""
    out = []
    for label, n in items:
        phrase = describe.count_phrase(label, n)
        if n == 1 and one == "a":
            phrase = describe.indefinite(label)
        elif n > max(describe.NUMBER_WORDS):
            phrase = f"{many} {phrase.split(' ', 1)[1]}"
        out.append(phrase)
    return out


def by_count(found: dict[str, int]) -> list[tuple[str, int]]:
    """imgret's order: most frequent first, then alphabetical."""
    return sorted(found.items(), key=lambda item: (-item[1], item[0]))


def in_the_photo(items: Sequence[tuple[str, int]], one: str = "one", many: str = "many") -> str:
    if not items:
        return ""
    verb = "is" if len(items) == 1 and items[0][1] == 1 else "are"
    return f"{describe.join_words(phrases(items, one, many))} {verb} in the photo."


def photo_of(items: Sequence[tuple[str, int]]) -> str:
    return f"a photo of {describe.join_words(phrases(items, 'a'))}." if items else ""


def bare_list(items: Sequence[tuple[str, int]]) -> str:
    return f"{describe.join_words(phrases(items, 'a'))}." if items else ""


def scene(boxes: Sequence[Box]) -> str:
    words = dict.fromkeys(SCENES[b.label] for b in boxes if b.label in SCENES)
    return f"{', '.join(list(words)[:3])}." if words else ""


def relations(boxes: Sequence[Box], limit: int = 2) -> str:
    """ "a person riding a horse", "a cat on a bed", from how the boxes overlap."""
    found = []
    for a in boxes:
        for b in boxes:
            if a is b or _overlap(a.xyxy, b.xyxy) < 0.3:
                continue
            if a.label == "person" and b.label in RIDDEN and a.xyxy[1] < b.xyxy[1]:
                found.append(f"a person {RIDDEN[b.label]} {describe.indefinite(b.label)}")
            elif a.label == "person" and b.label in HELD:
                found.append(f"a person holding {describe.indefinite(b.label)}")
            elif a.label == "person" and b.label in SUPPORTS - {"dining table", "toilet"}:
                found.append(f"a person sitting on {describe.indefinite(b.label)}")
            elif (
                a.label not in SUPPORTS | {"person"}
                and b.label in SUPPORTS
                and a.area < b.area
                and a.xyxy[3] <= b.xyxy[3] + 0.1 * (b.xyxy[3] - b.xyxy[1])
            ):
                found.append(f"{describe.indefinite(a.label)} on {describe.indefinite(b.label)}")
    kept = list(dict.fromkeys(found))[:limit]
    return f"{describe.join_words(kept)}." if kept else ""


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over the smaller box's area."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / max(smaller, 1e-9)


def join(*sentences: str) -> str:
    return " ".join(s for s in sentences if s)


def composed(found: Found, confidence: float = CONFIDENCE, possible: int = 0) -> str:
    """imgret's own composition of what its store would hold."""
    return describe.compose_description(
        counts=found.counts(confidence, possible), text_in_image=found.text
    )


def kept(found: Found) -> str:
    """The composition kept on train2017: counts and the 3 best classes below the threshold."""
    return composed(found, possible=POSSIBLE_LIMIT)


def possible_only(found: Found) -> str:
    return describe.possible_sentence(found.possible(), after_counts=bool(found.confident()))


BASELINE = "baseline: imgret's counts sentence"
POSSIBLE = "+ possible classes (score 0.05–0.25, best 3)"


@dataclass(frozen=True)
class Variant:
    name: str
    needs: str
    compose: Callable[[Found], str]
    versus: str = BASELINE
    ocr: bool = False


VARIANTS = [
    Variant(BASELINE, "counts", composed, versus=""),
    Variant(
        "'a'/'an' instead of 'one'",
        "counts",
        lambda f: in_the_photo(by_count(f.counts()), "a"),
    ),
    Variant("'a photo of …'", "counts", lambda f: photo_of(by_count(f.counts()))),
    Variant(
        "bare list ('two people and a bus.')",
        "counts",
        lambda f: bare_list(by_count(f.counts())),
    ),
    Variant(
        "'several' for five and more",
        "counts",
        lambda f: in_the_photo(by_count(f.counts()), many="several"),
    ),
    Variant("largest classes first", "boxes", lambda f: in_the_photo(by_area(f.confident()))),
    Variant(
        "only the 3 largest classes", "boxes", lambda f: in_the_photo(by_area(f.confident())[:3])
    ),
    Variant(
        "only the 2 largest classes", "boxes", lambda f: in_the_photo(by_area(f.confident())[:2])
    ),
    Variant(
        "boxes under 1% of the image not counted",
        "boxes",
        lambda f: in_the_photo(by_count(counts(f.confident(min_area=0.01)))),
    ),
    Variant(
        "+ scene words from the classes",
        "counts",
        lambda f: join(scene(f.confident()), composed(f)),
    ),
    Variant(
        "+ relations from boxes",
        "boxes",
        lambda f: join(composed(f), relations(f.confident())),
    ),
    Variant("counts at confidence 0.20", "profile", lambda f: composed(f, 0.20)),
    Variant("counts at confidence 0.35", "profile", lambda f: composed(f, 0.35)),
    Variant(POSSIBLE, "scores", kept),
    Variant("possible: best 10", "scores", lambda f: composed(f, possible=10), POSSIBLE),
    Variant(
        "possible + scene words",
        "scores",
        lambda f: join(scene(f.confident()), kept(f)),
        POSSIBLE,
    ),
    Variant(
        "possible + relations",
        "scores + boxes",
        lambda f: join(kept(f), relations(f.confident())),
        POSSIBLE,
    ),
    Variant(
        "possible + 'a photo of …'",
        "scores",
        lambda f: join(photo_of(by_count(f.counts())), possible_only(f)),
        POSSIBLE,
    ),
    Variant(
        "possible + counts at 0.20",
        "scores + profile",
        lambda f: composed(f, 0.20, POSSIBLE_LIMIT),
        POSSIBLE,
    ),
    Variant("+ OCR text", "ocr", composed, ocr=True),
    Variant("possible + OCR text", "scores + ocr", kept, POSSIBLE, ocr=True),
]
"""The table's rows; a row without ``ocr`` sees no OCR text."""
SHORT = {BASELINE: "baseline", POSSIBLE: "possible"}


def detect(paths: Sequence[Path]) -> dict[str, tuple[Box, ...]]:
    """YOLOX-Nano's boxes per file name down to FLOOR, cached by the model's content hash."""
    config = apply_profile("cpu", detector=str(YOLOX_NANO), device="cpu")
    detector = load_stages(config, which=("detector",)).detector
    cache = CACHE / f"detections-{detector.revision}-{FLOOR}.json"
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [path for path in paths if path.name not in stored]
    for start in tqdm(range(0, len(todo), 8), desc="detecting", disable=not todo):
        batch = todo[start : start + 8]
        images = [load_image(path) for path in batch]
        for path, image, found in zip(batch, images, detector.predict(images, FLOOR), strict=True):
            stored[path.name] = {
                "size": image.size,
                "boxes": [
                    [detector.names[c], float(s), [float(v) for v in box]]
                    for box, s, c in zip(
                        found.boxes, found.scores, found.class_ids.tolist(), strict=True
                    )
                ],
            }
    if todo:
        CACHE.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stored))
    result = {}
    for path in paths:
        width, height = stored[path.name]["size"]
        result[path.name] = tuple(
            Box(
                label,
                score,
                tuple(xyxy),
                (xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]) / (width * height),
            )
            for label, score, xyxy in stored[path.name]["boxes"]
        )
    return result


def read_text(paths: Sequence[Path]) -> dict[str, str]:
    """RapidOCR's text per file name (imgret's OCR stage), cached: about 2 s an image."""
    config = apply_profile("cpu", detector=str(YOLOX_NANO), ocr="rapidocr", device="cpu")
    cache = (
        CACHE / f"ocr-{metadata.version('rapidocr-onnxruntime')}-{config.ocr_min_confidence}.json"
    )
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [path for path in paths if path.name not in stored]
    if todo:
        reader = load_stages(config, which=("ocr",)).ocr
        CACHE.mkdir(parents=True, exist_ok=True)
        for path in tqdm(todo, desc="reading text"):
            stored[path.name] = reader.read([load_image(path)])[0]
            cache.write_text(json.dumps(stored))
    return {path.name: stored[path.name] for path in paths}


@dataclass(frozen=True)
class Result:
    variant: Variant
    metrics: Metrics
    favourable: Metrics
    """Ties broken in the system's favour: rank = 1 + images scoring strictly higher."""
    ranks: np.ndarray
    distinct: int
    example: str


class Queries:
    """One split's caption queries (each image's human captions), the image each is of, and
    the vectors of every text seen so far: a description that several variants compose alike
    is embedded once. The composition and tagger studies rank their variants against it."""

    def __init__(self, dataset: CaptionedDataset, embedder) -> None:
        self.names = [image.path.name for image in dataset.images]
        self.targets = np.array(
            [i for i, image in enumerate(dataset.images) for _ in image.captions]
        )
        self.queries = [caption for image in dataset.images for caption in image.captions]
        self.embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            encoded = self.embedder.embed([("", text) for text in missing])
            self._vectors.update(zip(missing, encoded, strict=True))
        return np.stack([self._vectors[t] for t in texts])


class Bench(Queries):
    """The queries and each image's detections."""

    def __init__(self, dataset: CaptionedDataset, found: dict[str, Found], embedder) -> None:
        super().__init__(dataset, embedder)
        self.found = [found[name] for name in self.names]

    def run(self, variant: Variant) -> Result:
        descriptions = [
            variant.compose(found if variant.ocr else replace(found, text=""))
            for found in self.found
        ]
        similarity = self.vectors(self.queries) @ self.vectors(descriptions).T
        ranks = target_ranks(similarity, self.targets)
        target = similarity[np.arange(len(self.targets)), self.targets]
        favourable = (similarity > target[:, None] + TIE_TOLERANCE).sum(axis=1) + 1
        example = descriptions[self.names.index(EXAMPLE)] if EXAMPLE in self.names else ""
        return Result(
            variant, summarize(ranks), summarize(favourable), ranks, len(set(descriptions)), example
        )


def log_rank_gain(
    before: np.ndarray, after: np.ndarray, targets: np.ndarray
) -> tuple[float, float]:
    """Mean over images of the mean log-rank gain of its queries, and its standard error."""
    gain = np.log(before) - np.log(after)
    per_image = np.array([gain[targets == i].mean() for i in np.unique(targets)])
    return float(per_image.mean()), float(per_image.std(ddof=1) / math.sqrt(len(per_image)))


def check_baseline(split: str | None, result: Result) -> None:
    """The bench's baseline must be what ``imgret eval`` measures through the real index
    with possible classes off (counts only)."""
    config = apply_profile(
        "cpu", detector=str(YOLOX_NANO), device="cpu", detector_possible_floor=0.0
    )
    report = evaluate_dataset(
        CAPTIONS, config, split=split, rows=["counts"], work_dir=CACHE / "eval", progress=False
    )
    real = report.rows[0].metrics
    mine = result.metrics
    if not all(
        math.isclose(getattr(real, k), getattr(mine, k)) for k in ("r1", "r5", "r10", "mean_rank")
    ):
        raise SystemExit(f"the bench's baseline {mine} differs from imgret eval's {real}")


def table(results: list[Result], targets: np.ndarray) -> list[str]:
    by_name = {r.variant.name: r for r in results}
    lines = [
        "| Change | Needs | vs | Distinct | R@1 | R@5 | R@10 | Mean rank | R@1 (ties won) "
        "| R@5 (ties won) | Δ log-rank |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        m, f = r.metrics, r.favourable
        gain = "—"
        if r.variant.versus:
            mean, error = log_rank_gain(by_name[r.variant.versus].ranks, r.ranks, targets)
            gain = f"{mean:+.3f} ± {error:.3f}"
        lines.append(
            f"| {r.variant.name} | {r.variant.needs} | {SHORT.get(r.variant.versus, '—')} "
            f"| {r.distinct} "
            f"| {m.r1:.3f} | {m.r5:.3f} | {m.r10:.3f} | {m.mean_rank:.2f} | {f.r1:.3f} "
            f"| {f.r5:.3f} | {gain} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--splits",
        nargs="+",
        default=["train2017", "val2017"],
        help="splits of captions.json to report ('all' for the 239 images together)",
    )
    parser.add_argument(
        "--ocr", action="store_true", help="add the OCR rows (RapidOCR, ~2 s an image)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"# coco-sample, CPU profile (YOLOX-Nano + all-MiniLM-L6-v2), {date.today()}")
    print(f"\n{busy_note()}; {json.dumps(machine())}")

    everything = load_dataset(CAPTIONS)
    paths = [image.path for image in everything.images]
    boxes = detect(paths)
    text = read_text(paths) if args.ocr else {}
    found = {name: Found(found, text.get(name, "")) for name, found in boxes.items()}
    config = apply_profile("cpu", detector=str(YOLOX_NANO), device="cpu")
    embedder = load_stages(config, which=("embedder",)).embedder
    variants = [v for v in VARIANTS if args.ocr or not v.ocr]

    for split in args.splits:
        dataset = everything if split == "all" else load_dataset(CAPTIONS, split=split)
        bench = Bench(dataset, found, embedder)
        results = [bench.run(variant) for variant in variants]
        check_baseline(None if split == "all" else split, results[0])
        print(
            f"\n## {split}: {len(bench.names)} images, {len(bench.queries)} caption queries, "
            "one gallery; ties count against the system except in the 'ties won' columns\n"
        )
        print("\n".join(table(results, bench.targets)))
        print(f"\nDescriptions of {EXAMPLE} (train2017):" if results[0].example else "")
        for r in results:
            if r.example:
                print(f'- {r.variant.name}: "{r.example}"')
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
