"""Real photos for tests and benchmarks: the COCO sample beside the repo, Ultralytics' two."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.support.shared_data import COCO_SAMPLE


def coco_images(n: int | None = None, *, fallback: bool = False) -> list[Path]:
    """The first n COCO sample photos, sorted by name.

    With ``fallback`` (benchmarks on a bare GPU machine) a missing sample is replaced by
    copies of Ultralytics' two bundled photos, which cost the models the same per image;
    tests keep it off and skip instead, since their assertions name COCO photos.
    """
    images = sorted((COCO_SAMPLE / "images").glob("*.jpg"))
    if images or not fallback:
        return images[:n] if n else images
    from ultralytics.utils import ASSETS

    print(f"no COCO sample in {COCO_SAMPLE} (set IMGRET_SHARED): using Ultralytics' photos")
    folder = Path(tempfile.mkdtemp(prefix="imgret-bench-images-"))
    bundled = [Path(ASSETS) / "bus.jpg", Path(ASSETS) / "zidane.jpg"]
    copies = []
    for i in range(n or 2):
        copies.append(folder / f"{i:05d}-{bundled[i % 2].name}")
        copies[-1].write_bytes(bundled[i % 2].read_bytes())
    return copies


def make_small_gallery(gallery: Path) -> Path:
    """Six real photos in ``gallery``: four COCO images (two in ``sub/``), bus and zidane."""
    from ultralytics.utils import ASSETS

    (gallery / "sub").mkdir(parents=True)
    for i, image in enumerate(coco_images(4)):
        shutil.copy(image, gallery / ("sub" if i % 2 else "") / image.name)
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(Path(ASSETS) / name, gallery / name)
    return gallery
