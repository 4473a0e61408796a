"""Building the index: the whole pipeline, incremental runs, resume after kill -9, bad files,
one writer at a time."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgret import describe
from imgret.config import Config, key_string
from imgret.errors import GalleryMismatchError, IndexBusyError, ModelUnavailableError
from imgret.index.build import build_index
from imgret.index.store import DB_NAME, Store, writer_lock
from tests.support.killed_build import committed_rows, kill_mid_build


def _states(index: Path) -> dict:
    with Store.open(index) as store:
        return store.states()


def test_whole_pipeline(tiny_config, small_gallery, tmp_path):
    index = tmp_path / "index"
    report = build_index(small_gallery, index, tiny_config, progress=False)
    assert (report.total, report.new, report.unchanged, report.skipped) == (6, 6, 0, [])
    with Store.open(index) as store:
        rows = store.rows()
        meta = store.meta()
    assert sorted(r.path for r in rows) == sorted(
        p.relative_to(small_gallery).as_posix() for p in small_gallery.rglob("*.jpg")
    )
    assert meta["dimension"] == rows[0].vector.shape[0]
    assert meta["gallery"] == small_gallery.resolve().as_posix()
    assert set(meta["stages"]) == {"captioner", "detector", "topics", "embedder"}
    for row in rows:
        assert row.caption and row.counts, row  # random weights still produce words and boxes
        assert all(isinstance(n, int) and n > 0 for n in row.counts.values())
        assert row.description == describe.compose_description(row.caption, row.counts)
        assert all(score >= tiny_config.topic_threshold for _, score in row.topics)
        assert row.instruction == describe.instruction([label for label, _ in row.topics])
        assert np.linalg.norm(row.vector) == pytest.approx(1.0, abs=1e-5)
        assert row.vision_key == key_string(tiny_config.vision_key())
        assert row.text_key == key_string(tiny_config.text_key())
        with Image.open(small_gallery / row.path) as image:
            assert (row.width, row.height) == image.size


def test_second_run_and_single_file_changes(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    assert build_index(small_gallery, index, text_only, progress=False).new == 6
    again = build_index(small_gallery, index, text_only, progress=False)
    assert (again.new, again.changed, again.reembedded, again.unchanged) == (0, 0, 0, 6)

    bus = small_gallery / "bus.jpg"
    os.utime(bus, ns=(bus.stat().st_atime_ns, bus.stat().st_mtime_ns + 10**9))
    touched = build_index(small_gallery, index, text_only, progress=False)
    assert (touched.new, touched.changed, touched.unchanged) == (0, 0, 6)
    assert _states(index)["bus.jpg"].mtime_ns == bus.stat().st_mtime_ns

    zidane = small_gallery / "zidane.jpg"
    Image.open(zidane).rotate(90).save(zidane)
    before = _states(index)
    changed = build_index(small_gallery, index, text_only, progress=False)
    assert (changed.new, changed.changed, changed.unchanged) == (0, 1, 5)
    after = _states(index)
    assert [p for p in after if after[p].sha256 != before[p].sha256] == ["zidane.jpg"]

    shutil.copy(bus, small_gallery / "sub" / "bus copy.jpg")
    added = build_index(small_gallery, index, text_only, progress=False)
    assert (added.new, added.changed, added.unchanged, added.total) == (1, 0, 6, 7)

    bus.unlink()
    removed = build_index(small_gallery, index, text_only, progress=False)
    assert (removed.new, removed.removed, removed.unchanged, removed.total) == (0, 1, 6, 6)
    assert "bus.jpg" not in _states(index) and "sub/bus copy.jpg" in _states(index)


def test_text_settings_change_reembeds_without_vision(tiny_models, small_gallery, tmp_path):
    captioner = shutil.copytree(tiny_models["captioner"], tmp_path / "captioner")
    before = Config(
        captioner=str(captioner),
        detector=None,
        topics=str(tiny_models["topics"]),
        embedder=str(tiny_models["embedder"]),
        device="cpu",
        caption_max_length=8,
    )
    index = tmp_path / "index"
    build_index(small_gallery, index, before, progress=False)
    with Store.open(index) as store:
        captions = {r.path: r.caption for r in store.rows()}
    shutil.rmtree(captioner)  # from here on, anything that loads the captioner fails

    minilm = dataclasses.replace(before, embedder="minilm")
    report = build_index(small_gallery, index, minilm, progress=False)
    assert (report.reembedded, report.new, report.changed, report.reanalyzed) == (6, 0, 0, 0)
    with Store.open(index) as store:
        rows = store.rows()
        assert store.meta()["dimension"] == 384
    assert {r.path: r.caption for r in rows} == captions
    assert {r.vector.shape for r in rows} == {(384,)} and {r.embedder for r in rows} == {"minilm"}

    threshold = dataclasses.replace(minilm, topic_threshold=0.9)
    assert build_index(small_gallery, index, threshold, progress=False).reembedded == 6

    new_prompt = dataclasses.replace(threshold, caption_prompt="a photo of ")
    with pytest.raises((ModelUnavailableError, OSError, ValueError)):  # the captioner is gone
        build_index(small_gallery, index, new_prompt, progress=False)


_BUILD = """
import json
from imgret.config import Config
from imgret.index.build import build_index

build_index(sys.argv[1], sys.argv[2], Config.from_dict(json.loads(sys.argv[3])), progress=False)
"""


def test_resume_after_kill_9(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    config = dataclasses.replace(text_only, batch_size=1)
    kill_mid_build(_BUILD, [str(small_gallery), str(index), json.dumps(config.to_dict())], index)
    with Store.open(index) as store:
        kept = set(store.states())
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert 2 <= len(kept) < 6
    report = build_index(small_gallery, index, config, progress=False, wait=0)
    assert (report.new, report.unchanged) == (6 - len(kept), len(kept))
    assert committed_rows(index) == 6


def _add_bad_files(gallery: Path) -> dict[str, str]:
    (gallery / "empty.jpg").write_bytes(b"")
    data = (gallery / "bus.jpg").read_bytes()
    (gallery / "sub" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (gallery / "text.jpg").write_text("this is not a picture\n")
    Image.new("L", (2000, 1000)).save(gallery / "bomb.png")
    return {
        "empty.jpg": "empty",
        "sub/truncated.jpg": "truncated",
        "text.jpg": "not an image",
        "bomb.png": "decompression bomb",
    }


def test_bad_files_are_skipped_and_remembered(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    config = dataclasses.replace(text_only, max_image_megapixels=1.0)
    build_index(small_gallery, index, config, progress=False)
    before = _states(index)
    bad = _add_bad_files(small_gallery)

    report = build_index(small_gallery, index, config, progress=False)
    assert dict(report.skipped).keys() == bad.keys()
    for path, reason in report.skipped:
        assert bad[path] in reason
    assert (report.new, report.unchanged, report.total) == (0, 6, 10)
    assert _states(index) == before
    assert "text.jpg" in report.summary() and "skipped" in report.summary()

    again = build_index(small_gallery, index, config, progress=False)
    assert (again.new, again.unchanged, len(again.skipped)) == (0, 6, 4)

    shutil.copy(small_gallery / "zidane.jpg", small_gallery / "sub" / "truncated.jpg")
    fixed = build_index(small_gallery, index, config, progress=False)
    assert (fixed.new, len(fixed.skipped)) == (1, 3)
    assert "sub/truncated.jpg" in _states(index)


def test_one_writer_at_a_time(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    held, release = threading.Event(), threading.Event()

    def other_writer():
        with writer_lock(index):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=other_writer)
    thread.start()
    held.wait(10)
    with pytest.raises(IndexBusyError, match="another imgret index is writing .*--wait SECONDS"):
        build_index(small_gallery, index, text_only, progress=False)
    assert not Store.exists(index)
    timer = threading.Timer(0.5, release.set)
    timer.start()
    report = build_index(small_gallery, index, text_only, progress=False, wait=60)
    assert release.is_set() and report.new == 6
    thread.join()


def test_an_index_belongs_to_one_gallery(text_only, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    build_index(tmp_path / "a", tmp_path / "index", text_only, progress=False)
    with pytest.raises(GalleryMismatchError, match="belongs to the gallery"):
        build_index(tmp_path / "b", tmp_path / "index", text_only, progress=False)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        build_index(tmp_path / "missing", tmp_path / "index", text_only, progress=False)


def test_stored_config_is_the_default(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    report = build_index(small_gallery, index, progress=False)
    assert (report.unchanged, report.reembedded) == (6, 0)
    with Store.open(index) as store:
        assert store.config_dict() == text_only.to_dict()


# --- the tagger: keyed apart from the other vision stages ---------------------------------------


def test_the_tagger_runs_alone_when_only_its_settings_change(
    text_only, tiny_models, small_gallery, tmp_path
):
    from tests.support.tiny_taggers import COLOURS, build_tiny_onnx

    detector = str(shutil.copy(tiny_models["detector"], tmp_path / "detector.pt"))
    colours = build_tiny_onnx(tmp_path / "colours")
    tagged = dataclasses.replace(
        text_only, detector=detector, tagger=str(colours), tagger_top_k=2, tagger_min_score=0.0
    )
    index = tmp_path / "index"
    assert build_index(small_gallery, index, tagged, progress=False).new == 6
    with Store.open(index) as store:
        before = {r.path: r for r in store.rows()}
        assert set(store.meta()["stages"]) >= {"detector", "tagger"}
    for row in before.values():
        assert {label for label, _ in row.tags} <= set(COLOURS) and len(row.tags) == 2
        assert row.tags[0][1] >= row.tags[1][1] and row.counts
        assert row.tagger_key == key_string(tagged.tagger_key())
    Path(detector).unlink()  # from here on, anything that loads the detector fails

    fewer = dataclasses.replace(tagged, tagger_top_k=1)
    report = build_index(small_gallery, index, fewer, progress=False)
    assert (report.retagged, report.reanalyzed, report.new, report.reembedded) == (6, 0, 0, 0)
    with Store.open(index) as store:
        after = {r.path: r for r in store.rows()}
    for path, row in after.items():
        assert row.tags == before[path].tags[:1]
        assert row.counts == before[path].counts and row.vision_key == before[path].vision_key
    assert build_index(small_gallery, index, fewer, progress=False).unchanged == 6

    shutil.rmtree(colours.parent)  # switching the tagger off needs neither its model nor the images
    off = dataclasses.replace(fewer, tagger=None)
    report = build_index(small_gallery, index, off, progress=False)
    assert (report.retagged, report.reanalyzed) == (6, 0)
    with Store.open(index) as store:
        assert {(tuple(r.tags), r.tagger_key) for r in store.rows()} == {((), "{}")}


def test_a_name_that_is_not_utf8_is_listed_and_never_holds_the_others_back(
    text_only, small_gallery, tmp_path
):
    """Old cameras and zip files write Latin-1 names; Python hands them over as surrogates."""
    odd = os.fsdecode(os.fsencode(small_gallery) + b"/caf\xe9.jpg")
    shutil.copy(small_gallery / "bus.jpg", odd)
    index = tmp_path / "index"
    for _ in range(2):  # the next run neither fails nor forgets to list it
        report = build_index(small_gallery, index, text_only, progress=False)
        assert report.total == 7 and len(report.skipped) == 1
        assert "not valid UTF-8" in report.skipped[0][1] and "rename it" in report.skipped[0][1]
        assert "caf" in report.summary()
        assert len(_states(index)) == 6


def _damage(index: Path, path: str, blob: bytes) -> None:
    with sqlite3.connect(index / DB_NAME) as db:
        db.execute("UPDATE images SET vector = ? WHERE path = ?", (blob, path))


def test_a_garbage_vector_is_left_out_of_search_and_repaired_by_the_next_build(
    text_only, small_gallery, tmp_path
):
    from imgret.retrieval.searcher import Searcher

    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    good = {row.path: row.vector.copy() for row in Store.open(index).rows()}
    dimension = len(good["bus.jpg"])
    _damage(index, "bus.jpg", np.full(dimension, 5e18, dtype=np.float32).tobytes())
    shutil.rmtree(index / "search-cache")  # read from the store again, as after any change
    with pytest.warns(UserWarning, match=r"damaged vector \(bus\.jpg\); run `imgret check"):
        hits = Searcher(index).search("a bus", k=6)
    assert "bus.jpg" not in [h.relpath for h in hits] and all(h.score <= 1.0001 for h in hits)
    report = build_index(small_gallery, index, text_only, progress=False)
    assert report.repaired == 1 and "1 damaged vector(s) repaired" in report.summary()
    with Store.open(index) as store:
        np.testing.assert_allclose(store.rows(["bus.jpg"])[0].vector, good["bus.jpg"], atol=1e-5)
    assert len(Searcher(index)) == 6


def test_a_short_vector_blob_is_noticed_by_the_next_build(text_only, small_gallery, tmp_path):
    """It used to make the index unsearchable while the build said "unchanged"."""
    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    _damage(index, "zidane.jpg", b"\x01\x02\x03")
    report = build_index(small_gallery, index, text_only, progress=False)
    assert (report.repaired, report.unchanged) == (1, 5)
    with Store.open(index) as store:
        paths, matrix = store.vectors(text_only.embedder)
    assert len(paths) == 6 and np.isfinite(matrix).all()


def test_rehash_finds_content_changed_under_the_same_size_and_mtime(
    text_only, small_gallery, tmp_path
):
    from imgret.index.info import index_info

    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    with Store.open(index) as store:
        assert index_info(store).last_full_check is None
    photo = small_gallery / "bus.jpg"
    stat = photo.stat()
    data = bytearray(photo.read_bytes())
    data[-3] ^= 0xFF  # same size; JPEG decoders ignore the bytes at the very end
    photo.write_bytes(bytes(data))
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert build_index(small_gallery, index, text_only, progress=False).changed == 0
    started = time.time()
    report = build_index(small_gallery, index, text_only, progress=False, rehash=True)
    assert (report.changed, report.unchanged) == (
        1,
        5,
    ) and "every file was hashed" in report.summary()
    with Store.open(index) as store:
        assert index_info(store).last_full_check >= started
        assert "imgret index --rehash" in index_info(store).summary()
