"""A worker-side fault for the Ray tests: every vision stage raises on one image size.

Ray runs :func:`fail_on_poison` in each worker it starts (``worker_process_setup_hook``), and
the in-process comparison patches the same way, so both engines meet the same failing file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

POISON_SIZE = (97, 89)


def make_poison(path: Path) -> Path:
    """A readable image that every vision stage fails on (once the fault is installed)."""
    Image.new("RGB", POISON_SIZE, (200, 30, 30)).save(path)
    return path


def poisoned(run_stage: Any) -> Any:
    """``run_stage`` that raises for a batch holding an image of :data:`POISON_SIZE`."""

    def run(stage: str, model: Any, images: list[Image.Image]) -> list[Any]:
        if any(image.size == POISON_SIZE for image in images):
            raise RuntimeError("this model cannot take a 97x89 image")
        return run_stage(stage, model, images)

    return run


def fail_on_poison() -> None:
    from imgret.index import engines

    engines.run_stage = poisoned(engines.run_stage)
