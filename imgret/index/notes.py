"""The user's own notes about images (the original's "custom text").

Notes live in the index, keyed by the image's path in the gallery, so they can be written
before an image is indexed and survive re-indexing. Setting notes re-embeds only the indexed
images whose notes changed, with the topic classifier and embedder alone.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from imgret.config import Config
from imgret.errors import BadInputError, MissingFileError
from imgret.images import IMAGE_SUFFIXES
from imgret.index.build import reembed
from imgret.index.store import Store, writer_lock

CSV_COLUMNS = ("path", "text")


def gallery_relpath(path: Path | str, gallery: Path) -> str:
    """``path`` as the index keys it: relative to the gallery, POSIX style.

    Accepted: a path relative to the gallery, or any path (absolute, or relative to the
    current folder) that points inside it.
    """
    if "\x00" in str(path):
        raise BadInputError(f"{path!r} holds a NUL character, which no file name can hold")
    try:
        given = Path(path).expanduser()
    except RuntimeError:  # "~name" of a user this system does not know: a plain name then
        given = Path(path)
    if not given.is_absolute():
        inside = gallery / given
        if inside.exists() or not given.exists():
            return _checked(inside, gallery, path)
    return _checked(given.resolve(), gallery, path)


def _checked(candidate: Path, gallery: Path, given: Path | str) -> str:
    try:
        relative = candidate.resolve().relative_to(gallery).as_posix()
    except ValueError:
        raise BadInputError(
            f"{given} is not inside the indexed gallery {gallery}; give its path in the "
            "gallery (e.g. sub/photo.jpg) or an absolute path inside it"
        ) from None
    if candidate.is_dir() or Path(relative).suffix.lower() not in IMAGE_SUFFIXES:
        kinds = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
        raise BadInputError(
            f"{given!s} is not an image file of the gallery (a note belongs to one image: "
            f"{kinds}); give the image's path, e.g. sub/photo.jpg"
        )
    return relative


def set_notes(
    index_dir: Path | str,
    notes: Mapping[str, str] | Mapping[Path, str] | Mapping[str | Path, str],
    config: Config | None = None,
    *,
    device: str | None = None,
    wait: float = 0.0,
    progress: bool = False,
) -> int:
    """Store notes for images (empty text removes a note); returns how many were re-embedded.

    ``config`` defaults to the index's own settings, so the notes are embedded as the rest;
    ``device`` overrides its device. Takes the index's writer lock (``wait`` as for a build).
    """
    index_dir = Path(index_dir)
    Store.open(index_dir, readonly=True).close()  # a missing index fails here, creating nothing
    with writer_lock(index_dir, wait), Store.open(index_dir) as store:
        gallery = store.gallery
        config = config or store.config()
        if gallery is None or config is None:
            raise BadInputError(
                f"the index in {index_dir} has not been built yet; "
                f"run `imgret index GALLERY --index {index_dir}` first"
            )
        if device is not None:
            config = dataclasses.replace(config, device=device)
        keyed = {gallery_relpath(path, gallery): text.strip() for path, text in notes.items()}
        store.set_notes(keyed)
        # A row still holding other words than its note needs re-embedding: the note table
        # and the row's notes column are the persisted "to do", so a rerun of an interrupted
        # command (kill -9, Ctrl-C after the notes were saved) finishes its work.
        states = store.states()
        touched = [p for p, text in keyed.items() if p in states and states[p].notes != text]
        return reembed(store, touched, config, progress=progress)


def read_notes_csv(path: Path | str) -> dict[str, str]:
    """Notes from a CSV file with columns ``path,text`` (a header row is optional).

    A first row that names no image file is a header (``path,text``, ``file,note`` …).
    A later row for the same path wins; an empty text removes that image's note.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as file, _field_limit(path):
            reader = csv.reader(file, strict=True)
            rows: list[list[str]] = []
            try:
                rows += reader
            except csv.Error as exc:
                raise BadInputError(
                    f"{path}, line {reader.line_num}: not valid CSV ({exc}); quote text that "
                    'holds commas or line breaks (e.g. sub/bus.jpg,"a red bus, in London")'
                ) from None
    except OSError as exc:
        raise MissingFileError(f"cannot read the notes file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 CSV"
        ) from None
    header = bool(rows) and (
        [cell.strip().lower() for cell in rows[0]] == list(CSV_COLUMNS)
        or not rows[0]
        or Path(rows[0][0].strip()).suffix.lower() not in IMAGE_SUFFIXES
    )
    notes: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        if (header and number == 1) or not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 or not row[0].strip():
            raise BadInputError(
                f"{path}, row {number}: expected two columns, path and text "
                f'(e.g. sub/bus.jpg,"a red bus"), got {row!r}; quote text that has commas'
            )
        name = row[0].strip()
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            raise BadInputError(
                f"{path}, row {number}: {name!r} is not an image file name; the first column "
                "is the image's path in the gallery (e.g. sub/bus.jpg)"
            )
        notes[name] = row[1].strip()
    return notes


@contextmanager
def _field_limit(path: Path) -> Iterator[None]:
    """Let one CSV field be as long as the whole file: a long note is a note, and the csv
    module's default limit (128 KiB) would reject it as malformed."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, size + 1))
    try:
        yield
    finally:
        csv.field_size_limit(before)
