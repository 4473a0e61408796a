"""``imgret check``: is the index sound, and what can be mended without the vision models.

Four questions, each answered from the index itself: does SQLite find its file intact
(``PRAGMA integrity_check``); is every stored vector valid (the index's dimension, finite,
unit length — bytes SQLite cannot judge); does the search cache hold exactly the store's
vectors, row for row; are the indexed files still there. ``repair`` re-embeds what the text
stages can redo from the stored descriptions (damaged vectors, notes or text settings not yet
applied) and rebuilds the search cache; what needs the images (a changed vision setting, files
gone) is named with the ``imgret index`` that fixes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgret.config import Config, key_string
from imgret.errors import BadInputError
from imgret.images import printable
from imgret.index.build import reembed
from imgret.index.search_cache import (
    CacheMismatch,
    cache_files,
    cache_folder,
    check_cache,
    is_older_layout,
    load_search_vectors,
    remove_generation,
)
from imgret.index.store import Store, writer_lock


@dataclass
class CheckReport:
    """What a check found, and what a repair did; ``problems`` is what is still wrong."""

    index_dir: Path
    rows: int = 0
    integrity: list[str] = field(default_factory=list)
    """SQLite's integrity_check lines, empty when it said ok."""
    damaged: list[str] = field(default_factory=list)
    """Rows whose stored vector is not valid."""
    pending: list[str] = field(default_factory=list)
    """Rows to re-embed from their stored text: a note or a text setting not yet applied."""
    stale_vision: list[str] = field(default_factory=list)
    """Rows made with other vision settings: only ``imgret index`` (the images) redoes them."""
    missing: list[str] = field(default_factory=list)
    """Indexed files no longer in the gallery."""
    cache: str | None = None
    """What is wrong with the search cache, None when it matches the store (or is not written)."""
    repaired: list[str] = field(default_factory=list)
    """What ``repair`` did, one line each."""

    @property
    def problems(self) -> list[str]:
        """One line per thing still wrong, each saying what fixes it."""
        index = f"--index {self.index_dir}"
        lines = []
        if self.integrity:
            lines.append(
                f"SQLite finds the index file damaged: {'; '.join(self.integrity[:3])}; recover "
                f"it with `sqlite3 {self.index_dir}/index.sqlite3 .recover` or restore a backup"
            )
        if self.damaged:
            lines.append(
                f"{len(self.damaged)} damaged vector(s) ({_examples(self.damaged)}); "
                f"`imgret check --repair {index}` re-embeds them"
            )
        if self.pending:
            lines.append(
                f"{len(self.pending)} image(s) wait to be re-embedded for a note or a text "
                f"setting ({_examples(self.pending)}); `imgret check --repair {index}` does it"
            )
        if self.cache:
            lines.append(
                f"the search cache does not match the index ({self.cache}); "
                f"`imgret check --repair {index}` rebuilds it"
            )
        if self.stale_vision:
            lines.append(
                f"{len(self.stale_vision)} image(s) were analysed with other vision settings "
                f"({_examples(self.stale_vision)}); run `imgret index GALLERY {index}`"
            )
        if self.missing:
            lines.append(
                f"{len(self.missing)} indexed file(s) are gone from the gallery "
                f"({_examples(self.missing)}); run `imgret index GALLERY {index}` to drop them "
                "(their notes stay), or put the files back"
            )
        return lines

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [f"checked {self.index_dir}: {self.rows} image(s)"]
        lines += [f"repaired: {line}" for line in self.repaired]
        lines += [f"problem: {line}" for line in self.problems]
        if self.ok:
            lines.append("no problems found")
        return "\n".join(lines)


def _examples(paths: list[str]) -> str:
    return ", ".join(printable(p) for p in paths[:3]) + (" …" if len(paths) > 3 else "")


def check_index(
    index_dir: Path | str, *, repair: bool = False, wait: float = 0.0, progress: bool = False
) -> CheckReport:
    """Check the index in ``index_dir``; with ``repair``, mend what the text stages can."""
    index_dir = Path(index_dir)
    report = CheckReport(index_dir)
    with Store.open(index_dir, readonly=True) as store:
        config = store.config()
        if config is None or store.gallery is None:
            raise BadInputError(
                f"the index in {index_dir} has not been built yet; "
                f"run `imgret index GALLERY --index {index_dir}` first"
            )
        _find(store, config, store.gallery, report)
    if repair and (report.damaged or report.pending or report.cache):
        _repair(index_dir, config, report, wait, progress)
    return report


def _find(store: Store, config: Config, gallery: Path, report: CheckReport) -> None:
    report.integrity = store.integrity_check()
    states = store.states()
    report.rows = len(states)
    notes = store.notes()
    vision_key, text_key = key_string(config.vision_key()), key_string(config.text_key())
    for path, state in sorted(states.items()):
        if not (gallery / path).is_file():
            report.missing.append(path)
        if state.vision_key != vision_key:
            report.stale_vision.append(path)
        elif state.text_key != text_key or state.notes != notes.get(path, ""):
            report.pending.append(path)
    checked = store.checked_vectors(config.embedder)
    report.damaged = [p for p in checked.damaged if p not in set(report.pending)]
    report.cache = _cache_problem(store, config.embedder)


def _cache_problem(store: Store, embedder: str) -> str | None:
    """What differs between the current generation's cache and the store, every row compared."""
    generation = store.vectors_generation()
    if generation is None:
        return None
    vectors_file, paths_file = cache_files(cache_folder(store.index_dir, embedder), generation)
    if not paths_file.exists() and not vectors_file.exists():
        return None  # not written (yet): search reads the store and writes it
    try:
        listing = json.loads(paths_file.read_text())
        matrix = np.load(vectors_file, mmap_mode="r")
        if is_older_layout(listing):
            return None  # the next search writes it in this release's layout
        check_cache(listing, matrix, store, embedder, sample=None)
    except (OSError, ValueError) as exc:
        return f"unreadable: {exc}"
    except CacheMismatch as exc:
        return str(exc)
    return None


def _repair(
    index_dir: Path, config: Config, report: CheckReport, wait: float, progress: bool
) -> None:
    redo = sorted(set(report.damaged) | set(report.pending))
    with writer_lock(index_dir, wait), Store.open(index_dir) as store:
        generation = store.vectors_generation()
        if generation is not None:
            remove_generation(cache_folder(index_dir, config.embedder), generation)
        done = reembed(store, redo, config, progress=progress) if redo else 0
    if done:
        report.repaired.append(f"re-embedded {done} image(s) from their stored descriptions")
    loaded = load_search_vectors(index_dir, config.embedder)
    report.repaired.append(f"rebuilt the search cache ({len(loaded.relpaths)} vectors)")
    report.damaged, report.pending, report.cache = loaded.damaged, [], None
