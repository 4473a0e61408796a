"""Index rows made up without any model, for tests of the store and what reads it."""

from __future__ import annotations

import numpy as np

from imgret.index.store import ImageRow


def stored_row(path: str, seed: int, embedder: str = "e1", dim: int = 8) -> ImageRow:
    """A complete row whose values (and unit vector) follow from ``seed``."""
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return ImageRow(
        path=path,
        size=100 + seed,
        mtime_ns=1_700_000_000_000_000_000 + seed,
        sha256=f"{seed:064x}",
        width=640,
        height=480,
        caption=f"caption {seed}",
        counts={"dog": seed, "cat": 1},
        text_in_image="STOP",
        notes="a note" if seed % 2 else "",
        topics=[("travel", 0.9), ("arts_&_culture", 0.25)],
        description=f"description {seed}",
        instruction="Represent the travel title:",
        embedder=embedder,
        vector=vector / np.linalg.norm(vector),
        vision_key='{"captioner": "c"}',
        text_key='{"embedder": "e1"}',
    )
