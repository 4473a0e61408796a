"""Duplicates on real photos: a byte-for-byte copy, a resized re-encoded copy, distinct photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from imgret.cli import main
from imgret.config import apply_profile
from imgret.errors import BadInputError
from imgret.index.build import build_index
from imgret.retrieval.duplicates import DuplicateGroup, find_duplicates
from tests.support.galleries import coco_images
from tests.support.shared_data import COCO_SAMPLE, NEEDS_MINILM, YOLOX_NANO, needs_shared

pytestmark = [
    pytest.mark.slow,
    needs_shared(COCO_SAMPLE),
    needs_shared(YOLOX_NANO),
    NEEDS_MINILM,
]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("duplicates")
    gallery = root / "gallery"
    (gallery / "copies").mkdir(parents=True)
    photos = coco_images(5)
    for photo in photos:
        shutil.copy(photo, gallery / photo.name)
    shutil.copy(photos[0], gallery / "copies" / "first.jpg")
    shutil.copy(photos[0], gallery / "copies" / "first-again.jpg")
    with Image.open(photos[2]) as image:
        image.resize((image.width * 3 // 4, image.height * 3 // 4)).save(
            gallery / "copies" / "third-small.jpg", quality=85
        )
    config = apply_profile("cpu", detector=str(YOLOX_NANO), device="cpu")
    build_index(gallery, root / "index", config, progress=False)
    return root / "index"


def test_exact_and_near_groups_largest_first(index):
    photos = [p.name for p in coco_images(5)]
    exact = DuplicateGroup(
        "exact", sorted([photos[0], "copies/first.jpg", "copies/first-again.jpg"]), 1.0
    )
    # The smaller copy lost a count ("perhaps also a microwave"): described alike, not equal.
    groups = find_duplicates(index, 0.9)
    near = DuplicateGroup("near", sorted([photos[2], "copies/third-small.jpg"]), 0.0)
    assert [(g.kind, g.paths) for g in groups] == [(g.kind, g.paths) for g in (exact, near)]
    assert groups[0] == exact and 0.9 <= groups[1].similarity < 0.98
    assert find_duplicates(index, 0.98) == find_duplicates(index, 1.0) == [exact]
    loose = find_duplicates(index, 0.5)
    assert sum(len(g.paths) for g in loose if g.kind == "near") > 2
    assert all(g.similarity >= 0.5 for g in loose)


def test_the_command_prints_groups_and_json(index, capsys):
    assert main(["duplicates", "--index", str(index), "--json", "--threshold", "0.9"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [(g["kind"], len(g["paths"])) for g in printed] == [("exact", 3), ("near", 2)]
    assert main(["duplicates", "--index", str(index)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("exact  3 files") and "  copies/first.jpg" in out


@pytest.mark.parametrize("threshold", [0.0, -1, 1.5])
def test_a_threshold_outside_the_cosines_is_refused(index, threshold):
    with pytest.raises(BadInputError, match="--threshold must be above 0 and at most 1"):
        find_duplicates(index, threshold)
