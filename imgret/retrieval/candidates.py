"""A parsed query's constraints as sets of rowids: which images may be ranked.

Filters, exact words and exclusions narrow the candidates before any vector is scored, so a
selective filter still fills its k hits. Words, places and tags are SQL queries on the
full-text table and the stored columns, the person's values always passed as parameters;
counts, folders, extensions, dates and cameras are tests of the columns the searcher holds
in memory (:mod:`imgret.retrieval.facets`), so a broad filter costs no SQLite round trip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgret.errors import BadInputError
from imgret.index.store import PLACE_COLUMN, TEXT_COLUMNS, TEXT_TABLE, Store
from imgret.retrieval.facets import Facets
from imgret.retrieval.query import Filter, Query

Condition = tuple[str, list[Any]]
"""An SQL query of rowids and its parameters."""
FacetTest = Callable[[Facets], np.ndarray]
"""The rowids an in-memory test of the filter columns keeps."""

_WORD = re.compile(r"\w")
_WHERE = "SELECT rowid FROM images WHERE "
_MATCH = f"SELECT rowid FROM {TEXT_TABLE} WHERE {TEXT_TABLE} MATCH ?"
_IN_TEXT = "{" + " ".join(TEXT_COLUMNS) + "} : ("
"""Words match the image's text columns, not its place names (place: does)."""
_EXTENSION_ALIASES = {"jpg": ("jpg", "jpeg"), "jpeg": ("jpg", "jpeg"), "tif": ("tif", "tiff")}
_EXTENSION_ALIASES["tiff"] = _EXTENSION_ALIASES["tif"]


@dataclass(frozen=True)
class Part:
    """One constraint of a query: the rowids of the images that meet it (``negated``: of
    those it leaves out), from an SQL query read by an index (full text) or a scan of a
    covering one, never the rows with their vectors, or from a test of the filter columns in
    memory (``facet``). The searcher intersects the parts' rowids."""

    select: str = ""
    args: tuple[Any, ...] = ()
    negated: bool = False
    facet: FacetTest | None = None

    def rowids(self, store: Store, facets: Callable[[], Facets]) -> np.ndarray:
        """The rowids that meet the part (before ``negated``); ``facets`` gives the filter
        columns, read only when a part needs them."""
        if self.facet is not None:
            return self.facet(facets())
        return store.rowids_of(self.select, self.args)


def parts(query: Query, columns: frozenset[str]) -> list[Part]:
    """The constraints an image must meet to be ranked for ``query``.

    ``columns`` are the index's ``images`` columns: a filter whose column an index lacks
    says what would add it.
    """
    found: list[Part] = []
    if query.phrases:
        words = _IN_TEXT + " AND ".join(_phrase(p) for p in query.phrases) + ")"
        found.append(Part(_MATCH, (words,)))
    if query.excluded:
        words = _IN_TEXT + " OR ".join(_phrase(p) for p in query.excluded) + ")"
        found.append(Part(_MATCH, (words,), negated=True))
    for f in query.filters:
        # -name:value keeps every image its filter drops, those without the value too.
        if f.name in _FACETS:
            found.append(Part(negated=f.negated, facet=_FACETS[f.name](f)))
        else:
            select, values = _FILTERS[f.name](f, columns)
            found.append(Part(select, tuple(values), negated=f.negated))
    return found


def _phrase(text: str) -> str:
    """An FTS5 phrase: the words in this order, adjacent (quotes inside doubled)."""
    if not _WORD.search(text):
        raise BadInputError(f'"{text}" has no word to look for; quote words, not punctuation')
    return '"' + text.replace('"', '""') + '"'


def _like(text: str) -> str:
    """``text`` for a LIKE pattern with ``ESCAPE '\\'``: its own % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has(f: Filter) -> FacetTest:
    # Counted objects only, never the detector's "perhaps" (a count of 0).
    return lambda facets: facets.has(f.value, f.op, f.count)


def _in(f: Filter) -> FacetTest:
    return lambda facets: facets.in_folder(f.value)


def _ext(f: Filter) -> FacetTest:
    suffixes = _EXTENSION_ALIASES.get(f.value, (f.value,))
    return lambda facets: facets.with_extension(suffixes)


def _after(f: Filter) -> FacetTest:
    return lambda facets: facets.after(f.value)


def _before(f: Filter) -> FacetTest:
    return lambda facets: facets.before(f.value)


def _camera(f: Filter) -> FacetTest:
    return lambda facets: facets.by_camera(f.value)


def _tag(f: Filter, columns: frozenset[str]) -> Condition:
    if "tags" not in columns:
        raise BadInputError(
            "tag: filters need an index with tags; open it once where it is writable "
            "(any imgret command upgrades it) and index with --tagger"
        )
    # Stored as json.dumps writes [[label, probability], …]: LIKE finds "[label, " in C.
    return _WHERE + "tags LIKE ? ESCAPE '\\'", [f"%[{_like(json.dumps(f.value))}, %"]


def _place(f: Filter, columns: frozenset[str]) -> Condition:
    return _MATCH, [f"{PLACE_COLUMN} : {_phrase(f.value)}"]


_FACETS: dict[str, Callable[[Filter], FacetTest]] = {
    "has": _has,
    "in": _in,
    "after": _after,
    "before": _before,
    "camera": _camera,
    "ext": _ext,
}
_FILTERS: dict[str, Callable[[Filter, frozenset[str]], Condition]] = {
    "tag": _tag,
    "place": _place,
}
