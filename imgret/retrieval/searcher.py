"""Query → images ranked by cosine similarity, each hit with the description behind it.

A query string follows the grammar of :mod:`imgret.retrieval.query`: its filters, exact words
and exclusions pick the candidates inside SQLite (:mod:`imgret.retrieval.candidates`), and
its free words are ranked among them only.

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
from PIL import Image

from imgret.config import VISION_STAGES, Config
from imgret.encode import TEXT_STAGES, encode
from imgret.errors import BadInputError, EmptyIndexError
from imgret.images import load_image
from imgret.index.engines import FileFacts, row_description, row_keys, see_all
from imgret.index.search_cache import load_search_vectors
from imgret.index.store import COUNTS_TABLE, TEXT_TABLE, ImageRow, Store, damaged_message
from imgret.models.int8 import int8_text_stages
from imgret.models.stages import Stages, load_stages
from imgret.retrieval.candidates import parts
from imgret.retrieval.facets import Facets
from imgret.retrieval.neighbours import ExactIndex, SignCodeIndex, sign_codes
from imgret.retrieval.query import Query, parse_query

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
    taken: str = ""
    """Date taken (ISO, from EXIF), "" when unknown."""
    camera: str = ""
    place: str = ""

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
        self._vision: dict[str, Any] | None = None
        self.reload()

    def reload(self) -> None:
        """Read the vectors again (after notes or a rebuild), keeping the loaded models."""
        loaded = load_search_vectors(self.index_dir, self.config.embedder)
        self.relpaths = loaded.relpaths
        if loaded.damaged:
            # Left out, never ranked: a garbage vector once scored 5e18 at rank 1.
            warnings.warn(damaged_message(self.index_dir, loaded.damaged), stacklevel=2)
        self._generation = loaded.generation
        self._by_rowid: np.ndarray | None = None
        self._indexed: np.ndarray | None = None
        """Rows of the vectors whose image is in the store (by_rowid's values)."""
        self._facets: tuple[str | None, Facets] | None = None
        """The filter columns and the rows token they were read at."""
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

    def search(
        self,
        query: str | Query = "",
        k: int = 10,
        min_score: float | None = None,
        *,
        sort: str = "score",
        image: Path | str | Image.Image | None = None,
    ) -> list[Hit]:
        """The ``k`` images closest to ``query``, best first; ``min_score`` drops weaker hits.

        ``image`` (a file or a Pillow image) searches by a photo: it is described by the
        index's own vision stages, and that description, followed by the query's free words
        if any ("at night"), is ranked like a text query; the query's filters still apply.

        ``query`` is a string in the query grammar (or one parsed by
        :func:`~imgret.retrieval.query.parse_query`). ``sort="date"`` orders those hits by
        date taken, newest first (undated last). A query of filters alone is not ranked: its
        images come in path order (newest first with ``sort="date"``), with a score of 0.
        """
        if image is not None:
            parsed = query if isinstance(query, Query) else parse_query(query)
            text = " ".join(t for t in (self.describe_photo(image), parsed.text) if t)
            query = dataclasses.replace(parsed, text=text)
        return self.search_many([query], k, min_score, sort=sort)[0]

    def describe_photo(self, image: Path | str | Image.Image) -> str:
        """A photo's description as the index would store it (no notes): the index's own
        vision stages, loaded on first use, and the build's own composition."""
        if self._vision is None:
            stages = load_stages(self.config, which=VISION_STAGES)
            self._vision = {s: getattr(stages, s) for s in VISION_STAGES if getattr(stages, s)}
        if not self._vision:
            raise BadInputError(
                f"the index in {self.index_dir} was built without vision stages, so a photo "
                "cannot be described; search with words, or index with a captioner or detector"
            )
        if not isinstance(image, Image.Image):
            image = load_image(image, self.config.max_image_megapixels)
        facts = FileFacts("photo", 0, 0, "", image.width, image.height)
        rows, failures = see_all(self._vision, [(facts, image)], row_keys(self.config))
        if failures:
            raise BadInputError(f"cannot describe the photo: {failures[0][1]}")
        description = row_description(rows[0], self.config)
        if not description:
            raise BadInputError("the index's vision stages saw nothing in the photo to search by")
        return description

    def search_many(
        self,
        queries: list[str | Query] | list[str],
        k: int = 10,
        min_score: float | None = None,
        *,
        sort: str = "score",
    ) -> list[list[Hit]]:
        """Hits for many queries at once (one batch through the topic model and embedder)."""
        if k < 1:
            raise BadInputError(f"k must be at least 1 (got {k})")
        if sort not in SORTS:
            raise BadInputError(f"cannot sort by {sort!r}; sort by {' or '.join(SORTS)}")
        parsed = [q if isinstance(q, Query) else parse_query(q) for q in queries]
        for query in parsed:
            if not query.text and not query.constrained:
                raise BadInputError("a query is empty; describe what to look for in words")
        among = [self.candidates(q) if q.constrained and q.text else None for q in parsed]
        ranked: list[list[tuple[int, float]]] = [[] for _ in parsed]
        worded = [i for i, q in enumerate(parsed) if q.text]
        if worded:
            _, vectors = self.embed_queries([parsed[i].text for i in worded])
            free = [j for j, i in enumerate(worded) if among[i] is None]
            if free:
                # Unconstrained queries go through the index together, as before the grammar.
                found = self.vectors.search(vectors[free], k)
                for j, scores, ids in zip(free, *found, strict=True):
                    ranked[worded[j]] = _kept(ids, scores, min_score)
            for j, i in enumerate(worded):
                rows = among[i]
                if rows is not None:
                    scores, ids = self.vectors.search(vectors[j], k, among=rows)
                    ranked[i] = _kept(ids[0], scores[0], min_score)
        for i, query in enumerate(parsed):
            if not query.text and (min_score is None or min_score <= 0):
                listed = self.candidates(query, newest_first=sort == "date")
                ranked[i] = [(int(row), 0.0) for row in listed[:k]]
        results = self._hits(ranked)
        return [_by_date(hits) for hits in results] if sort == "date" else results

    def candidates(self, query: Query, *, newest_first: bool = False) -> np.ndarray:
        """The rows of the vectors that meet the query's filters, words and exclusions, in
        row order (which is path order), or by date taken, newest first.

        Each constraint's rowids come on their own, from SQLite or the filter columns held
        in memory, and are combined here as masks; rowids map to rows of the vectors by one
        array. The map is made again when the vectors token changed, the columns are read
        again when the rows token did (a metadata-only write changes only that one).
        """
        with Store.open(self.index_dir, readonly=True) as store, store.snapshot():
            if not (store.has_table(TEXT_TABLE) and store.has_table(COUNTS_TABLE)):
                raise BadInputError(
                    f"the index in {self.index_dir} is of an older format that is read "
                    "without filters or exact words; open it once where it can be written "
                    "(any imgret command upgrades it) or search with words alone"
                )
            constraints = parts(query, store.columns())
            generation = store.vectors_generation()
            if self._by_rowid is None or self._indexed is None or generation != self._generation:
                self._by_rowid = self._rowid_map(store.rowids())
                self._indexed = np.zeros(len(self.relpaths), dtype=bool)
                self._indexed[self._by_rowid[self._by_rowid >= 0]] = True
                self._facets = None
                self._generation = generation
            by_rowid = self._by_rowid

            def facets() -> Facets:
                rows = store.rows_generation()  # metadata and stats change it, not vectors
                if self._facets is None or self._facets[0] != rows:
                    self._facets = (rows, Facets.read(store))
                return self._facets[1]

            def rows_of(rowids: np.ndarray) -> np.ndarray:
                rows = by_rowid[rowids[rowids < len(by_rowid)]]
                return rows[rows >= 0]

            # Masks over the rows of the vectors: the kept rows come out in row order.
            keep = self._indexed.copy()
            for part in constraints:
                met = np.zeros(len(keep), dtype=bool)
                met[rows_of(part.rowids(store, facets))] = True
                keep &= ~met if part.negated else met
            if newest_first:
                ordered = rows_of(store.rowids_by_date())
                return ordered[keep[ordered]]
        return np.flatnonzero(keep)

    def _rowid_map(self, rowids: dict[str, int]) -> np.ndarray:
        """rowid → row of the vectors (-1: a row not among them, e.g. another embedder's)."""
        known = [(rowids[p], i) for i, p in enumerate(self.relpaths) if p in rowids]
        by_rowid = np.full(max((r for r, _ in known), default=-1) + 1, -1, dtype=np.int64)
        if known:
            pairs = np.asarray(known, dtype=np.int64)
            by_rowid[pairs[:, 0]] = pairs[:, 1]
        return by_rowid

    def search_vectors(
        self, vectors: np.ndarray, k: int = 10, min_score: float | None = None
    ) -> list[list[Hit]]:
        """Hits for vectors already in the index's space, one list per row of ``vectors``:
        an image's own stored vector finds the images like it (the web app's "more like this")."""
        if k < 1:
            raise BadInputError(f"k must be at least 1 (got {k})")
        scores, ids = self.vectors.search(np.atleast_2d(vectors).astype(np.float32), k)
        found = zip(ids, scores, strict=True)
        return self._hits([_kept(row_ids, row_scores, min_score) for row_ids, row_scores in found])

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


SORTS = ("score", "date")


def _by_date(hits: list[Hit]) -> list[Hit]:
    """Newest first, undated last; equal dates keep their order by score; ranks renumbered."""
    dated = sorted((h for h in hits if h.taken), key=lambda h: h.taken, reverse=True)
    ordered = dated + [h for h in hits if not h.taken]
    return [dataclasses.replace(h, rank=rank) for rank, h in enumerate(ordered, start=1)]


def _kept(ids: np.ndarray, scores: np.ndarray, min_score: float | None) -> list[tuple[int, float]]:
    return [
        (int(i), float(score))
        for i, score in zip(ids, scores, strict=True)
        if i >= 0 and (min_score is None or score >= min_score)
    ]


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
        taken=row.taken,
        camera=_camera(row.camera_make, row.camera_model),
        place=row.place,
    )


def _camera(make: str, model: str) -> str:
    """ "Canon EOS 5D", not "Canon Canon EOS 5D": models often repeat the make."""
    return model if model.lower().startswith(make.lower()) else f"{make} {model}".strip()


def search(
    index_dir: Path | str,
    query: str | Query,
    k: int = 10,
    min_score: float | None = None,
    config: Config | None = None,
    *,
    sort: str = "score",
    image: Path | str | Image.Image | None = None,
) -> list[Hit]:
    """One-off search; load a :class:`Searcher` once to run many queries."""
    return Searcher(index_dir, config).search(query, k, min_score, sort=sort, image=image)
