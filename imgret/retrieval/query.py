"""The query grammar: a query string → free text to rank, exact words, exclusions and filters.

Pure parsing, no index: the library's search, the CLI, the notebooks and ``imgret serve``
all hand the person's string to :func:`parse_query`, so one grammar holds everywhere.

    the beach "ice cream" -kids -"birthday cake" has:person>=2 after:2019 ext:jpg

* Free words are ranked by meaning, as a query always was. Words in quotes are ranked too,
  and must also appear, as written, in the image's text (description, notes, text read in
  the image, file name).
* ``-word`` and ``-"a phrase"`` leave out the images whose text contains them.
* ``name:value`` is a filter (:data:`FILTERS`); a value with spaces is quoted
  (``place:"new york"``), and ``-name:value`` keeps the images the filter would drop.

Words are constraints the person writes, never a hidden blend with the ranking: measured on
coco-sample, blending word matches into the score did not help (docs/search.md).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from imgret.errors import BadInputError
from imgret.images import IMAGE_SUFFIXES

FILTERS: dict[str, str] = {
    "has": "an object the detector counted: has:dog, has:person>=3 (also >, <=, <, =)",
    "tag": "a label of the tagger: tag:restaurant",
    "in": "a folder of the gallery and everything below it: in:holidays/2019",
    "after": "taken on or after a day, month or year: after:2019-06-01, after:2019",
    "before": "taken before a day, month or year: before:2020",
    "camera": "words of the camera's make or model: camera:canon",
    "place": "a city, region or country where it was taken (GPS): place:paris",
    "ext": "the file's extension: ext:png",
}
"""Every filter name and what it matches, for messages and ``imgret search --help``."""

COMPARISONS = (">=", "<=", ">", "<", "=")
"""How ``has:`` compares a count; ``has:dog`` alone means at least one."""

_TOKEN = re.compile(
    r"""\s*(?P<minus>-?)(?:
        "(?P<phrase>[^"]*)"?                          # "a phrase" (closed at the end if open)
      | (?P<name>[A-Za-z]+):(?:"(?P<quoted>[^"]*)"?(?P<rest>\S*)|(?P<value>\S*))  # name:value
      | (?P<word>\S+)
    )""",
    re.VERBOSE,
)
_COUNT = re.compile(r"^(?P<label>.*?)(?P<op>>=|<=|>|<|=)(?P<number>\d+)$")
_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


@dataclass(frozen=True)
class Filter:
    """One ``name:value`` of a query, its value already checked and normalised.

    ``value`` is lower-case; for ``after``/``before`` it is the ISO date it starts at
    ("2019", "2019-06", "2019-06-01"), for ``in`` the folder without outer slashes. ``op``
    and ``count`` are the comparison of ``has:`` (``>=`` 1 when none is written).
    """

    name: str
    value: str
    negated: bool = False
    op: str = ">="
    count: int = 1


@dataclass(frozen=True)
class Query:
    """A parsed query; :func:`parse_query` makes one, ``str(query)`` writes it back."""

    text: str = ""
    """What is ranked by meaning: the free words and the quoted phrases, in order."""
    phrases: tuple[str, ...] = ()
    """Each must appear, as written, in the image's text."""
    excluded: tuple[str, ...] = ()
    """Words or phrases whose images are left out."""
    filters: tuple[Filter, ...] = field(default_factory=tuple)

    @property
    def constrained(self) -> bool:
        """Whether anything narrows the candidates before ranking."""
        return bool(self.phrases or self.excluded or self.filters)


def parse_query(query: str) -> Query:
    """Split a query string into its parts; a filter that cannot be used raises
    :class:`~imgret.errors.BadInputError` naming the accepted ones."""
    text: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    filters: list[Filter] = []
    for match in _TOKEN.finditer(query):
        minus = bool(match["minus"])
        if match["phrase"] is not None:
            phrase = _words(match["phrase"])
            if not phrase:
                continue
            if minus:
                excluded.append(phrase)
            else:
                phrases.append(phrase)
                text.append(phrase)
        elif match["name"] is not None:
            quoted = match["quoted"]
            value = match["value"] if quoted is None else quoted + match["rest"]
            name = match["name"].lower()
            if name not in FILTERS and not value:
                # "note: …" is a word with a colon, not a filter.
                text.append(match.group(0).strip())
                continue
            filters.append(_filter(name, _words(value or ""), minus))
        elif match["word"] is not None:
            word = match["word"]
            if minus:
                excluded.append(word)
            elif word != "-":
                text.append(word)
    return Query(" ".join(text), tuple(phrases), tuple(excluded), tuple(filters))


def _words(text: str) -> str:
    return " ".join(text.split())


def _filter(name: str, value: str, negated: bool) -> Filter:
    if name not in FILTERS:
        raise BadInputError(
            f"unknown filter '{name}:'; filters are {', '.join(f + ':' for f in FILTERS)} "
            f'(put words with a colon in quotes: "{name}:…")'
        )
    if not value:
        raise BadInputError(f"the filter {name}: needs a value: {FILTERS[name]}")
    lowered = value.lower()
    if name == "has":
        return _count_filter(lowered, negated)
    if name == "tag":
        return Filter(name, _label(lowered), negated)
    if name in ("after", "before"):
        return Filter(name, _date(name, lowered), negated)
    if name == "in":
        folder = lowered.strip("/")
        if not folder:
            raise BadInputError(f"in:{value} names no folder: {FILTERS['in']}")
        return Filter(name, folder, negated)
    if name == "ext":
        suffix = "." + lowered.lstrip(".")
        if suffix not in IMAGE_SUFFIXES:
            accepted = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
            raise BadInputError(f"ext:{value} is not an image type imgret indexes: {accepted}")
        return Filter(name, suffix[1:], negated)
    return Filter(name, lowered, negated)


def _count_filter(value: str, negated: bool) -> Filter:
    match = _COUNT.match(value)
    if match is None:
        if any(op in value for op in COMPARISONS):
            raise BadInputError(
                f"has:{value} is not a count: write has:CLASS, or has:CLASS followed by one "
                f"of {' '.join(COMPARISONS)} and a whole number (has:person>=3)"
            )
        return Filter("has", _label(value), negated)
    label = _label(match["label"])
    if not label:
        raise BadInputError(f"has:{value} names no object: {FILTERS['has']}")
    return Filter("has", label, negated, match["op"], int(match["number"]))


def _label(value: str) -> str:
    """Class and tag names as the models write them: ``traffic_light`` is "traffic light"."""
    return " ".join(value.replace("_", " ").split())


def _date(name: str, value: str) -> str:
    """The ISO text a date starts with, zero-padded so stored dates compare as text."""
    match = _DATE.match(value)
    if match is not None:
        year, month, day = (int(part) if part else None for part in match.groups())
        try:
            datetime.date(year or 1, month or 1, day or 1)
        except ValueError:
            pass
        else:
            parts = [f"{year:04d}"] + [f"{p:02d}" for p in (month, day) if p is not None]
            return "-".join(parts)
    raise BadInputError(
        f"{name}:{value} is not a date: give a year, a month or a day "
        f"({name}:2019, {name}:2019-06, {name}:2019-06-01)"
    )
