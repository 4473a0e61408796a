"""The index on disk: one SQLite file, ``<index_dir>/index.sqlite3``, and the writer lock.

This module alone knows the schema. SQLite in WAL mode gives what an index needs without
hand-written machinery: a batch is one transaction (a crash or ``kill -9`` loses at most the
batch in flight and never leaves a half-written file), readers are never blocked by the
writer, and no pickle is ever loaded. Vectors are stored as float32 bytes, L2-normalised.

Tables: ``images`` (one row per indexed image), ``notes`` (the user's notes, keyed by path so
they exist before an image is indexed and survive re-indexing), ``skipped`` (bad files with
the size/mtime they had, so they are not retried until they change) and ``meta``.
``images_text`` is a full-text index (SQLite's FTS5) of each row's words, kept in step by
triggers on ``images``, so every write path keeps it current without knowing it exists.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
from filelock import FileLock, Timeout

from imgret.config import Config
from imgret.errors import (
    BadInputError,
    ImgretIndexError,
    IndexBusyError,
    IndexDamagedError,
    IndexFormatError,
    IndexNotFoundError,
    IndexWriteError,
)

FORMAT_VERSION = 5
"""The layout this release writes; older indexes climb :data:`_LADDER` to it when opened."""
DB_NAME = "index.sqlite3"
LOCK_NAME = "index.lock"


def column(sql: str, *, since: int = 1, codec: str | None = None, **default: Any) -> Any:
    """A field of :class:`ImageRow` and its column: SQL type, the format that added it, codec.

    ``codec`` is "json" for structured values and "vector" for the float32 blob. A column
    added after format 1 needs a DEFAULT in ``sql`` so existing rows get a value in place.
    """
    return field(metadata={"sql": sql, "since": since, "codec": codec}, **default)


@dataclass
class ImageRow:
    """Everything stored about one image; ``path`` is relative to the gallery, POSIX style.

    This dataclass is the ``images`` table: the columns, their SQL types and the format that
    added each are read from its fields, so the schema is written only here.
    """

    path: str = column("TEXT PRIMARY KEY")
    size: int = column("INTEGER NOT NULL")
    mtime_ns: int = column("INTEGER NOT NULL")
    sha256: str = column("TEXT NOT NULL")
    width: int = column("INTEGER NOT NULL")
    height: int = column("INTEGER NOT NULL")
    caption: str = column("TEXT NOT NULL", default="")
    counts: dict[str, int] = column("TEXT NOT NULL", codec="json", default_factory=dict)
    text_in_image: str = column("TEXT NOT NULL", default="")
    notes: str = column("TEXT NOT NULL", default="")
    topics: list[tuple[str, float]] = column("TEXT NOT NULL", codec="json", default_factory=list)
    description: str = column("TEXT NOT NULL", default="")
    instruction: str = column("TEXT NOT NULL", default="")
    embedder: str = column("TEXT NOT NULL", default="")
    vector: np.ndarray | None = column("BLOB NOT NULL", codec="vector", default=None)
    vision_key: str = column("TEXT NOT NULL", default="")
    text_key: str = column("TEXT NOT NULL", default="")
    tags: list[tuple[str, float]] = column(
        "TEXT NOT NULL DEFAULT '[]'", since=3, codec="json", default_factory=list
    )
    """The tagger's kept labels with their probabilities, the most probable first."""
    tagger_key: str = column("TEXT NOT NULL DEFAULT '{}'", since=3, default="{}")
    """The tagger settings the tags come from; "{}" while the tagger is off, which is also
    what rows made before the tagger existed hold, so switching it on re-runs it alone."""
    # Format 4: what the file itself says (imgret.metadata), read without any model.
    taken: str = column("TEXT NOT NULL DEFAULT ''", since=4, default="")
    """Date taken, ISO ``YYYY-MM-DDTHH:MM:SS`` (EXIF, the camera's clock); "" when unknown."""
    camera_make: str = column("TEXT NOT NULL DEFAULT ''", since=4, default="")
    camera_model: str = column("TEXT NOT NULL DEFAULT ''", since=4, default="")
    latitude: float | None = column("REAL DEFAULT NULL", since=4, default=None)
    longitude: float | None = column("REAL DEFAULT NULL", since=4, default=None)
    city: str = column("TEXT NOT NULL DEFAULT ''", since=4, default="")
    region: str = column("TEXT NOT NULL DEFAULT ''", since=4, default="")
    country: str = column("TEXT NOT NULL DEFAULT ''", since=4, default="")
    metadata_key: str = column("TEXT NOT NULL DEFAULT ''", since=4, default="")
    """:func:`imgret.metadata.metadata_key` of the reading; another key reads the file again."""

    @property
    def place(self) -> str:
        """ "Paris, Île-de-France, France", or "" without GPS (or without the places extra)."""
        return ", ".join(dict.fromkeys(p for p in (self.city, self.region, self.country) if p))

    def to_sql(self) -> dict[str, Any]:
        """Column name → SQL value, for statements with named placeholders."""
        if self.vector is None:
            raise ValueError(f"{self.path}: a row is stored only with its vector")
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["codec"] == "json":
                value = json.dumps(value)
            elif f.metadata["codec"] == "vector":
                value = np.ascontiguousarray(value, dtype=np.float32).tobytes()
            values[f.name] = value
        return values

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> ImageRow:
        values = dict(zip(row.keys(), row, strict=True))
        for f in fields(cls):
            if f.name not in values:
                continue  # a read-only index of an older format: the field's default stands
            if f.metadata["codec"] == "json":
                values[f.name] = json.loads(values[f.name])
            elif f.metadata["codec"] == "vector":
                # A damaged blob may not be whole floats; its row is still read (to re-embed
                # it from its text), and the vector checks of :meth:`Store.vectors` reject it.
                blob = values[f.name]
                values[f.name] = np.frombuffer(blob[: len(blob) // 4 * 4], dtype=np.float32)
        for name in ("topics", "tags"):
            values[name] = [(label, score) for label, score in values.get(name, [])]
        return cls(**values)


_COLUMNS = tuple(f.name for f in fields(ImageRow))
METADATA_COLUMNS = (
    "taken",
    "camera_make",
    "camera_model",
    "latitude",
    "longitude",
    "city",
    "region",
    "country",
    "metadata_key",
)
"""The columns read from the file itself (imgret.metadata), updated without a model run."""

_OTHER_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notes (path TEXT PRIMARY KEY, text TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""

TEXT_TABLE = "images_text"
"""The FTS5 table of each row's words; its rowid is the row's rowid in ``images``."""
TEXT_COLUMNS = ("path", "description", "notes", "text_in_image")
"""What "exact words" and exclusions are matched against: the file's path and name, the
description, the person's notes and the text read in the image."""
PLACE_COLUMN = "place"
"""The FTS5 column of the place names (city, region, country), which ``place:`` matches."""


def _full_text(columns: tuple[str, ...]) -> tuple[str, ...]:
    """The full-text table, the triggers that keep it in step, and its backfill; each may
    run again on a complete index (a build repairing a damaged one runs them all)."""
    places = ("city", "region", "country")

    def values(row: str) -> str:
        return ", ".join(
            [f"{row}{c}" for c in columns] + [" || ', ' || ".join(row + p for p in places)]
        )

    listed = ", ".join([*columns, PLACE_COLUMN])
    insert = f"INSERT INTO {TEXT_TABLE} (rowid, {listed})"
    return (
        # unicode61 folds case and (with remove_diacritics 2) accents: "cafe" finds "Café".
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {TEXT_TABLE} USING fts5({listed}, "
        "tokenize = 'unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER IF NOT EXISTS {TEXT_TABLE}_insert AFTER INSERT ON images BEGIN "
        f"{insert} VALUES (new.rowid, {values('new.')}); END",
        # INSERT OR REPLACE deletes the old row first: with recursive_triggers on
        # (Store._prepare) that fires this trigger too, as SQLite documents.
        f"CREATE TRIGGER IF NOT EXISTS {TEXT_TABLE}_delete AFTER DELETE ON images BEGIN "
        f"DELETE FROM {TEXT_TABLE} WHERE rowid = old.rowid; END",
        f"CREATE TRIGGER IF NOT EXISTS {TEXT_TABLE}_update "
        f"AFTER UPDATE OF {', '.join([*columns, *places])} ON images "
        f"BEGIN DELETE FROM {TEXT_TABLE} WHERE rowid = old.rowid; "
        f"{insert} VALUES (new.rowid, {values('new.')}); END",
        f"{insert} SELECT rowid, {values('')} FROM images "
        f"WHERE rowid NOT IN (SELECT rowid FROM {TEXT_TABLE})",
    )


_FULL_TEXT = _full_text(TEXT_COLUMNS)

COUNTS_TABLE = "image_counts"
"""One row per (image rowid, class, count) the detector counted (a count of 0, its "perhaps",
is left out), the class in lower case: what ``has:`` looks up by its index."""
_COUNTED = (
    f"INSERT INTO {COUNTS_TABLE} (image, label, count) SELECT new.rowid, lower(c.key), "
    "c.value FROM json_each(new.counts) AS c WHERE c.value >= 1"
)
_COUNTS_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {COUNTS_TABLE} "
    "(image INTEGER NOT NULL, label TEXT NOT NULL, count INTEGER NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {COUNTS_TABLE}_by_label ON {COUNTS_TABLE} (label, count, image)",
    f"CREATE INDEX IF NOT EXISTS {COUNTS_TABLE}_by_image ON {COUNTS_TABLE} (image)",
    f"CREATE TRIGGER IF NOT EXISTS {COUNTS_TABLE}_insert AFTER INSERT ON images "
    f"BEGIN {_COUNTED}; END",
    f"CREATE TRIGGER IF NOT EXISTS {COUNTS_TABLE}_delete AFTER DELETE ON images "
    f"BEGIN DELETE FROM {COUNTS_TABLE} WHERE image = old.rowid; END",
    f"CREATE TRIGGER IF NOT EXISTS {COUNTS_TABLE}_update AFTER UPDATE OF counts ON images "
    f"BEGIN DELETE FROM {COUNTS_TABLE} WHERE image = old.rowid; {_COUNTED}; END",
    f"INSERT INTO {COUNTS_TABLE} (image, label, count) SELECT images.rowid, lower(c.key), "
    "c.value FROM images, json_each(images.counts) AS c WHERE c.value >= 1 "
    f"AND images.rowid NOT IN (SELECT image FROM {COUNTS_TABLE})",
)

_LADDER: tuple[tuple[int, tuple[str, ...]], ...] = (
    # 2: renamed and moved files are recognised by their content hash, which a full scan of
    # the table would make slow on large galleries.
    (2, ("CREATE INDEX IF NOT EXISTS images_by_hash ON images (sha256)",)),
    # 3: the tagger's labels and the key of the settings that made them.
    (3, ()),
    # 4: "exact words", -exclusions and place: in queries, from a full-text index of the rows
    # that exist (backfilled here) and of every later write (triggers); photo metadata (the
    # columns with since=4, filled by the next build from the files' headers, no model run),
    # whose date filters and --sort date read through an index.
    (4, (*_FULL_TEXT, "CREATE INDEX IF NOT EXISTS images_by_taken ON images (taken)")),
    # 5: filters without reading the rows with their vectors: counted objects in a table of
    # their own (kept in step by triggers, backfilled here) whose index answers has: by a
    # range; the other filtered columns in one covering index (bench/filtered_search.py).
    (
        5,
        (
            *_COUNTS_TABLE,
            "CREATE INDEX IF NOT EXISTS images_filters ON images "
            "(path, tags, taken, camera_make, camera_model)",
            "DROP INDEX IF EXISTS images_by_taken",
            "CREATE INDEX IF NOT EXISTS images_by_taken_path ON images (taken, path)",
        ),
    ),
)
"""Each step: the format it reaches and its statements. The columns a step adds are the
:class:`ImageRow` fields with that ``since``, added from their own definitions."""


def _create_images() -> str:
    body = ",\n    ".join(f"{f.name} {f.metadata['sql']}" for f in fields(ImageRow))
    return f"CREATE TABLE IF NOT EXISTS images (\n    {body}\n)"


def _upgrade_statements(version: int) -> list[str]:
    """What brings an index of format ``version`` to :data:`FORMAT_VERSION`, in order."""
    statements = []
    for step, extra in _LADDER:
        if step <= version:
            continue
        statements += [
            f"ALTER TABLE images ADD COLUMN {f.name} {f.metadata['sql']}"
            for f in fields(ImageRow)
            if f.metadata["since"] == step
        ]
        statements += extra
    return statements


@dataclass
class RowState:
    """The columns that decide whether an image needs work, without the heavy ones."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    notes: str
    embedder: str
    vision_key: str
    text_key: str
    tagger_key: str
    metadata_key: str

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> RowState:
        return cls(**{name: row[name] for name in _STATE_COLUMNS})


_STATE_COLUMNS = tuple(f.name for f in fields(RowState))


@dataclass
class Skipped:
    """A bad file, with the stat it had: it is not retried until it changes."""

    path: str
    size: int
    mtime_ns: int
    reason: str


_TABLES = frozenset({"meta", "images", "notes", "skipped"})
"""The tables of an index; a build recreates any that a damaged file lost."""


NORM_TOLERANCE = 1e-2
"""How far a stored vector's length may be from 1 (float16 on a GPU rounds it by ~1e-3)."""


@dataclass
class CheckedVectors:
    """The valid vectors of some rows, and the rows whose stored vector is damaged.

    Damaged: not whole float32 numbers of the index's dimension, not finite, or not of unit
    length. SQLite's own integrity check cannot see this (the bytes are valid, the numbers
    not), so every read of the vectors checks them.
    """

    paths: list[str]
    matrix: np.ndarray
    damaged: list[str]


def vector_problems(matrix: np.ndarray) -> np.ndarray:
    """A boolean per row of ``matrix``: True where it is not a finite unit vector."""
    squares = np.empty(len(matrix), dtype=np.float32)
    with np.errstate(all="ignore"):  # garbage overflows to inf or NaN, which is the answer
        for start in range(0, len(matrix), 1 << 16):  # no float64 copy of 10^6 rows
            chunk = matrix[start : start + (1 << 16)]
            squares[start : start + len(chunk)] = np.einsum("ij,ij->i", chunk, chunk)
        norms = np.sqrt(squares)
    return ~np.isfinite(norms) | (np.abs(norms - 1.0) > NORM_TOLERANCE)


def _token() -> str:
    """A new generation token; tokens sort by the time they were made."""
    return f"{time.time_ns():016x}{uuid.uuid4().hex[:8]}"


def db_path(index_dir: Path | str) -> Path:
    return Path(index_dir) / DB_NAME


def explain_sqlite(exc: sqlite3.Error, path: Path) -> ImgretIndexError | None:
    """What a failed SQLite call means for the person, from SQLite's own error code, or None
    for an error that is imgret's bug (it keeps its traceback).

    As SQLite does, the message says precisely what is wrong; an index that is merely
    unwritable or on a full disk is good, so nothing here ever suggests deleting it.
    """
    code = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    lower = text.lower()
    if code == "SQLITE_FULL" or "disk is full" in lower:
        return IndexWriteError(
            f"the disk holding {path} is full; free some space and run again "
            "(the index keeps everything committed so far)"
        )
    if code.startswith("SQLITE_READONLY") or "readonly" in lower:
        return IndexWriteError(
            f"{path} cannot be written ({text}); make it and its folder writable, or copy "
            "the index folder somewhere writable and pass that as --index "
            "(search, info and export work on it as it is)"
        )
    if code.startswith("SQLITE_CANTOPEN") or "unable to open" in lower:
        return IndexWriteError(
            f"cannot open {path} ({text}); check that its folder exists and that you may "
            "read (and, to build, write) it"
        )
    if code.startswith("SQLITE_BUSY") or "database is locked" in lower:
        return IndexBusyError(
            f"{path} is locked by another program ({text}); wait for it and run again"
        )
    if code == "SQLITE_NOTADB" or "not a database" in lower:
        return IndexFormatError(
            f"{path} is not an SQLite file, so not an imgret index ({text}); point --index "
            "at another folder, or move the file away to start a new index there"
        )
    if code.startswith("SQLITE_CORRUPT") or "malformed" in lower:
        return IndexDamagedError(
            f"{path} is damaged ({text}); recover what SQLite can with `sqlite3 {path} "
            f".recover | sqlite3 recovered.sqlite3` and put recovered.sqlite3 in its place, "
            "or restore a backup"
        )
    if "no such table" in lower:
        return IndexDamagedError(
            f"{path} has lost a table ({text}); run `imgret index GALLERY --index "
            f"{path.parent}` to recreate it"
        )
    if code.startswith("SQLITE_IOERR") or "i/o error" in lower:
        return IndexWriteError(
            f"reading or writing {path} failed ({text}); check the disk and run again"
        )
    return None


def _reraise(exc: sqlite3.Error, path: Path) -> NoReturn:
    """Raise :func:`explain_sqlite`'s error for ``exc`` in its place, or ``exc`` itself."""
    explained = explain_sqlite(exc, path)
    if explained is None:
        raise exc
    raise explained from exc


_F = TypeVar("_F", bound=Callable[..., Any])


def _explained(method: _F) -> _F:
    """Turn the SQLite errors a person can meet (full disk, damaged file, read-only folder)
    raised inside a :class:`Store` method into one-line imgret errors naming the file."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            explained = explain_sqlite(exc, db_path(self.index_dir))
            if explained is None:
                raise
            raise explained from exc

    return wrapper  # type: ignore[return-value]


def _is_writable(path: Path) -> bool:
    """Whether SQLite may write the index file and create its -wal/-shm files beside it."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """A connection to the index file; read-only where the file or folder cannot be written.

    SQLite's ``mode=ro`` reads a WAL index when its -wal and -shm files exist (it cannot
    create them in a read-only folder); otherwise the file is opened ``immutable``, which is
    exact as long as no -wal file holds changes not yet copied into it (a cleanly closed
    index has none).
    """
    if not readonly or _is_writable(path):
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    uri = path.resolve().as_uri()
    try:
        connection = sqlite3.connect(
            f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError:
        connection.close()
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise IndexWriteError(
            f"{path} is read-only and its {wal.name} holds changes SQLite cannot merge "
            "without writing; open it once where it is writable (any imgret command), or "
            "copy the index folder somewhere writable and pass that as --index"
        )
    return sqlite3.connect(
        f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False
    )


def check_index_folder(index_dir: Path) -> None:
    """Refuse an ``--index`` that names a file: the index is a folder holding index.sqlite3."""
    if index_dir.exists() and not index_dir.is_dir():
        hint = (
            f"give its folder, --index {index_dir.parent}"
            if index_dir.name == DB_NAME
            else "give a folder (imgret keeps index.sqlite3 and its search cache in it)"
        )
        raise BadInputError(f"--index {index_dir} is a file, not a folder; {hint}")


def make_index_folder(index_dir: Path) -> None:
    """Create the index folder, or say in one line why it cannot be."""
    check_index_folder(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexWriteError(
            f"cannot create the index folder {index_dir} ({exc.strerror}); "
            "pass a writable --index folder"
        ) from exc


def damaged_message(index_dir: Path, damaged: list[str]) -> str:
    """What to say about rows whose vectors are damaged, and how they are repaired."""
    examples = ", ".join(damaged[:3]) + (" …" if len(damaged) > 3 else "")
    return (
        f"{len(damaged)} image(s) in the index {index_dir} have a damaged vector ({examples}); "
        f"run `imgret check --repair --index {index_dir}` (or `imgret index`) to re-embed them "
        "from their stored descriptions"
    )


@contextmanager
def writer_lock(index_dir: Path | str, wait: float = 0.0) -> Iterator[None]:
    """Hold the index's writer lock; with ``wait`` 0 a busy index fails at once.

    Readers never take it: SQLite's WAL mode lets them read while one writer writes.
    """
    index_dir = Path(index_dir)
    make_index_folder(index_dir)
    lock = FileLock(index_dir / LOCK_NAME, timeout=max(0.0, wait))
    try:
        lock.acquire()
    except Timeout:  # before OSError, of which it is one
        waited = f" (waited {wait:g} s)" if wait > 0 else ""
        raise IndexBusyError(
            f"another imgret index is writing {index_dir}{waited}; "
            "wait for it or pass --wait SECONDS"
        ) from None
    except OSError as exc:
        raise IndexWriteError(
            f"cannot write in the index folder {index_dir} ({exc.strerror or exc}); "
            "make it writable or pass another --index (search and info work on it as it is)"
        ) from exc
    try:
        yield
    finally:
        lock.release()


class Store:
    """An open index. Create with :meth:`open`; use as a context manager to close it."""

    def __init__(self, index_dir: Path | str, connection: sqlite3.Connection):
        self.index_dir = Path(index_dir)
        self._db = connection
        self.writable = True
        """False for a read-only index (its file or folder cannot be written)."""

    @staticmethod
    def exists(index_dir: Path | str) -> bool:
        return db_path(index_dir).is_file()

    @classmethod
    def open(cls, index_dir: Path | str, *, create: bool = False, readonly: bool = False) -> Store:
        """Open the index in ``index_dir``.

        ``create`` makes an empty one where there is none; ``readonly`` refuses any write
        through this connection (search, info, export), while WAL keeps a writer unblocked.
        """
        index_dir = Path(index_dir)
        path = db_path(index_dir)
        check_index_folder(index_dir)
        if not path.exists():
            if not create or readonly:
                raise IndexNotFoundError(
                    f"no imgret index in {index_dir}; "
                    f"run `imgret index GALLERY --index {index_dir}` first"
                )
            make_index_folder(index_dir)
        try:
            connection = _connect(path, readonly=readonly)
        except sqlite3.Error as exc:
            _reraise(exc, path)
        connection.row_factory = sqlite3.Row
        store = cls(index_dir, connection)
        store.writable = not readonly or _is_writable(path)
        try:
            store._prepare(create and not readonly)
            if not readonly and store.vectors_generation() is None:
                # A new index, or one made before the token existed, gets one here.
                store._vectors_changed()
            if readonly:
                connection.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            connection.close()
            _reraise(exc, path)
        except BaseException:
            connection.close()
            raise
        return store

    def _prepare(self, create: bool) -> None:
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA synchronous = NORMAL")
        # A REPLACE of a row fires its delete trigger only so (the full-text index).
        self._db.execute("PRAGMA recursive_triggers = ON")
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        if not tables:
            if not create:
                raise IndexNotFoundError(
                    f"{db_path(self.index_dir)} holds no tables yet (an index whose creation "
                    "was cut short, or never built); run `imgret index GALLERY --index "
                    f"{self.index_dir}`, which builds it in place"
                )
            self._db.execute("PRAGMA journal_mode = WAL")
            with self.transaction():
                self._create_tables()
                now = time.time()
                self.set_meta(format_version=FORMAT_VERSION, created=now, updated=now)
            return
        if "meta" not in tables:
            raise IndexFormatError(
                f"{db_path(self.index_dir)} is an SQLite file but not an imgret index; "
                "point --index at another folder"
            )
        if create:
            self._repair(tables)
        version = self.meta().get("format_version")
        if not isinstance(version, int) or version < 1:
            raise IndexFormatError(
                f"the index in {self.index_dir} has format {version!r}, which this imgret "
                f"(format {FORMAT_VERSION}) cannot read; index into another folder"
            )
        if version > FORMAT_VERSION:
            raise IndexFormatError(
                f"the index in {self.index_dir} has format {version}, written by a newer "
                f"imgret (this one reads format {FORMAT_VERSION}); upgrade imgret "
                "(pip install -U imgret) or index into another folder"
            )
        if version < FORMAT_VERSION and self.writable:
            # A read-only index of an older format is read as it is: readers ask only for
            # columns every format has, and rows get the defaults of the fields added since.
            self._upgrade(version)

    def _repair(self, tables: set[str]) -> None:
        """What a build can mend in a damaged index before it starts: lost tables are made
        again (empty: the build indexes again what the images table held), meta entries
        that are not JSON are dropped (the build writes them anew), each with a warning.
        Readers meet the same damage as a one-line :class:`IndexDamagedError`."""
        lost = sorted(_TABLES - tables)
        damaged = []
        for key, value in self._db.execute("SELECT key, value FROM meta").fetchall():
            try:
                json.loads(value)
            except (TypeError, json.JSONDecodeError):
                damaged.append(key)
        if not lost and not damaged:
            return
        with self.transaction():
            self._create_tables()
            self._db.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in damaged])
            self._vectors_changed()
        mended = [f"recreated the lost table(s) {', '.join(lost)}"] if lost else []
        mended += [f"dropped the damaged meta entries {', '.join(damaged)}"] if damaged else []
        warnings.warn(f"{db_path(self.index_dir)} was damaged: {'; '.join(mended)}", stacklevel=4)

    def _create_tables(self) -> None:
        """Every table and index of the current format that is not there yet."""
        for statement in [*_OTHER_TABLES.split(";"), _create_images()]:
            if statement.strip():
                self._db.execute(statement)
        for statement in _upgrade_statements(0):
            if not statement.startswith("ALTER"):
                self._db.execute(statement)

    def _upgrade(self, version: int) -> None:
        """Climb the ladder in one transaction: an index of any older release is kept, never
        rebuilt; a crash midway leaves it at its old format, to be upgraded next time."""
        try:
            with self.transaction():
                for statement in _upgrade_statements(version):
                    self._db.execute(statement)
                self.set_meta(format_version=FORMAT_VERSION)
        except (sqlite3.OperationalError, IndexWriteError) as exc:
            raise IndexWriteError(
                f"the index in {self.index_dir} has format {version} and must be upgraded to "
                f"format {FORMAT_VERSION}, but it cannot be written ({exc}); open it once "
                "where it is writable (any imgret command upgrades it)"
            ) from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic write; nested calls join the outer transaction."""
        return self._within("BEGIN IMMEDIATE")

    def snapshot(self) -> AbstractContextManager[None]:
        """Several reads that see one state of the index, whatever a writer commits meanwhile."""
        return self._within("BEGIN")

    @contextmanager
    def _within(self, begin: str) -> Iterator[None]:
        if self._db.in_transaction:
            yield
            return
        path = db_path(self.index_dir)
        try:
            self._db.execute(begin)
        except sqlite3.Error as exc:
            _reraise(exc, path)
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            _reraise(exc, path)

    # meta -------------------------------------------------------------------------------

    @_explained
    def meta(self) -> dict[str, Any]:
        return {
            key: self._decoded(key, value)
            for key, value in self._db.execute("SELECT key, value FROM meta")
        }

    def _meta_value(self, key: str) -> Any:
        """One meta entry (None when absent): a search reads its tokens on every request,
        without decoding the stored configuration each time."""
        found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if found is None else self._decoded(key, found[0])

    def _decoded(self, key: str, value: Any) -> Any:
        try:
            return json.loads(value)
        except (TypeError, json.JSONDecodeError) as exc:
            raise IndexDamagedError(
                f"{db_path(self.index_dir)} is damaged: its meta entry {key!r} is not "
                f"JSON ({exc}); run `imgret index GALLERY --index {self.index_dir}` with "
                "the options it was built with to write it anew"
            ) from None

    @_explained
    def set_meta(self, **values: Any) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(key, json.dumps(value, sort_keys=True)) for key, value in values.items()],
            )

    def vectors_generation(self) -> str | None:
        """A token that every write of vectors or paths replaces, in the same transaction:
        files derived from the vectors (the search cache) are current while it is unchanged.
        Tokens sort by the time they were made (nanoseconds, then random digits)."""
        return self._meta_value("vectors_generation")

    def rows_generation(self) -> str | None:
        """A token that every write of rows replaces (vectors and paths as above, and also
        photo metadata and file stats): what a reader holds in memory from the rows' columns
        (the searcher's filter columns, the web app's file facts) is current while it is
        unchanged."""
        return self._meta_value("rows_generation")

    def _rows_changed(self) -> None:
        self.set_meta(rows_generation=_token())

    def _vectors_changed(self) -> None:
        token = _token()
        self.set_meta(vectors_generation=token, rows_generation=token)

    @property
    def gallery(self) -> Path | None:
        """The gallery folder this index belongs to (absolute), None before the first build.

        The gallery is recorded twice: absolute, and relative to the index folder. Where the
        relative one leads to a folder it wins, so a project folder holding both gallery and
        index can be moved or copied whole and its index still shows the right files.
        """
        meta = self.meta()
        root, relative = meta.get("gallery"), meta.get("gallery_from_index")
        if isinstance(relative, str):
            beside = (self.index_dir / relative).resolve()
            if beside.is_dir():
                return beside
        return Path(root) if root else None

    def set_gallery(self, gallery: Path) -> None:
        """Record ``gallery`` (absolute) as this index's gallery, both ways (:attr:`gallery`)."""
        values: dict[str, Any] = {"gallery": gallery.as_posix()}
        try:
            values["gallery_from_index"] = Path(
                os.path.relpath(gallery, self.index_dir.resolve())
            ).as_posix()
        except ValueError:  # another drive (Windows): only the absolute path holds
            values["gallery_from_index"] = None
        if {k: self.meta().get(k) for k in values} != values:
            self.set_meta(**values)

    def config_dict(self) -> dict[str, Any] | None:
        """The stored configuration as :meth:`Config.to_dict` gave it, None before a build."""
        stored = self.meta().get("config")
        return dict(stored) if stored else None

    def config(self) -> Config | None:
        """The configuration of the last build, so search uses the same embedder and topics."""
        stored = self.config_dict()
        return Config.from_dict(stored) if stored else None

    # images -----------------------------------------------------------------------------

    @_explained
    def states(self) -> dict[str, RowState]:
        """Path → the light columns of every row (what the indexer compares against)."""
        query = f"SELECT {', '.join(_STATE_COLUMNS)} FROM images"
        return {r["path"]: RowState.from_sql(r) for r in self._db.execute(query)}

    @_explained
    def rows(self, paths: Iterable[str] | None = None) -> list[ImageRow]:
        """Full rows, for ``paths`` in that order (missing ones left out), or all by path."""
        if paths is None:
            cursor = self._db.execute("SELECT * FROM images ORDER BY path")
            return [ImageRow.from_sql(r) for r in cursor]
        wanted = list(paths)
        found: dict[str, ImageRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._db.execute(f"SELECT * FROM images WHERE path IN ({marks})", chunk):
                found[r["path"]] = ImageRow.from_sql(r)
        return [found[p] for p in wanted if p in found]

    @_explained
    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    @_explained
    @_explained
    def hashes(self) -> dict[str, str]:
        """Path → content hash of every row (what exact duplicates share)."""
        return dict(self._db.execute("SELECT path, sha256 FROM images").fetchall())

    def columns(self) -> frozenset[str]:
        """The columns of ``images`` in this index (an older index may lack newer ones)."""
        return frozenset(r[1] for r in self._db.execute("PRAGMA table_info(images)"))

    @_explained
    def rowids_of(self, select: str, args: Iterable[Any] = ()) -> np.ndarray:
        """The rowids an SQL query of rowids gives (the query filters'), in no set order.

        SQLite joins them into one comma-separated text and numpy parses it: a broad filter's
        50,000 rowids come back in a third of the time of reading 50,000 one-integer rows
        through Python's sqlite3 (bench/RESULTS.md)."""
        query = f"WITH found(id) AS ({select}) SELECT group_concat(id) FROM found"
        (text,) = self._db.execute(query, tuple(args)).fetchone()
        if not text:
            return np.empty(0, np.int64)
        return np.fromstring(text, dtype=np.int64, sep=",")

    @_explained
    def select(self, query: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Every row of a read-only SQL query (the searcher's filter columns)."""
        return self._db.execute(query, tuple(args)).fetchall()

    @_explained
    def has_table(self, name: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self._db.execute(query, (name,)).fetchone() is not None

    @_explained
    def rowids_by_date(self) -> np.ndarray:
        """Every rowid by date taken, newest first, undated last, then by path."""
        query = "SELECT rowid FROM images ORDER BY taken = '', taken DESC, path"
        return np.fromiter((r[0] for r in self._db.execute(query)), np.int64)

    @_explained
    def rowids(self) -> dict[str, int]:
        """Path → SQLite rowid of every row (the full-text table's key for it)."""
        return dict(self._db.execute("SELECT path, rowid FROM images").fetchall())

    @_explained
    def upsert(self, rows: Iterable[ImageRow]) -> None:
        """Insert or replace rows, all in one transaction; a row also clears its skip mark."""
        values = [row.to_sql() for row in rows]
        names = ", ".join(_COLUMNS)
        marks = ", ".join(f":{name}" for name in _COLUMNS)
        with self.transaction():
            self._db.executemany(
                f"INSERT OR REPLACE INTO images ({names}) VALUES ({marks})", values
            )
            self._db.executemany("DELETE FROM skipped WHERE path = :path", values)
            if values:
                self._vectors_changed()

    @_explained
    def update_metadata(self, rows: Iterable[ImageRow]) -> None:
        """Store the metadata columns of rows (read from their files); nothing else changes."""
        names = METADATA_COLUMNS
        assignments = ", ".join(f"{name} = :{name}" for name in names)
        values = [{name: getattr(row, name) for name in ["path", *names]} for row in rows]
        if not values:
            return
        with self.transaction():
            self._db.executemany(f"UPDATE images SET {assignments} WHERE path = :path", values)
            self._rows_changed()

    @_explained
    def update_stats(self, stats: Iterable[tuple[str, int, int]]) -> None:
        """Record a new (size, mtime_ns) for files whose bytes did not change (touched)."""
        values = [(size, mtime_ns, path) for path, size, mtime_ns in stats]
        if not values:
            return
        with self.transaction():
            self._db.executemany("UPDATE images SET size = ?, mtime_ns = ? WHERE path = ?", values)
            self._rows_changed()

    @_explained
    def rename(self, moves: Iterable[tuple[str, str, int, int]]) -> None:
        """Give rows new paths (old, new, size, mtime_ns): a renamed file keeps its analysis,
        vector and note. A note the new path already has wins over the old one."""
        values = [(new, size, mtime_ns, old) for old, new, size, mtime_ns in moves]
        with self.transaction():
            self._db.executemany(
                "UPDATE images SET path = ?, size = ?, mtime_ns = ? WHERE path = ?", values
            )
            self._db.executemany(
                "UPDATE OR IGNORE notes SET path = ? WHERE path = ?",
                [(new, old) for new, _, _, old in values],
            )
            self._db.executemany(
                "DELETE FROM skipped WHERE path = ?", [(new,) for new, *_ in values]
            )
            if values:
                self._vectors_changed()

    @_explained
    def delete(self, paths: Iterable[str]) -> None:
        """Drop rows (and skip marks) of files that are gone; their notes stay."""
        keys = [(p,) for p in paths]
        with self.transaction():
            self._db.executemany("DELETE FROM images WHERE path = ?", keys)
            self._db.executemany("DELETE FROM skipped WHERE path = ?", keys)
            if keys:
                self._vectors_changed()

    def dimension(self, embedder: str | None = None) -> int | None:
        """The vector size of ``embedder``'s rows: the one the build recorded for the current
        embedder, else the size most of the rows have (None without rows)."""
        config = self.config()
        recorded = self.meta().get("dimension")
        if isinstance(recorded, int) and (
            embedder is None or config is None or embedder == config.embedder
        ):
            return recorded
        where, args = ("WHERE embedder = ?", (embedder,)) if embedder is not None else ("", ())
        found = self._db.execute(
            f"SELECT length(vector) AS n FROM images {where} "
            "GROUP BY n ORDER BY COUNT(*) DESC LIMIT 1",
            args,
        ).fetchone()
        return found[0] // 4 if found else None

    @_explained
    def checked_vectors(self, embedder: str | None = None) -> CheckedVectors:
        """The rows embedded by ``embedder`` (default: all) with valid vectors, by path, and
        those whose vector is damaged (:class:`CheckedVectors`).

        During an interrupted change of embedder the rows hold vectors of two models; only
        vectors of one model can be compared, so search asks for its own.
        """
        where, args = ("WHERE embedder = ?", (embedder,)) if embedder is not None else ("", ())
        paths: list[str] = []
        damaged: list[str] = []
        # Rows go straight into one preallocated matrix: half the peak memory of joining the
        # blobs first (1.6 instead of 3.2 GB for 10^6 384-d rows) and half the time.
        with self.snapshot():
            dimension = self.dimension(embedder)
            if dimension is None:
                return CheckedVectors([], np.zeros((0, 0), dtype=np.float32), [])
            count = self._db.execute(f"SELECT COUNT(*) FROM images {where}", args).fetchone()[0]
            matrix = np.empty((count, dimension), dtype=np.float32)
            rows = self._db.execute(f"SELECT path, vector FROM images {where} ORDER BY path", args)
            for path, blob in rows:
                if not isinstance(blob, bytes) or len(blob) != 4 * dimension:
                    damaged.append(path)
                    continue
                matrix[len(paths)] = np.frombuffer(blob, dtype=np.float32)
                paths.append(path)
        matrix = matrix[: len(paths)]
        bad = vector_problems(matrix)
        if bad.any():
            damaged += [p for p, b in zip(paths, bad, strict=True) if b]
            paths = [p for p, b in zip(paths, bad, strict=True) if not b]
            matrix = matrix[~bad]
        return CheckedVectors(paths, matrix, sorted(damaged))

    def vectors(self, embedder: str | None = None) -> tuple[list[str], np.ndarray]:
        """(paths, float32 matrix [n, d]) of the rows embedded by ``embedder``; a damaged
        vector among them is an :class:`IndexDamagedError` saying how to repair it."""
        checked = self.checked_vectors(embedder)
        if checked.damaged:
            raise IndexDamagedError(damaged_message(self.index_dir, checked.damaged))
        return checked.paths, checked.matrix

    def integrity_check(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check``: empty when the file is sound, else its findings
        (a page too damaged to read is one finding, in imgret's words)."""
        try:
            lines = [row[0] for row in self._db.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            return [str(explain_sqlite(exc, db_path(self.index_dir)) or exc)]
        return [] if lines == ["ok"] else lines

    @_explained
    def misfit_vectors(self, embedder: str) -> list[str]:
        """Rows of ``embedder`` whose vector blob is not of the index's dimension: found by
        SQLite from the record headers, without reading a vector, so every build can ask."""
        dimension = self.dimension(embedder)
        if dimension is None:
            return []
        query = "SELECT path FROM images WHERE embedder = ? AND length(vector) != ?"
        return [r[0] for r in self._db.execute(query, (embedder, 4 * dimension))]

    @_explained
    def vectors_of(self, paths: Iterable[str]) -> dict[str, bytes]:
        """The stored vector bytes of ``paths`` (those indexed), to compare a copy against."""
        wanted = list(paths)
        found: dict[str, bytes] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT path, vector FROM images WHERE path IN ({marks})"
            found.update(self._db.execute(query, chunk).fetchall())
        return found

    # notes ------------------------------------------------------------------------------

    @_explained
    def notes(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT path, text FROM notes").fetchall())

    @_explained
    def set_notes(self, notes: Mapping[str, str]) -> None:
        """Store notes by relative path; an empty text removes the note."""
        now = time.time()
        with self.transaction():
            for path, text in notes.items():
                if text.strip():
                    self._db.execute(
                        "INSERT OR REPLACE INTO notes (path, text, updated) VALUES (?, ?, ?)",
                        (path, text.strip(), now),
                    )
                else:
                    self._db.execute("DELETE FROM notes WHERE path = ?", (path,))

    # skipped files ----------------------------------------------------------------------

    @_explained
    def skipped(self) -> dict[str, Skipped]:
        cursor = self._db.execute("SELECT path, size, mtime_ns, reason FROM skipped")
        return {r["path"]: Skipped(**dict(zip(r.keys(), r, strict=True))) for r in cursor}

    @_explained
    def mark_skipped(self, entries: Iterable[Skipped]) -> None:
        """Remember bad files with the stat they had; a row of the same path is dropped."""
        values = [asdict(entry) for entry in entries]
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO skipped (path, size, mtime_ns, reason) "
                "VALUES (:path, :size, :mtime_ns, :reason)",
                values,
            )
            self._db.executemany("DELETE FROM images WHERE path = :path", values)
            if values:
                self._vectors_changed()

    @_explained
    def forget_skipped(self, paths: Iterable[str]) -> None:
        with self.transaction():
            self._db.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in paths])

    @_explained
    def count_where(self, table: str, embedder: str | None = None) -> int:
        """Rows of ``table`` (images, notes, skipped), or images embedded by ``embedder``."""
        if table not in {"images", "notes", "skipped"}:
            raise ValueError(f"no table {table!r}")
        if embedder is None:
            return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        query = f"SELECT COUNT(*) FROM {table} WHERE embedder = ?"
        return self._db.execute(query, (embedder,)).fetchone()[0]
