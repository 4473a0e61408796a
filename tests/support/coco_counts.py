"""Counting quality against COCO's boxes, shared by the detector tests and the bench."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgret import describe
from tests.support.shared_data import COCO_SAMPLE

MANY = max(describe.NUMBER_WORDS) + 1
"""The description writes counts up to four as words, then "many" (imgret.describe)."""


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
