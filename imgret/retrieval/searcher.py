"""Text query → images ranked by cosine similarity, each hit with the description behind it.

The query gets its instruction from the topic classifier exactly as descriptions did, and is
embedded by the same embedder the index was built with (the configuration stored in the
index), so query and image vectors live in the same space. Search only reads the index and
never takes the writer lock.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgret.config import Config
from imgret.encode import TEXT_STAGES, encode
from imgret.errors import BadInputError, EmptyIndexError
from imgret.index.search_cache import load_search_vectors
from imgret.index.store import ImageRow, Store, damaged_message
from imgret.models.int8 import int8_text_stages
from imgret.models.stages import Stages, load_stages
from imgret.retrieval.neighbours import ExactIndex, SignCodeIndex, sign_codes

QUERY_MEMORY = 256
"""How many recent queries a Searcher keeps encoded."""


@dataclass
class Hit:
    """One ranked image; ``score`` is the cosine similarity to the query."""

    rank: int
    score: float
    path: Path
    relpath: str
    description: str
    caption: str
    counts: dict[str, int]
    topics: list[tuple[str, float]]
    notes: str
    instruction: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["topics"] = [list(t) for t in self.topics]
        return data


class Searcher:
    """An index loaded for searching: its vectors in one float32 matrix, models loaded once.

    ``config`` defaults to the configuration stored in the index; ``device`` overrides
    its device (the index may have been built on another machine). Vectors are memory-mapped
    from the index's search cache, so opening 10^6 of them costs milliseconds after the
    first search. ``approximate`` ranks candidates found by sign codes instead of scanning
    every vector (:class:`~imgret.retrieval.neighbours.SignCodeIndex`): worth it from some 10^5
    images on; it can miss a true neighbour (recall of the true top 10 near 1 on sentence
    embeddings, far lower on random vectors: bench/RESULTS.md). ``int8`` encodes queries on
    the CPU with int8 copies of the text models: about 3× faster, vectors a little different
    (:mod:`imgret.models.int8`).
    """

    def __init__(
        self,
        index_dir: Path | str = "tmp/index",
        config: Config | None = None,
        *,
        device: str | None = None,
        approximate: bool = False,
        int8: bool = False,
    ) -> None:
        if int8:
            if device not in (None, "cpu"):
                raise BadInputError(
                    f"int8 query encoding runs on the CPU, not {device}; drop --int8 "
                    "(float16 on a GPU is faster) or search with --device cpu"
                )
            device = "cpu"
        self.index_dir = Path(index_dir)
        self.approximate = approximate
        self.int8 = int8
        with Store.open(self.index_dir, readonly=True) as store:
            stored = config or store.config()
            gallery = store.gallery
        if stored is None or gallery is None:
            raise EmptyIndexError(self._empty_message(embedder=None))
        if not gallery.is_dir():
            warnings.warn(
                f"the gallery {gallery} of {self.index_dir} is not there (unmounted, or "
                "moved: then run `imgret index NEW_FOLDER` to re-point the index); hits "
                "name files under it",
                stacklevel=2,
            )
        self.gallery: Path = gallery
        self.config: Config = (
            stored if device is None else dataclasses.replace(stored, device=device)
        )
        self._stages: Stages | None = None
        self._encoded: OrderedDict[str, tuple[str, np.ndarray]] = OrderedDict()
        """The latest queries' instructions and vectors: a query asked again (the next page
        of hits, the web app explaining the hits it found) is not encoded again."""
        self.reload()

    def reload(self) -> None:
        """Read the vectors again (after notes or a rebuild), keeping the loaded models."""
        loaded = load_search_vectors(self.index_dir, self.config.embedder)
        self.relpaths = loaded.relpaths
        if loaded.damaged:
            # Left out, never ranked: a garbage vector once scored 5e18 at rank 1.
            warnings.warn(damaged_message(self.index_dir, loaded.damaged), stacklevel=2)
        if not self.relpaths:
            raise EmptyIndexError(self._empty_message(self.config.embedder, loaded.total))
        unembedded = loaded.total - len(self.relpaths) - len(loaded.damaged)
        if unembedded > 0:
            warnings.warn(
                f"{unembedded} of {loaded.total} indexed images are not "
                f"embedded with {self.config.embedder} and are left out; run `imgret index` "
                "to finish",
                stacklevel=2,
            )
        self.vectors: ExactIndex | SignCodeIndex
        if self.approximate:
            codes = loaded.derived("sign-codes", sign_codes)
            self.vectors = SignCodeIndex(loaded.matrix, codes=codes)
        else:
            self.vectors = ExactIndex(loaded.matrix)

    def _empty_message(self, embedder: str | None, total: int = 0) -> str:
        if total:
            return (
                f"none of the {total} images in the index {self.index_dir} is embedded with "
                f"{embedder}; run `imgret index GALLERY --index {self.index_dir} "
                f"--embedder {embedder}` or search with the index's own settings"
            )
        return (
            f"the index in {self.index_dir} holds no images; "
            f"run `imgret index GALLERY --index {self.index_dir}` first"
        )

    @property
    def stages(self) -> Stages:
        if self._stages is None:
            stages = load_stages(self.config, which=TEXT_STAGES)
            self._stages = int8_text_stages(stages) if self.int8 else stages
        return self._stages

    def __len__(self) -> int:
        return len(self.relpaths)

    def embed_queries(self, queries: list[str]) -> tuple[list[str], np.ndarray]:
        """(instructions, float32 [n, d] vectors) for queries, one batch through each model
        for those not asked lately."""
        if any(not q.strip() for q in queries):
            raise BadInputError("a query is empty; describe what to look for in words")
        found = {q: hit for q in queries if (hit := self._encoded.get(q)) is not None}
        missing = list(dict.fromkeys(q for q in queries if q not in found))
        if missing:
            _, instructions, vectors = encode(missing, self.stages, self.config)
            found.update(zip(missing, zip(instructions, vectors, strict=True), strict=True))
            for query in missing[-QUERY_MEMORY:]:
                self._encoded[query] = found[query]
            while len(self._encoded) > QUERY_MEMORY:
                self._encoded.popitem(last=False)
        known = [found[q] for q in queries]
        instructions = [instruction for instruction, _ in known]
        vectors = np.stack([vector for _, vector in known])
        if vectors.shape[1] != self.vectors.dimension:
            raise BadInputError(
                f"the embedder gives {vectors.shape[1]}-d vectors but the index holds "
                f"{self.vectors.dimension}-d ones; search with the index's own embedder"
            )
        return instructions, vectors

    def search(self, query: str, k: int = 10, min_score: float | None = None) -> list[Hit]:
        """The ``k`` images closest to ``query``, best first; ``min_score`` drops weaker hits."""
        return self.search_many([query], k, min_score)[0]

    def search_many(
        self, queries: list[str], k: int = 10, min_score: float | None = None
    ) -> list[list[Hit]]:
        """Hits for many queries at once (one batch through the topic model and embedder)."""
        if k < 1:
            raise BadInputError(f"k must be at least 1 (got {k})")
        if not queries:
            return []
        _, vectors = self.embed_queries(list(queries))
        return self.search_vectors(vectors, k, min_score)

    def search_vectors(
        self, vectors: np.ndarray, k: int = 10, min_score: float | None = None
    ) -> list[list[Hit]]:
        """Hits for vectors already in the index's space, one list per row of ``vectors``:
        an image's own stored vector finds the images like it (the web app's "more like this")."""
        if k < 1:
            raise BadInputError(f"k must be at least 1 (got {k})")
        scores, ids = self.vectors.search(np.atleast_2d(vectors).astype(np.float32), k)
        ranked = [
            [
                (int(i), float(score))
                for i, score in zip(row_ids, row_scores, strict=True)
                if i >= 0 and (min_score is None or score >= min_score)
            ]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]
        return self._hits(ranked)

    def _hits(self, ranked: list[list[tuple[int, float]]]) -> list[list[Hit]]:
        wanted = {self.relpaths[i] for hits in ranked for i, _ in hits}
        with Store.open(self.index_dir, readonly=True) as store:
            rows = {row.path: row for row in store.rows(sorted(wanted))}
        results = []
        for hits in ranked:
            results.append(
                [
                    hit_from_row(rows[self.relpaths[i]], self.gallery, rank, score)
                    for rank, (i, score) in enumerate(hits, start=1)
                    if self.relpaths[i] in rows
                ]
            )
        return results


def hit_from_row(row: ImageRow, gallery: Path, rank: int, score: float) -> Hit:
    """A stored row as a hit at ``rank`` with ``score`` (the web app's updated hit, too)."""
    return Hit(
        rank=rank,
        score=score,
        path=gallery / row.path,
        relpath=row.path,
        description=row.description,
        caption=row.caption,
        counts=row.counts,
        topics=row.topics,
        notes=row.notes,
        instruction=row.instruction,
    )


def search(
    index_dir: Path | str,
    query: str,
    k: int = 10,
    min_score: float | None = None,
    config: Config | None = None,
) -> list[Hit]:
    """One-off search; load a :class:`Searcher` once to run many queries."""
    return Searcher(index_dir, config).search(query, k, min_score)
