"""The index on disk: one SQLite file, ``<index_dir>/index.sqlite3``, and the writer lock.

This module alone knows the schema. SQLite in WAL mode gives what an index needs without
hand-written machinery: a batch is one transaction (a crash or ``kill -9`` loses at most the
batch in flight and never leaves a half-written file), readers are never blocked by the
writer, and no pickle is ever loaded. Vectors are stored as float32 bytes, L2-normalised.

Tables: ``images`` (one row per indexed image), ``notes`` (the user's notes, keyed by path so
they exist before an image is indexed and survive re-indexing), ``skipped`` (bad files with
the size/mtime they had, so they are not retried until they change) and ``meta``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from imgret.config import Config

FORMAT_VERSION = 1
DB_NAME = "index.sqlite3"
LOCK_NAME = "index.lock"
CACHE_DIR = "search-cache"
"""Files derived from the vectors for fast search (:mod:`imgret.vector_cache`)."""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    caption TEXT NOT NULL,
    counts TEXT NOT NULL,
    text_in_image TEXT NOT NULL,
    notes TEXT NOT NULL,
    topics TEXT NOT NULL,
    description TEXT NOT NULL,
    instruction TEXT NOT NULL,
    embedder TEXT NOT NULL,
    vector BLOB NOT NULL,
    vision_key TEXT NOT NULL,
    text_key TEXT NOT NULL
);
CREATE TABLE notes (path TEXT PRIMARY KEY, text TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE skipped (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""

_COLUMNS = (
    "path size mtime_ns sha256 width height caption counts text_in_image notes topics "
    "description instruction embedder vector vision_key text_key"
).split()
_STAT_COLUMNS = "path, size, mtime_ns, sha256, notes, embedder, vision_key, text_key"


class StoreError(RuntimeError):
    """Base of the index errors a user can meet; the message says what to do."""


class IndexNotFoundError(StoreError, FileNotFoundError):
    pass


class IndexFormatError(StoreError):
    pass


class IndexBusyError(StoreError):
    pass


class EmptyIndexError(StoreError):
    pass


class GalleryMismatchError(StoreError):
    pass


@dataclass
class ImageRow:
    """Everything stored about one image; ``path`` is relative to the gallery, POSIX style."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    width: int
    height: int
    caption: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    text_in_image: str = ""
    notes: str = ""
    topics: list[tuple[str, float]] = field(default_factory=list)
    description: str = ""
    instruction: str = ""
    embedder: str = ""
    vector: np.ndarray | None = None
    vision_key: str = ""
    text_key: str = ""

    def to_sql(self) -> tuple[Any, ...]:
        if self.vector is None:
            raise ValueError(f"{self.path}: a row is stored only with its vector")
        values = dict(vars(self))
        values["counts"] = json.dumps(self.counts)
        values["topics"] = json.dumps([[label, float(score)] for label, score in self.topics])
        values["vector"] = np.ascontiguousarray(self.vector, dtype=np.float32).tobytes()
        return tuple(values[name] for name in _COLUMNS)

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> ImageRow:
        values = dict(zip(row.keys(), row, strict=True))
        values["counts"] = json.loads(values["counts"])
        values["topics"] = [(label, score) for label, score in json.loads(values["topics"])]
        values["vector"] = np.frombuffer(values["vector"], dtype=np.float32)
        return cls(**values)


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


@dataclass
class Skipped:
    path: str
    size: int
    mtime_ns: int
    reason: str


@dataclass
class IndexInfo:
    """What an index holds, for ``imgret info``."""

    index_dir: Path
    gallery: str | None
    format_version: int
    images: int
    embedded: int
    dimension: int | None
    notes: int
    skipped: int
    stages: dict[str, Any]
    created: float | None
    updated: float | None
    file_bytes: int
    cache_bytes: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["index_dir"] = str(self.index_dir)
        return data

    def summary(self) -> str:
        def when(stamp: float | None) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"

        lines = [
            f"index     {self.index_dir} (format {self.format_version}, "
            f"{self.file_bytes / 1e6:.1f} MB; search cache {self.cache_bytes / 1e6:.1f} MB)",
            f"gallery   {self.gallery or '-'}",
            f"images    {self.images} ({self.embedded} searchable with the current embedder, "
            f"dimension {self.dimension or '-'})",
            f"notes     {self.notes}",
            f"skipped   {self.skipped} bad file(s)",
            f"created   {when(self.created)}   updated {when(self.updated)}",
        ]
        for stage, entry in self.stages.items():
            revision = f" @ {entry['revision']}" if entry.get("revision") else ""
            lines.append(f"{stage:<9} {entry['model']}{revision}")
        return "\n".join(lines)


def db_path(index_dir: Path | str) -> Path:
    return Path(index_dir) / DB_NAME


@contextmanager
def writer_lock(index_dir: Path | str, wait: float = 0.0) -> Iterator[None]:
    """Hold the index's writer lock; with ``wait`` 0 a busy index fails at once.

    Readers never take it: SQLite's WAL mode lets them read while one writer writes.
    """
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(index_dir / LOCK_NAME, timeout=max(0.0, wait))
    try:
        lock.acquire()
    except Timeout:
        waited = f" (waited {wait:g} s)" if wait > 0 else ""
        raise IndexBusyError(
            f"another imgret index is writing {index_dir}{waited}; "
            "wait for it or pass --wait SECONDS"
        ) from None
    try:
        yield
    finally:
        lock.release()


class Store:
    """An open index. Create with :meth:`open`; use as a context manager to close it."""

    def __init__(self, index_dir: Path | str, connection: sqlite3.Connection):
        self.index_dir = Path(index_dir)
        self._db = connection

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
        if not path.exists():
            if not create or readonly:
                raise IndexNotFoundError(
                    f"no imgret index in {index_dir}; "
                    f"run `imgret index GALLERY --index {index_dir}` first"
                )
            index_dir.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        store = cls(index_dir, connection)
        try:
            store._prepare(create and not readonly)
            if not readonly and store.vectors_generation() is None:
                # A new index, or one made before the token existed, gets one here.
                store._vectors_changed()
            if readonly:
                connection.execute("PRAGMA query_only = ON")
        except BaseException:
            connection.close()
            raise
        return store

    def _prepare(self, create: bool) -> None:
        try:
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA synchronous = NORMAL")
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(
                f"{db_path(self.index_dir)} is not an imgret index ({exc}); "
                "point --index at another folder or delete this file to start over"
            ) from exc
        if not tables:
            if not create:
                raise IndexNotFoundError(
                    f"the index in {self.index_dir} is empty; run `imgret index GALLERY "
                    f"--index {self.index_dir}` first"
                )
            self._db.execute("PRAGMA journal_mode = WAL")
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            now = time.time()
            self.set_meta(format_version=FORMAT_VERSION, created=now, updated=now)
            return
        if "meta" not in tables:
            raise IndexFormatError(
                f"{db_path(self.index_dir)} is an SQLite file but not an imgret index; "
                "point --index at another folder"
            )
        version = self.meta().get("format_version")
        if version != FORMAT_VERSION:
            if isinstance(version, int) and version > FORMAT_VERSION:
                raise IndexFormatError(
                    f"the index in {self.index_dir} has format {version}, written by a newer "
                    f"imgret (this one reads format {FORMAT_VERSION}); upgrade imgret "
                    "(pip install -U imgret) or index into another folder"
                )
            raise IndexFormatError(
                f"the index in {self.index_dir} has format {version!r}, which this imgret "
                f"(format {FORMAT_VERSION}) cannot read; delete it and index again"
            )

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
        self._db.execute(begin)
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # meta -------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

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
        return self.meta().get("vectors_generation")

    def _vectors_changed(self) -> None:
        self.set_meta(vectors_generation=f"{time.time_ns():016x}{uuid.uuid4().hex[:8]}")

    @property
    def gallery(self) -> Path | None:
        """The gallery folder this index belongs to (absolute), None before the first build."""
        root = self.meta().get("gallery")
        return Path(root) if root else None

    def config_json(self) -> str | None:
        """The stored configuration as :meth:`Config.to_json` text, None before the first build."""
        stored = self.meta().get("config")
        return json.dumps(stored, sort_keys=True) if stored else None

    def config(self) -> Config | None:
        """The configuration of the last build, so search uses the same embedder and topics."""
        text = self.config_json()
        return Config.from_json(text) if text else None

    # images -----------------------------------------------------------------------------

    def states(self) -> dict[str, RowState]:
        """Path → the light columns of every row (what the indexer compares against)."""
        query = f"SELECT {_STAT_COLUMNS} FROM images"
        return {r["path"]: RowState(*r) for r in self._db.execute(query)}

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

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def upsert(self, rows: Iterable[ImageRow]) -> None:
        """Insert or replace rows, all in one transaction; a row also clears its skip mark."""
        values = [row.to_sql() for row in rows]
        marks = ",".join("?" * len(_COLUMNS))
        with self.transaction():
            self._db.executemany(
                f"INSERT OR REPLACE INTO images ({','.join(_COLUMNS)}) VALUES ({marks})", values
            )
            self._db.executemany("DELETE FROM skipped WHERE path = ?", [(v[0],) for v in values])
            if values:
                self._vectors_changed()

    def update_stats(self, stats: Iterable[tuple[str, int, int]]) -> None:
        """Record a new (size, mtime_ns) for files whose bytes did not change (touched)."""
        with self.transaction():
            self._db.executemany(
                "UPDATE images SET size = ?, mtime_ns = ? WHERE path = ?",
                [(size, mtime_ns, path) for path, size, mtime_ns in stats],
            )

    def delete(self, paths: Iterable[str]) -> None:
        """Drop rows (and skip marks) of files that are gone; their notes stay."""
        keys = [(p,) for p in paths]
        with self.transaction():
            self._db.executemany("DELETE FROM images WHERE path = ?", keys)
            self._db.executemany("DELETE FROM skipped WHERE path = ?", keys)
            if keys:
                self._vectors_changed()

    def vectors(self, embedder: str | None = None) -> tuple[list[str], np.ndarray]:
        """(paths, float32 matrix [n, d]) of the rows embedded by ``embedder`` (default: all).

        During an interrupted change of embedder the rows hold vectors of two models; only
        vectors of one model can be compared, so search asks for its own.
        """
        where, args = ("WHERE embedder = ?", (embedder,)) if embedder is not None else ("", ())
        paths: list[str] = []
        matrix: np.ndarray | None = None
        # Rows go straight into one preallocated matrix: half the peak memory of joining the
        # blobs first (1.6 instead of 3.2 GB for 10^6 384-d rows) and half the time.
        with self.snapshot():
            count = self._db.execute(f"SELECT COUNT(*) FROM images {where}", args).fetchone()[0]
            rows = self._db.execute(f"SELECT path, vector FROM images {where} ORDER BY path", args)
            for i, (path, blob) in enumerate(rows):
                if matrix is None:
                    matrix = np.empty((count, len(blob) // 4), dtype=np.float32)
                elif len(blob) != 4 * matrix.shape[1]:
                    raise IndexFormatError(
                        f"the index in {self.index_dir} mixes vectors of different sizes; "
                        "run `imgret index` to finish re-embedding"
                    )
                paths.append(path)
                matrix[i] = np.frombuffer(blob, dtype=np.float32)
        if matrix is None:
            return [], np.zeros((0, 0), dtype=np.float32)
        return paths, matrix

    # notes ------------------------------------------------------------------------------

    def notes(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT path, text FROM notes").fetchall())

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

    def skipped(self) -> dict[str, Skipped]:
        return {r[0]: Skipped(*r) for r in self._db.execute("SELECT * FROM skipped")}

    def mark_skipped(self, entries: Iterable[Skipped]) -> None:
        """Remember bad files with the stat they had; a row of the same path is dropped."""
        values = [(s.path, s.size, s.mtime_ns, s.reason) for s in entries]
        with self.transaction():
            self._db.executemany("INSERT OR REPLACE INTO skipped VALUES (?, ?, ?, ?)", values)
            self._db.executemany("DELETE FROM images WHERE path = ?", [(v[0],) for v in values])
            if values:
                self._vectors_changed()

    def forget_skipped(self, paths: Iterable[str]) -> None:
        with self.transaction():
            self._db.executemany("DELETE FROM skipped WHERE path = ?", [(p,) for p in paths])

    # summary and export -----------------------------------------------------------------

    def info(self) -> IndexInfo:
        meta = self.meta()
        config = self.config()
        embedded = self.count()
        if config is not None:
            embedded = self._db.execute(
                "SELECT COUNT(*) FROM images WHERE embedder = ?", (config.embedder,)
            ).fetchone()[0]
        files = [db_path(self.index_dir), *self.index_dir.glob(DB_NAME + "-*")]
        cache = self.index_dir / CACHE_DIR
        return IndexInfo(
            index_dir=self.index_dir,
            gallery=meta.get("gallery"),
            format_version=meta["format_version"],
            images=self.count(),
            embedded=embedded,
            dimension=meta.get("dimension"),
            notes=self._db.execute("SELECT COUNT(*) FROM notes").fetchone()[0],
            skipped=self._db.execute("SELECT COUNT(*) FROM skipped").fetchone()[0],
            stages=meta.get("stages", {}),
            created=meta.get("created"),
            updated=meta.get("updated"),
            file_bytes=sum(f.stat().st_size for f in files if f.exists()),
            cache_bytes=sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()),
        )

    def export(self, out_dir: Path | str) -> list[Path]:
        """Write the original's plain arrays: ``feature_matrix.npy`` and ``paths.json``.

        Row i of the matrix is the image at ``paths[i]`` (absolute paths, as the original
        kept them); only vectors of the index's current embedder are written.
        """
        config = self.config()
        paths, matrix = self.vectors(config.embedder if config else None)
        if not paths:
            raise EmptyIndexError(
                f"the index in {self.index_dir} holds no images; run `imgret index GALLERY "
                f"--index {self.index_dir}` first"
            )
        gallery = self.gallery or Path(".")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        matrix_file, paths_file = out_dir / "feature_matrix.npy", out_dir / "paths.json"
        np.save(matrix_file, matrix)
        paths_file.write_text(json.dumps([(gallery / p).as_posix() for p in paths], indent=1))
        return [matrix_file, paths_file]
