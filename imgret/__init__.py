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
import importlib.metadata
import os
from typing import Any

# Ultralytics unpickles a .pt in full, running whatever code the file holds, unless its safe
# mode (torch.load(weights_only=True) and known model classes only) is on. It reads the flag
# once, when first imported, so it is set here, before any imgret module can import it;
# imgret.models.detector refuses to load weights if Ultralytics was imported earlier without it.
os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"

try:
    __version__ = importlib.metadata.version("imgret")
except importlib.metadata.PackageNotFoundError:  # run from a source tree without installing
    __version__ = "0+unknown"

_EXPORTS = {
    "Config": "imgret.config",
    "apply_profile": "imgret.config",
    "PROFILES": "imgret.config",
    "build_index": "imgret.index.build",
    "IndexReport": "imgret.index.build",
    "InProcessEngine": "imgret.index.engines",
    "RayEngine": "imgret.index.ray_engine",
    "set_notes": "imgret.index.notes",
    "read_notes_csv": "imgret.index.notes",
    "Searcher": "imgret.retrieval.searcher",
    "Hit": "imgret.retrieval.searcher",
    "search": "imgret.retrieval.searcher",
    "Store": "imgret.index.store",
    "find_duplicates": "imgret.retrieval.duplicates",
    "DuplicateGroup": "imgret.retrieval.duplicates",
    "parse_query": "imgret.retrieval.query",
    "Query": "imgret.retrieval.query",
    "index_info": "imgret.index.info",
    "export_arrays": "imgret.index.export",
    "load_stages": "imgret.models.stages",
    "ImgretError": "imgret.errors",
    "ModelUnavailableError": "imgret.errors",
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
