"""How well a detector counts objects: predicted counts against COCO's instance annotations.

The description says "two giraffes and one tree"; this measures how often such a number is
right. Per image and class (pairs where the detector or the annotation has at least one
object): the exact-count rate and the mean absolute error, per split. The confidence
threshold is tuned on train2017 and reported on val2017, so the reported numbers are not fit
to the images they are measured on.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/detector_counts.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from imgret import describe  # noqa: E402
from tests.shared_data import COCO_SAMPLE, YOLOX_NANO  # noqa: E402

MANY = max(describe.NUMBER_WORDS) + 1
"""The description writes counts up to four as words, then "many" (imgret.describe)."""
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.10, 0.701, 0.05))


@dataclass(frozen=True)
class Agreement:
    """Counting quality over image × class pairs where either side counts something."""

    exact: float
    """Share of pairs whose predicted count equals the annotated one."""
    mae: float
    """Mean absolute difference between predicted and annotated counts."""
    words: float
    """Share of pairs whose count reads the same in a description (five and more are "many")."""
    images_exact: float
    """Share of images whose every class count is right (an image with nothing, both sides)."""
    pairs: int


def ground_truth(data: Path = COCO_SAMPLE) -> tuple[dict[str, Counter], dict[str, str]]:
    """Per annotated file name, its count per class (crowd regions left out), and its split.

    Images with no annotation at all are left out: in coco-sample they are 80 of the 159
    val2017 images (kitchens, bears, airports), whose instances were not copied, not images
    with nothing in them.
    """
    instances = json.loads((data / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in instances["categories"]}
    files = {image["id"]: image["file_name"] for image in instances["images"]}
    counts: dict[str, Counter] = {}
    for annotation in instances["annotations"]:
        image = counts.setdefault(files[annotation["image_id"]], Counter())
        if not annotation.get("iscrowd", 0):
            image[names[annotation["category_id"]]] += 1
    splits = {image["file_name"]: image.get("split", "") for image in instances["images"]}
    return counts, {name: splits[name] for name in counts}


def agreement(predicted: list[dict[str, int]], truth: list[dict[str, int]]) -> Agreement:
    """Exact-count rate and mean absolute error over pairs where either side is non-zero."""
    pairs = []
    images_exact = 0
    for found, real in zip(predicted, truth, strict=True):
        classes = {c for c in set(found) | set(real) if found.get(c, 0) or real.get(c, 0)}
        image_pairs = [(found.get(c, 0), real.get(c, 0)) for c in classes]
        pairs.extend(image_pairs)
        images_exact += all(p == r for p, r in image_pairs)
    counts = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    errors = np.abs(counts[:, 0] - counts[:, 1])
    words = np.minimum(counts, MANY)
    return Agreement(
        exact=float((errors == 0).mean()) if len(errors) else 1.0,
        mae=float(errors.mean()) if len(errors) else 0.0,
        words=float((words[:, 0] == words[:, 1]).mean()) if len(errors) else 1.0,
        images_exact=images_exact / max(1, len(predicted)),
        pairs=len(errors),
    )


def run_detector(model: str, files: list[Path], batch_size: int = 8, confidence: float = 0.05):
    """The detector's boxes for every file at a low threshold, to be cut at any higher one.

    Greedy NMS only lets a box suppress lower-scored ones, so cutting after NMS at a threshold
    gives the same boxes as running with that threshold.
    """
    from imgret.config import Config
    from imgret.models.detector import load_detector

    detector = load_detector(model, Config(device="cpu", detector_confidence=confidence))
    found = []
    for start in tqdm(range(0, len(files), batch_size), desc="detecting", unit="batch"):
        batch = [Image.open(path) for path in files[start : start + batch_size]]
        found.extend(detector.predict(batch, confidence))
    return detector, found


def counts_at(detector, found, threshold: float) -> list[dict[str, int]]:
    """Boxes per class at or above ``threshold``, as imgret counts them (no possible classes)."""
    from imgret.models.detector import count_classes

    return [count_classes(f.class_ids, f.scores, detector.names, threshold, 0, 0) for f in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(YOLOX_NANO), help="an ONNX detector or folder")
    parser.add_argument("--data", type=Path, default=COCO_SAMPLE)
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    args = parser.parse_args(argv)

    truth, splits = ground_truth(args.data)
    files = sorted(truth)[: args.limit]
    started = time.perf_counter()
    detector, found = run_detector(args.model, [args.data / "images" / f for f in files])
    seconds = time.perf_counter() - started
    by_split = {
        s: [i for i, f in enumerate(files) if splits[f] == s] for s in sorted(set(splits.values()))
    }

    def score(threshold: float, split: str) -> Agreement:
        counts = counts_at(detector, found, threshold)
        rows = by_split[split]
        return agreement([counts[i] for i in rows], [truth[files[i]] for i in rows])

    print(
        f"{len(files)} images in {seconds:.1f} s ({len(files) / seconds:.1f} images/s, "
        "decoding included)\n"
    )
    print(
        "| threshold | split | images | pairs | exact-count rate | MAE | same words "
        "| images all right |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for threshold in THRESHOLDS:
        for split in by_split:
            a = score(threshold, split)
            print(
                f"| {threshold:.2f} | {split} | {len(by_split[split])} | {a.pairs} "
                f"| {a.exact:.3f} | {a.mae:.3f} | {a.words:.3f} | {a.images_exact:.3f} |"
            )
    tuning = "train2017" if "train2017" in by_split else next(iter(by_split))
    best = max(THRESHOLDS, key=lambda t: (score(t, tuning).exact, -score(t, tuning).mae))
    print(f"\nbest threshold on {tuning} (exact-count rate, then MAE): {best:.2f}")
    for split in by_split:
        a = score(best, split)
        print(
            f"  {split}: exact-count rate {a.exact:.3f}, MAE {a.mae:.3f}, "
            f"same words {a.words:.3f}, pairs {a.pairs}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
