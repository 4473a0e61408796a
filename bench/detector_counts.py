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
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.coco_counts import Agreement, agreement, ground_truth  # noqa: E402
from tests.support.shared_data import COCO_SAMPLE, YOLOX_NANO  # noqa: E402

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.10, 0.701, 0.05))


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
    from imgret.models.counting import count_classes

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
