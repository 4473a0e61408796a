"""A parsed query's constraints as SQL queries of rowids: which images may be ranked.

Filters, exact words and exclusions narrow the candidates before any vector is scored, so a
selective filter still fills its k hits. Everything runs inside SQLite on the stored columns
and the full-text table, with the person's values always passed as parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imgret.errors import BadInputError
from imgret.index.store import COUNTS_TABLE, PLACE_COLUMN, TEXT_COLUMNS, TEXT_TABLE
from imgret.retrieval.query import Filter, Query

Condition = tuple[str, list[Any]]
"""An SQL query of rowids and its parameters."""

_WORD = re.compile(r"\w")
_WHERE = "SELECT rowid FROM images WHERE "
_MATCH = f"SELECT rowid FROM {TEXT_TABLE} WHERE {TEXT_TABLE} MATCH ?"
_IN_TEXT = "{" + " ".join(TEXT_COLUMNS) + "} : ("
"""Words match the image's text columns, not its place names (place: does)."""
_EXTENSION_ALIASES = {"jpg": ("jpg", "jpeg"), "jpeg": ("jpg", "jpeg"), "tif": ("tif", "tiff")}
_EXTENSION_ALIASES["tiff"] = _EXTENSION_ALIASES["tif"]


@dataclass(frozen=True)
class Part:
    """One constraint of a query: an SQL query of the rowids of the images that meet it
    (``negated``: of those it leaves out). The searcher intersects the parts' rowids, each
    read on its own by an index (full text, counts, dates) or a scan of a covering index,
    never by reading the rows with their vectors."""

    select: str
    args: tuple[Any, ...] = ()
    negated: bool = False


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
        select, values = _FILTERS[f.name](f, columns)
        # -name:value keeps every image its filter drops, those without the value too.
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


def _has(f: Filter, columns: frozenset[str]) -> Condition:
    # A range of the counts table's index; it holds counted objects only, never the
    # detector's "perhaps" (a count of 0).
    return (
        f"SELECT image FROM {COUNTS_TABLE} WHERE label = ? AND count {f.op} ?",
        [f.value, f.count],
    )


def _in(f: Filter, columns: frozenset[str]) -> Condition:
    return _WHERE + "path LIKE ? ESCAPE '\\'", [_like(f.value) + "/%"]


def _ext(f: Filter, columns: frozenset[str]) -> Condition:
    suffixes = _EXTENSION_ALIASES.get(f.value, (f.value,))
    return _WHERE + " OR ".join("lower(path) LIKE ? ESCAPE '\\'" for _ in suffixes), [
        "%." + _like(s) for s in suffixes
    ]


def _tag(f: Filter, columns: frozenset[str]) -> Condition:
    if "tags" not in columns:
        raise BadInputError(
            "tag: filters need an index with tags; open it once where it is writable "
            "(any imgret command upgrades it) and index with --tagger"
        )
    # Stored as json.dumps writes [[label, probability], …]: LIKE finds "[label, " in C.
    return _WHERE + "tags LIKE ? ESCAPE '\\'", [f"%[{_like(json.dumps(f.value))}, %"]


def _after(f: Filter, columns: frozenset[str]) -> Condition:
    # ISO text compares as dates; an unknown date ("") sorts before every year.
    return _WHERE + "taken >= ?", [f.value]


def _before(f: Filter, columns: frozenset[str]) -> Condition:
    return _WHERE + "taken != '' AND taken < ?", [f.value]


def _camera(f: Filter, columns: frozenset[str]) -> Condition:
    camera = "(camera_make || ' ' || camera_model)"
    return _WHERE + f"{camera} LIKE ? ESCAPE '\\'", [f"%{_like(f.value)}%"]


def _place(f: Filter, columns: frozenset[str]) -> Condition:
    return _MATCH, [f"{PLACE_COLUMN} : {_phrase(f.value)}"]


_FILTERS: dict[str, Callable[[Filter, frozenset[str]], Condition]] = {
    "has": _has,
    "tag": _tag,
    "in": _in,
    "after": _after,
    "before": _before,
    "camera": _camera,
    "place": _place,
    "ext": _ext,
}
