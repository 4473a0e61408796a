"""The columns the broad filters read (counts, folder, extension, date, camera), in memory.

A filter that keeps half of 10^5 images took longer to get its rowids out of SQLite than to
rank them (bench/RESULTS.md). These columns are small, so the searcher reads them once per
vectors token and answers ``has:``, ``in:``, ``ext:``, ``after:``, ``before:`` and
``camera:`` with numpy: a comparison over an array, a binary search in the dates, or a test
of the few distinct folders, extensions and cameras. Words, places and tags stay in SQLite
(the full-text index, the stored JSON), which reads them by an index.

Each test means what its SQL form in :mod:`imgret.retrieval.candidates` means: case
ignored (values come lower-case from the parser), an unknown date ("") before every year.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from imgret.index.store import COUNTS_TABLE, Store

_COMPARE: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "=": operator.eq,
    "<=": operator.le,
    "<": operator.lt,
}
_T = TypeVar("_T")


def _codes(values: Iterable[_T]) -> tuple[list[_T], np.ndarray]:
    """The distinct values in first-seen order and each item's index among them."""
    distinct: dict[_T, int] = {}
    codes = [distinct.setdefault(v, len(distinct)) for v in values]
    return list(distinct), np.asarray(codes, dtype=np.int32)


def _extension(path: str) -> str:
    """What ``lower(path) LIKE '%.ext'`` tests: the text after the file name's last dot."""
    name = path.rpartition("/")[2]
    return name.rpartition(".")[2] if "." in name else ""


@dataclass(frozen=True)
class Facets:
    """Filter columns of every row of one index, by SQLite rowid."""

    rowids: np.ndarray
    folders: list[str]
    folder_of: np.ndarray
    extensions: list[str]
    extension_of: np.ndarray
    cameras: list[str]
    camera_of: np.ndarray
    dated: np.ndarray
    """Rowids of the dated rows, by date taken."""
    dates: np.ndarray
    """Their dates, ascending (ISO text compares as dates)."""
    labels: dict[str, tuple[int, int]]
    """Each counted class's slice of the two arrays below, which are by class and count."""
    counted_image: np.ndarray
    counted: np.ndarray

    @classmethod
    def read(cls, store: Store) -> Facets:
        """The columns of ``store``'s rows (inside the caller's snapshot)."""
        query = (
            "SELECT rowid, lower(path), taken, "
            "lower(coalesce(camera_make, '') || ' ' || coalesce(camera_model, '')) FROM images"
        )
        rows = store.select(query)
        rowids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        paths = [r[1] for r in rows]
        folders, folder_of = _codes(p.rpartition("/")[0] for p in paths)
        extensions, extension_of = _codes(_extension(p) for p in paths)
        cameras, camera_of = _codes(r[3] for r in rows)
        taken = np.asarray([r[2] or "" for r in rows], dtype=str)
        order = np.argsort(taken, kind="stable")
        first_dated = int(np.searchsorted(taken[order], "", side="right"))
        counted_rows = store.select(
            f"SELECT image, label, count FROM {COUNTS_TABLE} ORDER BY label, count"
        )
        labels, counted_label = _codes(r[1] for r in counted_rows)
        starts = np.searchsorted(counted_label, np.arange(len(labels) + 1))
        return cls(
            rowids=rowids,
            folders=folders,
            folder_of=folder_of,
            extensions=extensions,
            extension_of=extension_of,
            cameras=cameras,
            camera_of=camera_of,
            dated=rowids[order[first_dated:]],
            dates=taken[order[first_dated:]],
            labels={label: (int(starts[i]), int(starts[i + 1])) for i, label in enumerate(labels)},
            counted_image=np.fromiter((r[0] for r in counted_rows), np.int64, len(counted_rows)),
            counted=np.fromiter((r[2] for r in counted_rows), np.int64, len(counted_rows)),
        )

    def _where(self, codes: np.ndarray, distinct: list[str], test: Callable[[str], bool]):
        chosen = np.fromiter((test(v) for v in distinct), bool, len(distinct))
        return self.rowids[chosen[codes]] if len(distinct) else self.rowids[:0]

    def has(self, label: str, op: str, count: int) -> np.ndarray:
        """``has:label`` with its comparison: images whose detector counted ``label``."""
        start, end = self.labels.get(label, (0, 0))
        images = self.counted_image[start:end]
        return images[_COMPARE[op](self.counted[start:end], count)]

    def in_folder(self, folder: str) -> np.ndarray:
        """``in:folder``: images in ``folder`` or any folder below it."""
        inside = folder + "/"
        return self._where(
            self.folder_of, self.folders, lambda f: f == folder or f.startswith(inside)
        )

    def with_extension(self, suffixes: Iterable[str]) -> np.ndarray:
        wanted = set(suffixes)
        return self._where(self.extension_of, self.extensions, wanted.__contains__)

    def by_camera(self, text: str) -> np.ndarray:
        return self._where(self.camera_of, self.cameras, lambda c: text in c)

    def after(self, date: str) -> np.ndarray:
        """Taken on or after ``date`` (an ISO prefix: "2019" is 2019-01-01 on)."""
        return self.dated[np.searchsorted(self.dates, date, side="left") :]

    def before(self, date: str) -> np.ndarray:
        """Taken before ``date``; undated images are not before anything."""
        return self.dated[: np.searchsorted(self.dates, date, side="left")]
