"""The index as the web app holds it: a searcher kept current, rows and files by their key.

Models are loaded once. Vectors are re-read when the store's vectors token changes (a note
saved here, or an ``imgret index`` run while the server is up): the new vectors go into a
copy of the searcher that shares its models, swapped in whole, so a request in flight keeps
the consistent pair of paths and vectors it started with. The models and the scans run one
call at a time on one thread of their own (a Hugging Face tokenizer refuses concurrent use
from threads, and torch keeps a pool of worker threads per calling thread: requests on the
web server's many threads each woke a pool of their own, which fought for the cores); row
reads and files run in parallel.

Each image's file facts (content hash, size, mtime) are held in memory beside the vectors
and reloaded when any row changed (the store's rows token, read by every API request): a
page of 40 thumbnails is then 40 lookups and 40 stats, not 40 SQLite connections.

Files are served only as indexed images: a URL names an index key, the key must be in the
store, and the file it leads to must resolve inside the gallery (a symlink out of it is
refused), so no path from a request is ever opened as given.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from imgret import describe
from imgret.encode import encode
from imgret.errors import MissingFileError
from imgret.index.info import IndexInfo, index_info
from imgret.index.notes import set_notes
from imgret.index.store import ImageRow, Store
from imgret.retrieval.query import parse_query
from imgret.retrieval.searcher import Hit, Searcher
from imgret.serve.explain import Explanation, PartVectors, explain

_T = TypeVar("_T")


class IndexedFile(NamedTuple):
    """What the web app keeps in memory of each image: its key and the facts that name its
    content (a thumbnail's file name, an ETag)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


class Library:
    """One index served: search, explain, notes and files."""

    def __init__(self, searcher: Searcher) -> None:
        self.index_dir = searcher.index_dir
        self._searcher = searcher
        self._generation = self._read_generation()
        self._files = self._read_files()
        self._swap = threading.Lock()
        self._models = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imgret-models")
        self.part_vectors = PartVectors(self._embed)

    @property
    def gallery(self) -> Path:
        return self._searcher.gallery

    def _read_generation(self) -> tuple[str | None, str | None]:
        """The store's vectors token and rows token (which metadata and stats change too)."""
        with Store.open(self.index_dir, readonly=True) as store:
            return store.vectors_generation(), store.rows_generation()

    def _read_files(self) -> dict[str, IndexedFile]:
        with Store.open(self.index_dir, readonly=True) as store:
            rows = store.select("SELECT path, size, mtime_ns, sha256 FROM images")
        return {row[0]: IndexedFile(*row) for row in rows}

    def searcher(self) -> Searcher:
        """The searcher over the index's current vectors, reloaded if they changed; the
        files' facts are reloaded when any row changed."""
        generation = self._read_generation()
        if generation != self._generation:
            with self._swap:
                if generation != self._generation:
                    fresh = self._searcher
                    if generation[0] != self._generation[0]:
                        fresh = copy.copy(self._searcher)
                        fresh.reload()
                    files = self._read_files()
                    self._searcher, self._files, self._generation = fresh, files, generation
        return self._searcher

    def on_models(self, work: Callable[..., _T], *args: object) -> _T:
        """``work(*args)`` on the models' own thread, after the calls before it."""
        return self._models.submit(work, *args).result()

    def _embed(self, texts: list[str]) -> np.ndarray:
        searcher = self._searcher
        return self.on_models(lambda: encode(texts, searcher.stages, searcher.config)[2])

    def search(self, query: str, k: int) -> list[Hit]:
        searcher = self.searcher()
        return self.on_models(lambda: searcher.search(query, k=k))

    def query_vector(self, query: str) -> np.ndarray | None:
        """The vector of the query's words ranked by meaning, for the explanation; ``None``
        when the query only filters (``has:dog``, ``-"at night"``): filters and exclusions
        are not words a description should be scored against. The search embedded the same
        text, so this is its cached vector."""
        text = parse_query(query).text
        if not text:
            return None
        searcher = self.searcher()
        return self.on_models(lambda: searcher.embed_queries([text])[1][0])

    def similar(self, row: ImageRow, k: int) -> list[Hit]:
        """The images closest to ``row``'s stored vector, the image itself left out."""
        if row.vector is None:  # stored rows always have one; a row made in memory may not
            raise MissingFileError(f"{row.path!r} has no vector yet; run `imgret index`")
        searcher, vector = self.searcher(), row.vector
        hits = self.on_models(lambda: searcher.search_vectors(vector, k + 1)[0])
        kept = [hit for hit in hits if hit.relpath != row.path][:k]
        for rank, hit in enumerate(kept, start=1):
            hit.rank = rank
        return kept

    def rows(self, keys: list[str]) -> dict[str, ImageRow]:
        with Store.open(self.index_dir, readonly=True) as store:
            return {row.path: row for row in store.rows(keys)}

    def row(self, key: str) -> ImageRow:
        """The indexed image ``key`` (its path in the gallery), or :class:`MissingFileError`."""
        found = self.rows([key]).get(key)
        if found is None:
            raise MissingFileError(f"{key!r} is not an image in this index")
        return found

    def explain(
        self, hits: list[Hit], rows: list[ImageRow], query_vector: np.ndarray, query: str
    ) -> list[Explanation]:
        """Why each hit matched ``query_vector``; ``rows`` are the hits' stored rows."""
        fields = [
            {name: getattr(row, name) for name in describe.DESCRIPTION_FIELDS} for row in rows
        ]
        return explain(fields, query_vector, self.part_vectors, query)

    def file(self, key: str) -> tuple[Path, IndexedFile]:
        """The file of the indexed image ``key``, resolved and checked to lie in the gallery,
        with its indexed facts. A key not known in memory re-reads the index if it changed
        (an image added by a build since the last request)."""
        facts = self._files.get(key)
        if facts is None:
            self.searcher()
            facts = self._files.get(key)
        if facts is None:
            raise MissingFileError(f"{key!r} is not an image in this index")
        gallery = self.gallery.resolve()
        path = (gallery / facts.path).resolve()
        if not path.is_relative_to(gallery) or not path.is_file():
            raise MissingFileError(f"{key!r} is not a file inside the gallery")
        return path, facts

    def set_note(self, key: str, text: str) -> ImageRow:
        """Store the note of an indexed image, re-embed it, and return its updated row."""
        self.row(key)
        self.on_models(set_notes, self.index_dir, {key: text}, self._searcher.config)
        self.searcher()
        return self.row(key)

    def info(self) -> IndexInfo:
        with Store.open(self.index_dir, readonly=True) as store:
            return index_info(store)
