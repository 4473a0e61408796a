"""Walk a gallery, run each image through the stages in batches, and keep the index in step.

A build does only the work the index lacks: unchanged files are left alone, a file whose
bytes did not change (only its mtime) gets its new stat, new and changed files go through
the vision stages, and rows whose text settings (topics, embedder, template) or notes changed
are re-described and re-embedded from their stored caption, counts and text without loading
any vision model. The tagger is keyed apart: when only its settings changed (or the index
predates it), it runs alone on the stored rows and every other stored output stays. Every
batch is committed in one transaction, so an interrupted build keeps what it finished and
the next run does the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from imgret.config import KEYED_APART, STAGES, VISION_STAGES, Config, key_string
from imgret.encode import TEXT_STAGES, encode
from imgret.errors import GalleryMismatchError, ImgretIndexError, MissingFileError
from imgret.images import file_sha256, find_images, printable
from imgret.index.engines import Analysed, Engine, InProcessEngine, relpath, row_description
from imgret.index.search_cache import cache_folder, load_search_vectors, remove_generation
from imgret.index.store import ImageRow, RowState, Skipped, Store, writer_lock
from imgret.metadata import look_up_places, metadata_key, places_available, read_metadata
from imgret.models.stages import Stages, load_stages


@dataclass
class IndexReport:
    """What a build did; ``skipped`` lists (relative path, reason) of files left out."""

    gallery: Path
    index_dir: Path
    total: int = 0
    new: int = 0
    changed: int = 0
    reanalyzed: int = 0
    """Unchanged files whose caption/counts/OCR were redone because the vision settings changed."""
    retagged: int = 0
    """Unchanged files that only the tagger ran on again (its settings changed, or the index
    was made before it), then re-described and re-embedded."""
    reembedded: int = 0
    """Rows re-described and re-embedded from stored text (text settings or notes changed)."""
    repaired: int = 0
    """Rows whose stored vector was damaged, re-embedded from their stored text."""
    rehashed: bool = False
    """Whether every file was hashed (``rehash``), not only those whose size or mtime changed."""
    unchanged: int = 0
    metadata: int = 0
    """Unchanged files whose date, camera and place were read from the file alone (an older
    index, or the places extra installed since)."""
    removed: int = 0
    renamed: int = 0
    """New paths whose content is a removed row's: they took over its analysis and note."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    moved_from: Path | None = None
    """The gallery's former folder, when this build re-pointed the index at its new one."""
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"indexed {self.gallery} into {self.index_dir} in {self.seconds:.1f} s: "
            f"{self.total} image file(s); {self.new} new, {self.changed} changed, "
            f"{self.reanalyzed} re-analysed, {self.retagged} re-tagged, "
            f"{self.reembedded} re-embedded, "
            f"{self.unchanged} unchanged, {self.renamed} renamed, {self.removed} removed, "
            f"{len(self.skipped)} skipped"
            + (f", {self.repaired} damaged vector(s) repaired" if self.repaired else "")
            + (f"; photo metadata read for {self.metadata}" if self.metadata else "")
        ]
        if self.moved_from is not None:
            lines.insert(0, f"the gallery moved from {self.moved_from}: the index follows it")
        if self.rehashed:
            lines.append(
                "every file was hashed: content changed under an old size and mtime is found"
            )
        if self.skipped:
            lines.append("skipped (fix or remove them; they are retried when they change):")
            lines += [f"  {printable(path)}: {reason}" for path, reason in sorted(self.skipped)]
        return "\n".join(lines)


@dataclass
class _Plan:
    vision: dict[str, str] = field(default_factory=dict)
    """Path → why it goes through the vision stages: "new", "changed" or "reanalyzed"."""
    tagging: list[str] = field(default_factory=list)
    """Paths whose rows are current but for their tags."""
    text: list[str] = field(default_factory=list)
    touched: list[tuple[str, int, int]] = field(default_factory=list)
    renamed: list[tuple[str, str, int, int]] = field(default_factory=list)
    """(old path, new path, size, mtime_ns): a file found again under another name."""
    removed: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    """Rows whose metadata is read again from their files (no model runs for it)."""
    gone_skips: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    """The user's notes as the plan read them, for the descriptions."""


def describe_and_embed(
    rows: Sequence[ImageRow], notes: Mapping[str, str], stages: Stages, config: Config
) -> None:
    """Fill in notes, description, topics, instruction and vector of rows, in place."""
    for row in rows:
        row.notes = notes.get(row.path, "")
        row.description = row_description(row, config)
    topics, instructions, vectors = encode([r.description for r in rows], stages, config)
    text_key = key_string(config.text_key())
    for row, topic, instruction, vector in zip(rows, topics, instructions, vectors, strict=True):
        row.topics, row.instruction = topic, instruction
        row.vector, row.embedder, row.text_key = vector, config.embedder, text_key


def read_file_metadata(gallery: Path, rows: Sequence[ImageRow], workers: int = 4) -> None:
    """Fill in the metadata columns of rows from their files' headers (no pixel decoded, no
    model run): date taken, camera and GPS, and the place there with the places extra."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        found = list(pool.map(lambda row: read_metadata(gallery / row.path), rows))
    key = metadata_key()
    for row, facts in zip(rows, found, strict=True):
        row.taken, row.camera_make, row.camera_model = (
            facts.taken,
            facts.camera_make,
            facts.camera_model,
        )
        row.latitude, row.longitude = facts.latitude, facts.longitude
        row.city = row.region = row.country = ""
        row.metadata_key = key
    located = [r for r in rows if r.latitude is not None and r.longitude is not None]
    if located and places_available():
        places = look_up_places([(r.latitude, r.longitude) for r in located])  # type: ignore[misc]
        for row, place in zip(located, places, strict=True):
            row.city, row.region, row.country = place.city, place.region, place.country


def stage_meta(
    config: Config, revisions: Mapping[str, str | None], previous: Mapping[str, dict]
) -> dict[str, dict]:
    """Each configured stage's model and revision (known once loaded, else kept from before).

    ``revisions`` holds the stages loaded by this run (here or by an engine's workers).
    """
    result = {}
    for name in STAGES:
        model = getattr(config, name)
        if model is None:
            continue
        if name in revisions:
            result[name] = {"model": model, "revision": revisions[name]}
        elif previous.get(name, {}).get("model") == model:
            result[name] = dict(previous[name])
        else:
            result[name] = {"model": model, "revision": None}
    return result


def build_index(
    gallery: Path | str,
    index_dir: Path | str = "tmp/index",
    config: Config | None = None,
    *,
    progress: bool = True,
    wait: float = 0.0,
    engine: Engine | None = None,
    moved: bool = False,
    rehash: bool = False,
) -> IndexReport:
    """Bring the index in ``index_dir`` up to date with the images under ``gallery``.

    ``config`` None means the index's own settings (or the defaults for a new index).
    ``wait`` is how long to wait for another writer of the same index before giving up.
    ``moved`` re-points an index at ``gallery`` although its own gallery folder still
    exists (without it, only when that folder is gone and ``gallery`` holds its files).
    ``engine`` runs the vision stages (default :class:`InProcessEngine`; a
    ``imgret.index.ray_engine.RayEngine`` runs them on a Ray cluster); everything else, the
    text stages and every write included, happens here as always.
    ``rehash`` hashes every file, not only those whose size or mtime changed (content can
    change under both: a restored backup, some editors and sync tools), checks every stored
    vector anew and records the time of this full check (``imgret info`` shows it).
    """
    started = time.perf_counter()
    gallery = Path(gallery).expanduser().resolve()
    if not gallery.is_dir():
        raise MissingFileError(f"gallery {gallery} is not a folder; give the folder of images")
    index_dir = Path(index_dir)
    report = IndexReport(gallery=gallery, index_dir=index_dir)
    with writer_lock(index_dir, wait), Store.open(index_dir, create=True) as store:
        config = config or store.config() or Config()
        _claim(store, gallery, report, moved)
        plan = _plan(gallery, store, config, report, rehash)
        with store.transaction():
            store.rename(plan.renamed)
            store.delete(plan.removed)
            store.forget_skipped(plan.gone_skips)
            store.update_stats(plan.touched)
        replaced = _run_metadata(store, gallery, plan.metadata, config, progress)
        if config.describe_place:
            plan.text = sorted({*plan.text, *(p for p in replaced if p not in plan.tagging)})
        busy = plan.vision or plan.tagging or plan.text
        engine = engine or InProcessEngine()
        with contextlib.ExitStack() as running:
            # Started first, on a thread of its own: the engine loads its vision models (Ray
            # starts its actors) while this thread loads the text models.
            vision = (
                running.enter_context(_Ahead(engine.analyse(gallery, list(plan.vision), config)))
                if plan.vision
                else None
            )
            stages = load_stages(config, which=TEXT_STAGES) if busy else Stages()
            meta = _meta(store, config, stages)
            bar = running.enter_context(
                tqdm(
                    total=len(plan.vision) + len(plan.tagging) + len(plan.text),
                    unit="image",
                    desc="indexing",
                    disable=not progress,
                    dynamic_ncols=True,
                )
            )
            if vision is not None:
                _run_vision(store, vision, gallery, plan, stages, config, meta, report, bar)
            if plan.tagging:
                _run_tagger(store, engine, gallery, plan, stages, config, meta, report, bar)
            _run_text(store, plan.text, plan.notes, stages, config, meta, bar)
        store.set_meta(**meta, updated=time.time())
        if rehash:
            generation = store.vectors_generation()
            if generation is not None:  # the copy is made again from vectors checked anew
                remove_generation(cache_folder(index_dir, config.embedder), generation)
    damaged = _write_search_cache(index_dir, config)
    if damaged:
        # Found while copying the vectors: garbage of the right length that only the numbers
        # show. Re-embedded from the stored text now, so the advice "run imgret index" holds.
        with writer_lock(index_dir, wait), Store.open(index_dir) as store:
            report.repaired += reembed(store, damaged, config, progress=progress)
        _write_search_cache(index_dir, config)
    if rehash:
        with writer_lock(index_dir, wait), Store.open(index_dir) as store:
            store.set_meta(last_full_check=time.time())
        report.rehashed = True
    report.seconds = time.perf_counter() - started
    return report


def _write_search_cache(index_dir: Path, config: Config) -> list[str]:
    """Write the search cache; the rows whose stored vector it found damaged.

    Written now, the cache spares the first search reading the vectors out of SQLite
    (seconds per 10^6 rows, bench/RESULTS.md); the index is complete either way.
    """
    try:
        return load_search_vectors(index_dir, config.embedder).damaged
    except (MemoryError, ImgretIndexError) as exc:
        warnings.warn(f"the search cache was not written ({exc}); search will retry", stacklevel=3)
        return []


def _claim(store: Store, gallery: Path, report: IndexReport, moved: bool) -> None:
    """Make ``gallery`` the index's gallery: a new index takes it, an index whose gallery
    moved follows it (rows and notes are keyed by paths inside the gallery, so they all
    stay), any other gallery is refused."""
    owner = store.gallery
    if owner is not None and owner != gallery:
        if not (moved or (not owner.is_dir() and _holds_indexed_files(store, gallery))):
            gone = "" if owner.is_dir() else " (which is gone, and this folder lacks its files)"
            raise GalleryMismatchError(
                f"the index in {store.index_dir} belongs to the gallery {owner}{gone}, not "
                f"{gallery}; if the gallery moved here, pass --moved (notes and vectors are "
                "kept), else give this gallery another --index folder"
            )
        report.moved_from = owner
    store.set_gallery(gallery)


def _holds_indexed_files(store: Store, gallery: Path, sample: int = 200) -> bool:
    """Whether most indexed files (a sample) are in ``gallery`` at their paths and sizes:
    the gallery moved there, rather than an unmounted disk and an unrelated folder."""
    states = list(store.states().values())[:sample]
    found = 0
    for state in states:
        with contextlib.suppress(OSError):
            found += (gallery / state.path).stat().st_size == state.size
    return bool(states) and found * 2 >= len(states)


def _revisions(stages: Stages) -> dict[str, str | None]:
    return {name: model.revision for name in STAGES if (model := getattr(stages, name, None))}


def _meta(store: Store, config: Config, stages: Stages) -> dict[str, Any]:
    previous = store.meta()
    meta: dict[str, Any] = {
        "config": config.to_dict(),
        "stages": stage_meta(config, _revisions(stages), previous.get("stages", {})),
    }
    if stages.embedder is not None:
        meta["dimension"] = stages.embedder.dimension
    return meta


NOT_UTF8 = (
    "its name is not valid UTF-8 (an old camera, a zip or a Windows share wrote it); rename it "
    "(e.g. convmv -f latin1 -t utf8 --notest) to index it"
)
"""Why a file is left out whose name SQLite cannot store as text."""


def _is_utf8(key: str) -> bool:
    """Whether a name from the file system is UTF-8 text: Python hands other bytes over as
    lone surrogates, which SQLite refuses, so such a file is listed as skipped on every build
    (the skipped table cannot hold its name either) and never stops the others."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plan(
    gallery: Path, store: Store, config: Config, report: IndexReport, rehash: bool = False
) -> _Plan:
    plan = _Plan()
    files: dict[str, tuple[int, int]] = {}
    unreadable: list[OSError] = []
    for path in find_images(gallery, unreadable):
        key = relpath(path, gallery)
        if not _is_utf8(key):
            report.skipped.append((key, NOT_UTF8))
            continue
        try:
            stat = path.stat()
        except OSError as exc:
            report.skipped.append((key, f"cannot read ({exc.strerror})"))
            continue
        files[key] = (stat.st_size, stat.st_mtime_ns)
    report.total = len(files) + len(report.skipped)
    states, skipped = store.states(), store.skipped()
    notes = plan.notes = store.notes()
    # Rows under a folder that could not be listed are kept as they are: the files may well
    # be there (a permission slip, a share gone for a moment), and dropping them loses work.
    hidden = []
    for error in unreadable:
        folder = Path(error.filename or gallery)
        if folder == gallery:
            raise MissingFileError(
                f"cannot list the gallery {gallery} ({error.strerror}); check its permissions"
            )
        hidden.append(relpath(folder, gallery) + "/")
        report.skipped.append((hidden[-1], f"cannot list this folder ({error.strerror})"))
    plan.removed = [p for p in states if p not in files and not p.startswith(tuple(hidden))]
    plan.gone_skips = [p for p in skipped if p not in files and not p.startswith(tuple(hidden))]
    new = [
        k
        for k, stat_pair in files.items()
        if k not in states
        and not ((skip := skipped.get(k)) and (skip.size, skip.mtime_ns) == stat_pair)
    ]
    for old, key in _renames(gallery, files, states, plan.removed, new, config.decode_workers):
        plan.renamed.append((old, key, *files[key]))
        size, mtime_ns = files[key]
        states[key] = dataclasses.replace(states.pop(old), path=key, size=size, mtime_ns=mtime_ns)
        if old in notes and key not in notes:
            notes[key] = notes.pop(old)
        plan.removed.remove(old)
    report.removed = len(plan.removed)
    report.renamed = len(plan.renamed)

    same: list[str] = []
    to_hash: list[str] = []
    for key, stat_pair in files.items():
        skip = skipped.get(key)
        if skip is not None and (skip.size, skip.mtime_ns) == stat_pair:
            report.skipped.append((key, skip.reason))
        elif key not in states:
            plan.vision[key] = "new"
        elif (states[key].size, states[key].mtime_ns) == stat_pair and not rehash:
            same.append(key)
        else:
            to_hash.append(key)
    for key, digest in zip(to_hash, _hashes(gallery, to_hash, config.decode_workers), strict=True):
        if digest == states[key].sha256:
            plan.touched.append((key, *files[key]))
            same.append(key)
        else:
            plan.vision[key] = "changed"

    vision_key, text_key = key_string(config.vision_key()), key_string(config.text_key())
    tagger_key = key_string(config.tagger_key())
    misfits = set(store.misfit_vectors(config.embedder))
    current = metadata_key()
    for key in same:
        state = states[key]
        if state.vision_key != vision_key:
            plan.vision[key] = "reanalyzed"
        elif state.tagger_key != tagger_key:
            plan.tagging.append(key)
        elif state.text_key != text_key or state.notes != notes.get(key, ""):
            plan.text.append(key)
            report.reembedded += 1
        elif key in misfits:  # a vector blob cut short (or grown): not of this index's size
            plan.text.append(key)
            report.repaired += 1
        else:
            report.unchanged += 1
    # The vision stages read a file's metadata anew; the rest read only their headers.
    plan.metadata = sorted(
        key for key in same if states[key].metadata_key != current and key not in plan.vision
    )
    report.metadata = len(plan.metadata)
    plan.vision = dict(sorted(plan.vision.items()))
    plan.tagging.sort()
    plan.text.sort()
    return plan


def _renames(
    gallery: Path,
    files: Mapping[str, tuple[int, int]],
    states: Mapping[str, RowState],
    removed: Sequence[str],
    new: Sequence[str],
    workers: int,
) -> list[tuple[str, str]]:
    """(old, new) paths of files found again under a new name: a new file with the size and
    content hash of a removed row. Only new files of a removed row's size are hashed, so a
    build without removals reads nothing extra (rclip matches renames by hash the same way)."""
    gone: dict[tuple[int, str], list[str]] = {}
    for old in removed:
        gone.setdefault((states[old].size, states[old].sha256), []).append(old)
    sizes = {size for size, _ in gone}
    candidates = [key for key in new if files[key][0] in sizes]
    pairs = []
    for key, digest in zip(candidates, _hashes(gallery, candidates, workers), strict=True):
        olds = gone.get((files[key][0], digest or ""))
        if olds:
            pairs.append((olds.pop(0), key))
    return pairs


def _hashes(gallery: Path, paths: Sequence[str], workers: int) -> list[str | None]:
    def digest(path: str) -> str | None:
        try:
            return file_sha256(gallery / path)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(digest, paths))


class _Ahead:
    """An engine's batches, each produced on a thread of its own while the one before it is
    used: the engine's work (decoding, the vision models, Ray's actors) overlaps this
    thread's, loading the text models at the start, embedding and committing each batch
    after. The thread starts at once; at most three batches are held (one made, one
    waiting, one used). An error of the engine is raised where its batch would have come.

    Leaving the ``with`` (the build done, an error, Ctrl-C) stops the thread after the batch
    it is making, and it closes the engine's iterator (its decode threads, Ray's stream).
    """

    def __init__(self, batches: Iterator[Analysed]) -> None:
        self._ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(batches,), name="imgret-engine", daemon=True
        )
        self._thread.start()

    def _offer(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._ready.put(item, timeout=0.1)
                return True
        return False

    def _produce(self, batches: Iterator[Analysed]) -> None:
        last: tuple[str, Any] = ("done", None)
        try:
            for batch in batches:
                if not self._offer(("batch", batch)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            last = ("error", exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        self._offer(last)

    def __iter__(self) -> Iterator[Analysed]:
        while True:
            kind, value = self._ready.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value

    def __enter__(self) -> _Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def _run_vision(
    store: Store,
    vision: Iterable[Analysed],
    gallery: Path,
    plan: _Plan,
    stages: Stages,
    config: Config,
    meta: dict,
    report: IndexReport,
    bar: tqdm,
) -> None:
    previous = store.meta().get("stages", {})
    revisions = _revisions(stages)
    for batch in vision:
        if batch.revisions.keys() - revisions.keys():
            revisions |= batch.revisions
            meta["stages"] = stage_meta(config, revisions, previous)
        if batch.rows:
            read_file_metadata(gallery, batch.rows, config.decode_workers)
            describe_and_embed(batch.rows, plan.notes, stages, config)
        with store.transaction():
            store.upsert(batch.rows)
            store.mark_skipped(batch.skipped)
            store.set_meta(**meta)
        report.skipped += [(s.path, s.reason) for s in batch.skipped]
        report.skipped += batch.failed
        for row in batch.rows:
            why = plan.vision[row.path]
            setattr(report, why, getattr(report, why) + 1)
        bar.update(len(batch))


def _run_tagger(
    store: Store,
    engine: Engine,
    gallery: Path,
    plan: _Plan,
    stages: Stages,
    config: Config,
    meta: dict,
    report: IndexReport,
    bar: tqdm,
) -> None:
    """New tags for rows whose only stale part is the tagger's: the engine runs with every
    other vision stage off, and the stored caption, counts and text stay as they are.

    A tagger switched off needs no image: its tags are cleared from the stored rows.
    """
    if config.tagger is None:
        key = key_string(config.tagger_key())
        for start in range(0, len(plan.tagging), config.text_batch_size):
            rows = store.rows(plan.tagging[start : start + config.text_batch_size])
            for row in rows:
                row.tags, row.tagger_key = [], key
            _describe_and_commit(store, rows, [], plan, stages, config, meta, report, bar)
        return
    others_off: dict[str, Any] = {s: None for s in VISION_STAGES if s not in KEYED_APART}
    alone = replace(config, **others_off)
    previous = store.meta().get("stages", {})
    revisions = _revisions(stages)
    for batch in engine.analyse(gallery, plan.tagging, alone):
        if batch.revisions.keys() - revisions.keys():
            revisions |= batch.revisions
            meta["stages"] = stage_meta(config, revisions, previous)
        tagged = {row.path: row for row in batch.rows}
        rows = store.rows(tagged)
        for row in rows:
            row.tags, row.tagger_key = tagged[row.path].tags, tagged[row.path].tagger_key
        _describe_and_commit(store, rows, batch.skipped, plan, stages, config, meta, report, bar)
        report.skipped += batch.failed
        bar.update(len(batch.failed))


def _describe_and_commit(
    store: Store,
    rows: list[ImageRow],
    skipped: Sequence[Skipped],
    plan: _Plan,
    stages: Stages,
    config: Config,
    meta: dict,
    report: IndexReport,
    bar: tqdm,
) -> None:
    """Re-tagged rows described, embedded and stored in one transaction (with the files that
    could no longer be read)."""
    if rows:
        describe_and_embed(rows, plan.notes, stages, config)
    with store.transaction():
        store.upsert(rows)
        store.mark_skipped(skipped)
        store.set_meta(**meta)
    report.retagged += len(rows)
    report.skipped += [(s.path, s.reason) for s in skipped]
    bar.update(len(rows) + len(skipped))


def _run_metadata(
    store: Store, gallery: Path, paths: Sequence[str], config: Config, progress: bool
) -> list[str]:
    """Read the metadata of stored rows from their files; returns the paths whose place
    changed (their descriptions change too where places are described)."""
    changed: list[str] = []
    step = 512
    with tqdm(
        total=len(paths),
        unit="image",
        desc="reading photo metadata",
        disable=not progress or not paths,
    ) as bar:
        for start in range(0, len(paths), step):
            rows = store.rows(paths[start : start + step])
            before = {row.path: row.place for row in rows}
            read_file_metadata(gallery, rows, config.decode_workers)
            store.update_metadata(rows)
            changed += [row.path for row in rows if row.place != before[row.path]]
            bar.update(len(rows))
    return changed


def _run_text(
    store: Store,
    paths: Sequence[str],
    notes: Mapping[str, str],
    stages: Stages,
    config: Config,
    meta: dict,
    bar: tqdm,
) -> None:
    for start in range(0, len(paths), config.text_batch_size):
        rows = store.rows(paths[start : start + config.text_batch_size])
        describe_and_embed(rows, notes, stages, config)
        with store.transaction():
            store.upsert(rows)
            store.set_meta(**meta)
        bar.update(len(rows))


def reembed(store: Store, paths: Iterable[str], config: Config, *, progress: bool = False) -> int:
    """Re-describe and re-embed indexed rows from their stored text; the caller holds the lock.

    Only the topic classifier and the embedder are loaded. Returns how many rows were redone.
    """
    wanted = sorted(set(paths) & set(store.states()))
    if not wanted:
        return 0
    stages = load_stages(config, which=TEXT_STAGES)
    meta = _meta(store, config, stages)
    with tqdm(total=len(wanted), unit="image", desc="re-embedding", disable=not progress) as bar:
        _run_text(store, wanted, store.notes(), stages, config, meta, bar)
    return len(wanted)
