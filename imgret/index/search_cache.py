"""The search vectors as memory-mapped files beside the index, rewritten only when they change.

SQLite is the index's one truth, but reading 10^6 vectors out of it takes seconds on every
search process (bench/RESULTS.md); the same matrix opens from
an ``.npy`` in milliseconds and the page cache shares it among processes. The files carry
the store's vectors generation in their names, a token that every write of vectors replaces
in its own transaction, and are read in the same snapshot as that token: a search never
pairs vectors with paths of another state of the index. ``imgret index`` writes them at the
end of a build, or else the first search after a change does (and removes older ones); where
the folder cannot be written, the vectors are used from memory and nothing is cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgret.index.store import Store

CACHE_DIR = "search-cache"
"""The folder beside the index that holds the files derived from its vectors."""


@dataclass
class SearchVectors:
    """Paths and vectors of one embedder's rows, and how many rows the index holds in all."""

    relpaths: list[str]
    matrix: np.ndarray
    total: int
    folder: Path | None
    generation: str | None

    def derived(self, name: str, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``compute(matrix)``, read back from the cache when an earlier search wrote it."""
        if self.folder is None or self.generation is None:
            return compute(self.matrix)
        path = self.folder / f"{name}-{self.generation}.npy"
        with contextlib.suppress(OSError, ValueError):
            return np.load(path, mmap_mode="r")
        array = compute(self.matrix)
        with contextlib.suppress(OSError):
            _write(path, lambda f: np.save(f, array))
        return array


def cache_folder(index_dir: Path | str, embedder: str) -> Path:
    """One folder per embedder (its name may be a path): vectors of two models never mix."""
    digest = hashlib.sha256(embedder.encode()).hexdigest()[:16]
    return Path(index_dir) / CACHE_DIR / digest


def load_search_vectors(index_dir: Path | str, embedder: str) -> SearchVectors:
    """The rows embedded by ``embedder``, memory-mapped from the cache where it is current."""
    folder = cache_folder(index_dir, embedder)
    with Store.open(index_dir, readonly=True) as store, store.snapshot():
        generation = store.vectors_generation()
        total = store.count()
        cached = _read(folder, generation) if generation is not None else None
        if cached is not None:
            return SearchVectors(*cached, total, folder, generation)
        relpaths, matrix = store.vectors(embedder)
    if generation is None or not relpaths or not _save(folder, generation, relpaths, matrix):
        return SearchVectors(relpaths, matrix, total, None, None)
    return SearchVectors(relpaths, matrix, total, folder, generation)


def _read(folder: Path, generation: str) -> tuple[list[str], np.ndarray] | None:
    """The cached paths and vectors of ``generation``, or None: not written yet, or removed
    meanwhile by a search that saw a newer generation."""
    try:
        relpaths = json.loads((folder / f"paths-{generation}.json").read_text())
        matrix = np.load(folder / f"vectors-{generation}.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    return (relpaths, matrix) if len(relpaths) == len(matrix) else None


def _save(folder: Path, generation: str, relpaths: list[str], matrix: np.ndarray) -> bool:
    """Write vectors, then paths (whose presence says both are complete); drop older files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / f"vectors-{generation}.npy", lambda f: np.save(f, matrix))
        listing = json.dumps(relpaths).encode()
        _write(folder / f"paths-{generation}.json", lambda f: f.write(listing))
    except OSError:
        return False
    _remove_stale(folder, generation)
    return True


def _remove_stale(folder: Path, generation: str) -> None:
    """Older generations' files, other embedders' folders (the index has one embedder at a
    time) and temporary files a killed search left over an hour ago."""
    for other in folder.parent.iterdir():
        if other.is_dir() and other != folder:
            shutil.rmtree(other, ignore_errors=True)
    for old in folder.iterdir():
        with contextlib.suppress(OSError):
            if old.suffix == ".tmp":
                if time.time() - old.stat().st_mtime > 3600:
                    old.unlink()
            # Generations sort by the time they were made: only older files go, so a search
            # that read the store just before a change never removes the change's files. A
            # search still holding an older matrix keeps reading it (POSIX unlink); where the
            # system refuses to remove an open file, the next write tries again.
            elif old.stem.rsplit("-", 1)[-1] < generation:
                old.unlink()


def _write(path: Path, write: Callable) -> None:
    """Write through a temporary file and rename it: readers see the whole file or none."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
