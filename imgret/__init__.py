"""imgret: find images by describing them in words, offline and explainable.

    import imgret
    report = imgret.build_index("gallery", "tmp/index")          # describe + embed + store
    imgret.set_notes("tmp/index", {"bus.jpg": "school trip to London, 2019"})
    for hit in imgret.search("tmp/index", "a bus in the street", k=5):
        print(hit.rank, hit.score, hit.path, hit.description)

Names are imported on first use, so ``import imgret`` stays fast and needs no model library.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "imgret.config",
    "apply_profile": "imgret.profiles",
    "PROFILES": "imgret.profiles",
    "build_index": "imgret.indexer",
    "IndexReport": "imgret.indexer",
    "set_notes": "imgret.notes",
    "read_notes_csv": "imgret.notes",
    "Searcher": "imgret.searcher",
    "Hit": "imgret.searcher",
    "search": "imgret.searcher",
    "Store": "imgret.store",
    "load_stages": "imgret.models.stages",
    "ModelUnavailableError": "imgret.models.loading",
    "plot_hits": "imgret.plot",
    "run_doctor": "imgret.doctor",
    "compose_description": "imgret.describe",
    "instruction": "imgret.describe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'imgret' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
