"""A parsed query's constraints as one SQL condition on the index: which images may be ranked.

Filters, exact words and exclusions narrow the candidates before any vector is scored, so a
selective filter still fills its k hits. Everything runs inside SQLite on the stored columns
and the full-text table, with the person's values always passed as parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from imgret.errors import BadInputError
from imgret.index.store import PLACE_COLUMN, TEXT_COLUMNS, TEXT_TABLE
from imgret.retrieval.query import Filter, Query

Condition = tuple[str, list[Any]]

_WORD = re.compile(r"\w")
_IN_TEXT = "{" + " ".join(TEXT_COLUMNS) + "} : ("
"""Words match the image's text columns, not its place names (place: does)."""
_EXTENSION_ALIASES = {"jpg": ("jpg", "jpeg"), "jpeg": ("jpg", "jpeg"), "tif": ("tif", "tiff")}
_EXTENSION_ALIASES["tiff"] = _EXTENSION_ALIASES["tif"]


def condition(query: Query, columns: frozenset[str]) -> Condition:
    """The SQL condition (and its parameters) an image must meet to be ranked for ``query``.

    ``columns`` are the index's ``images`` columns: a filter whose column an index lacks
    says what would add it.
    """
    parts: list[str] = []
    args: list[Any] = []
    if query.phrases:
        parts.append(f"rowid IN (SELECT rowid FROM {TEXT_TABLE} WHERE {TEXT_TABLE} MATCH ?)")
        args.append(_IN_TEXT + " AND ".join(_phrase(p) for p in query.phrases) + ")")
    if query.excluded:
        parts.append(f"rowid NOT IN (SELECT rowid FROM {TEXT_TABLE} WHERE {TEXT_TABLE} MATCH ?)")
        args.append(_IN_TEXT + " OR ".join(_phrase(p) for p in query.excluded) + ")")
    for f in query.filters:
        sql, values = _FILTERS[f.name](f, columns)
        # -name:value keeps every image its filter drops, those without the value (NULL) too.
        parts.append(f"NOT coalesce(({sql}), 0)" if f.negated else f"({sql})")
        args += values
    return " AND ".join(parts) or "1", args


def _phrase(text: str) -> str:
    """An FTS5 phrase: the words in this order, adjacent (quotes inside doubled)."""
    if not _WORD.search(text):
        raise BadInputError(f'"{text}" has no word to look for; quote words, not punctuation')
    return '"' + text.replace('"', '""') + '"'


def _like(text: str) -> str:
    """``text`` for a LIKE pattern with ``ESCAPE '\\'``: its own % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has(f: Filter, columns: frozenset[str]) -> Condition:
    # Counted classes only: a count of 0 is the detector's "perhaps", not an object it counted.
    return (
        "EXISTS (SELECT 1 FROM json_each(images.counts) AS c "
        f"WHERE lower(c.key) = ? AND c.value >= 1 AND c.value {f.op} ?)",
        [f.value, f.count],
    )


def _in(f: Filter, columns: frozenset[str]) -> Condition:
    return "path LIKE ? ESCAPE '\\'", [_like(f.value) + "/%"]


def _ext(f: Filter, columns: frozenset[str]) -> Condition:
    suffixes = _EXTENSION_ALIASES.get(f.value, (f.value,))
    return " OR ".join("lower(path) LIKE ? ESCAPE '\\'" for _ in suffixes), [
        "%." + _like(s) for s in suffixes
    ]


def _tag(f: Filter, columns: frozenset[str]) -> Condition:
    if "tags" not in columns:
        raise BadInputError(
            "tag: filters need an index with tags; open it once where it is writable "
            "(any imgret command upgrades it) and index with --tagger"
        )
    # Stored as [[label, probability], …], the labels as the tagger's model names them.
    return (
        "EXISTS (SELECT 1 FROM json_each(images.tags) AS t "
        "WHERE lower(json_extract(t.value, '$[0]')) = ?)",
        [f.value],
    )


def _after(f: Filter, columns: frozenset[str]) -> Condition:
    # ISO text compares as dates; an unknown date ("") sorts before every year.
    return "taken >= ?", [f.value]


def _before(f: Filter, columns: frozenset[str]) -> Condition:
    return "taken != '' AND taken < ?", [f.value]


def _camera(f: Filter, columns: frozenset[str]) -> Condition:
    return "(camera_make || ' ' || camera_model) LIKE ? ESCAPE '\\'", [f"%{_like(f.value)}%"]


def _place(f: Filter, columns: frozenset[str]) -> Condition:
    return (
        f"rowid IN (SELECT rowid FROM {TEXT_TABLE} WHERE {TEXT_TABLE} MATCH ?)",
        [f"{PLACE_COLUMN} : {_phrase(f.value)}"],
    )


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
