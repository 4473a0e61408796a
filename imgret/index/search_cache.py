"""The search vectors as memory-mapped files beside the index, rewritten only when they change.

SQLite is the index's one truth, but reading 10^6 vectors out of it takes seconds on every
search process (bench/RESULTS.md); the same matrix opens from
an ``.npy`` in milliseconds and the page cache shares it among processes. The files carry
the store's vectors generation in their names, a token that every write of vectors replaces
in its own transaction, and are read in the same snapshot as that token: a search never
pairs vectors with paths of another state of the index. ``imgret index`` writes them at the
end of a build, or else the first search after a change does (and removes older ones); where
the folder cannot be written, the vectors are used from memory and nothing is cached.

A name is not proof of content: a file replaced by one of the same shape, saved as float64,
or a paths list reordered would pair vectors with the wrong images. So every open checks the
copy against the store it claims to come from: float32, the index's dimension, as many
vectors as paths, and a sample of rows (spread over the file) identical to the store's
bytes; anything else is rebuilt from the store with a warning. The paths file also lists the
rows whose stored vector was found damaged when the copy was made, so search can say so and
the next build re-embeds them. ``imgret check`` compares every row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgret.index.store import CheckedVectors, Store

CACHE_DIR = "search-cache"
"""The folder beside the index that holds the files derived from its vectors."""
SAMPLE_ROWS = 32
"""Rows of the cache compared with the store at each open: a replaced, reordered or
re-typed copy differs in nearly every row, so a few spread over the file find it in
milliseconds (reading 10^6 rows back from SQLite would take seconds)."""


@dataclass
class SearchVectors:
    """Paths and vectors of one embedder's rows, and how many rows the index holds in all."""

    relpaths: list[str]
    matrix: np.ndarray
    total: int
    folder: Path | None
    generation: str | None
    damaged: list[str] = field(default_factory=list)
    """Rows of this embedder whose stored vector is damaged (left out of ``matrix``)."""

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
        if generation is not None:
            try:
                cached = _read(folder, generation, store, embedder)
            except CacheMismatch as exc:
                warnings.warn(
                    f"the search cache in {folder} does not match the index ({exc}); "
                    "rebuilding it from the index",
                    stacklevel=2,
                )
                remove_generation(folder, generation)
                cached = None
            if cached is not None:
                paths, matrix, damaged = cached
                return SearchVectors(paths, matrix, total, folder, generation, damaged)
        checked = store.checked_vectors(embedder)
    if generation is None or not checked.paths or not _save(folder, generation, checked):
        return SearchVectors(checked.paths, checked.matrix, total, None, None, checked.damaged)
    return SearchVectors(checked.paths, checked.matrix, total, folder, generation, checked.damaged)


class CacheMismatch(Exception):
    """The cache files of the current generation are not what the store holds."""


def cache_files(folder: Path, generation: str) -> tuple[Path, Path]:
    """The vectors and paths files of one generation."""
    return folder / f"vectors-{generation}.npy", folder / f"paths-{generation}.json"


def remove_generation(folder: Path, generation: str) -> None:
    """Drop one generation's files (a damaged copy), so the next load writes them anew."""
    for path in folder.glob(f"*-{generation}.*"):
        with contextlib.suppress(OSError):
            path.unlink()


def _read(
    folder: Path, generation: str, store: Store, embedder: str
) -> tuple[list[str], np.ndarray, list[str]] | None:
    """The cached paths, vectors and damaged rows of ``generation``; None when not written
    yet (or removed meanwhile by a search that saw a newer generation); CacheMismatch when
    the files are there but do not match the store."""
    vectors_file, paths_file = cache_files(folder, generation)
    try:
        listing = json.loads(paths_file.read_text())
        matrix = np.load(vectors_file, mmap_mode="r")
    except OSError:  # not written yet, or the folder cannot be read: no cache
        return None
    except ValueError as exc:
        raise CacheMismatch(f"unreadable: {exc}") from exc
    if is_older_layout(listing):
        return None
    check_cache(listing, matrix, store, embedder, sample=SAMPLE_ROWS)
    return listing["paths"], matrix, listing["damaged"]


def is_older_layout(listing: object) -> bool:
    """A paths file of an earlier release (a bare list): not wrong, only to be written anew."""
    return isinstance(listing, list)


def check_cache(
    listing: object, matrix: np.ndarray, store: Store, embedder: str, sample: int | None
) -> None:
    """Raise :class:`CacheMismatch` unless the cache matches the store: its layout, and
    ``sample`` rows spread over it (every row when None) byte for byte."""
    if not isinstance(listing, dict) or not isinstance(listing.get("paths"), list):
        raise CacheMismatch("its paths file is not in this release's layout")
    paths, damaged = listing["paths"], listing.get("damaged")
    if not isinstance(damaged, list):
        raise CacheMismatch("its paths file does not list the damaged rows")
    dimension = store.dimension(embedder)
    if matrix.dtype != np.float32 or matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise CacheMismatch(
            f"vectors of {matrix.dtype} {matrix.shape}, not float32 [n, {dimension}]"
        )
    if len(paths) != len(matrix):
        raise CacheMismatch(f"{len(matrix)} vectors for {len(paths)} paths")
    if sample is None:  # counting one embedder's rows scans the table: not at every open
        expected = store.count_where("images", embedder) - len(damaged)
        if len(paths) != expected:
            raise CacheMismatch(f"{len(paths)} vectors for the {expected} rows of the index")
    rows = range(len(paths)) if sample is None else _spread(len(paths), sample)
    for start in range(0, len(rows), 500):
        chosen = rows[start : start + 500]
        stored = store.vectors_of(paths[i] for i in chosen)
        for i in chosen:
            if stored.get(paths[i]) != np.asarray(matrix[i]).tobytes():
                raise CacheMismatch(f"row {i} ({paths[i]}) differs from the index")


def _spread(count: int, sample: int) -> range | list[int]:
    """Up to ``sample`` row numbers spread evenly from the first row to the last."""
    if count <= sample:
        return range(count)
    return sorted({round(i * (count - 1) / (sample - 1)) for i in range(sample)})


def _save(folder: Path, generation: str, checked: CheckedVectors) -> bool:
    """Write vectors, then paths (whose presence says both are complete); drop older files."""
    vectors_file, paths_file = cache_files(folder, generation)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write(vectors_file, lambda f: np.save(f, checked.matrix))
        listing = json.dumps({"paths": checked.paths, "damaged": checked.damaged}).encode()
        _write(paths_file, lambda f: f.write(listing))
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
