"""Why a hit matched: its description cut into parts, each scored against the query.

A description is sentences that each say one thing (the caption, the counts, the text read
in the image, the person's note: :func:`imgret.describe.description_parts`). Embedding each
sentence alone and taking its cosine to the query vector shows which of them carries the
match, and where a wrong part pulls a photo up, the note that fixes it. Only the hits a
page shows are explained, and a part's vector depends on its text alone, so the caller
keeps the vectors of parts already seen (:class:`PartVectors`).

The query's words are also marked where the description contains them ("bus" finds "buses"),
as character spans, so the page highlights them without putting any text into HTML.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgret import describe

Embed = Callable[[list[str]], np.ndarray]
"""Texts → float32 [n, d] unit vectors, by the index's own encoding path."""

STOP_WORDS = frozenset(
    "a an and are as at be by for from has have i in into is it its my of on or our photo "
    "picture the their there this to was were with".split()
)
"""Words too common to be worth marking in a description."""

_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Part:
    """One sentence of a description, its cosine to the query and the query words in it."""

    part: str
    text: str
    similarity: float
    highlights: list[tuple[int, int]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "text": self.text,
            "similarity": self.similarity,
            "highlights": [list(span) for span in self.highlights],
        }


@dataclass(frozen=True)
class Explanation:
    """A hit's parts, the best of them, and the query's words marked in the whole description."""

    parts: list[Part]
    highlights: list[tuple[int, int]]

    @property
    def best(self) -> str | None:
        return max(self.parts, key=lambda p: p.similarity).part if self.parts else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "parts": [part.to_dict() for part in self.parts],
            "best": self.best,
            "highlights": [list(span) for span in self.highlights],
        }


class PartVectors:
    """Vectors of description parts by their text, the least recently used dropped first.

    Thread-safe; ``embed`` runs outside the lock on the texts not yet known.
    """

    def __init__(self, embed: Embed, capacity: int = 50_000) -> None:
        self.embed = embed
        self.capacity = capacity
        self._known: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            found = {t: self._known[t] for t in texts if t in self._known}
            for text in found:
                self._known.move_to_end(text)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            vectors = self.embed(missing)
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    found[text] = self._known[text] = vector
                while len(self._known) > self.capacity:
                    self._known.popitem(last=False)
        return found


def query_words(query: str) -> list[str]:
    """The query's words worth marking: lower-case, stop words and one-letter words left out."""
    words = (w.lower() for w in _WORD.findall(query))
    return list(dict.fromkeys(w for w in words if len(w) > 1 and w not in STOP_WORDS))


def _stem(word: str) -> str:
    """A crude English stem, enough for "buses"/"bus" and "dogs"/"dog" to meet."""
    for ending in ("ies", "es", "s"):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[: -len(ending)]
    return word


def highlights(text: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """[start, end) spans of the words of ``text`` that share a stem with one of ``words``."""
    stems = {_stem(w) for w in words}
    return [
        (m.start(), m.end())
        for m in _WORD.finditer(text)
        if any(_stem(m.group().lower()).startswith(s) for s in stems)
    ]


def explain(
    fields: Sequence[Mapping[str, Any]], query_vector: np.ndarray, vectors: PartVectors, query=""
) -> list[Explanation]:
    """One :class:`Explanation` per hit; ``fields`` are each hit's
    :data:`~imgret.describe.DESCRIPTION_FIELDS`, ``query`` the words to mark (none for "more
    like this", whose query is an image)."""
    per_hit = [describe.description_parts(**hit) for hit in fields]
    known = vectors([text for parts in per_hit for _, text in parts])
    words = query_words(query)
    explanations = []
    for parts in per_hit:
        scored = [
            Part(name, text, float(np.dot(known[text], query_vector)), highlights(text, words))
            for name, text in parts
        ]
        explanations.append(Explanation(scored, highlights(" ".join(t for _, t in parts), words)))
    return explanations
