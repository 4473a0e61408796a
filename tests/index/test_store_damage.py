"""A damaged, full or misplaced index: one line that names the file and what to do, never a
traceback, and a build keeps what it had committed (and mends what it can)."""

from __future__ import annotations

import os
import sqlite3

import pytest

from imgret.errors import BadInputError, IndexDamagedError, IndexWriteError
from imgret.index import store as store_module
from imgret.index.build import build_index
from imgret.index.info import index_info
from imgret.index.notes import set_notes
from imgret.index.store import DB_NAME, Store
from imgret.retrieval.searcher import Searcher


@pytest.fixture
def built(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    set_notes(index, {"bus.jpg": "a red bus"})
    return index


def _sql(index, statement: str) -> None:
    with sqlite3.connect(index / DB_NAME) as db:
        db.execute(statement)


def test_a_full_disk_stops_the_build_with_one_line_and_keeps_its_batches(
    text_only, small_gallery, tmp_path, monkeypatch
):
    connect = sqlite3.connect

    def small_disk(*args, **kwargs):  # SQLite's own SQLITE_FULL, after a few pages
        connection = connect(*args, **kwargs)
        connection.execute("PRAGMA max_page_count = 24")
        return connection

    monkeypatch.setattr(store_module.sqlite3, "connect", small_disk)
    index = tmp_path / "index"
    config = text_only.__class__(**{**text_only.__dict__, "text_batch_size": 1, "batch_size": 1})
    with pytest.raises(IndexWriteError, match="is full; free some space") as failure:
        build_index(small_gallery, index, config, progress=False)
    assert str(index / DB_NAME) in str(failure.value) and "delete" not in str(failure.value)
    monkeypatch.undo()
    with Store.open(index, readonly=True) as store:
        kept = store.count()
    assert 0 < kept < 6
    report = build_index(small_gallery, index, config, progress=False)
    assert (report.new, report.unchanged) == (6 - kept, kept)


def test_a_malformed_page_is_named_with_sqlites_way_to_recover(built):
    size = (built / DB_NAME).stat().st_size
    with open(built / DB_NAME, "r+b") as file:
        file.seek(2 * 4096)
        file.write(os.urandom(size - 2 * 4096))
    for action in (
        lambda: Searcher(built),
        lambda: index_info(Store.open(built, readonly=True)),
    ):
        with pytest.raises(IndexDamagedError, match=r"is damaged \(.*malformed.*\.recover"):
            action()


def test_a_dropped_table_is_reported_and_the_next_build_recreates_it(
    built, text_only, small_gallery
):
    _sql(built, "DROP TABLE images")
    with pytest.raises(IndexDamagedError, match="lost a table .*imgret index GALLERY"):
        Searcher(built)
    with pytest.warns(UserWarning, match="recreated the lost table"):
        report = build_index(small_gallery, built, text_only, progress=False)
    assert report.new == 6
    hits = Searcher(built).search("a red bus", k=1)
    assert hits[0].relpath == "bus.jpg" and hits[0].notes == "a red bus"


def test_a_damaged_meta_entry_is_named_and_a_build_writes_it_anew(built, text_only, small_gallery):
    _sql(built, "UPDATE meta SET value = '{\"broken' WHERE key = 'config'")
    with pytest.raises(IndexDamagedError, match="meta entry 'config' is not JSON"):
        Searcher(built)
    with pytest.warns(UserWarning, match="dropped the damaged meta entries config"):
        report = build_index(small_gallery, built, text_only, progress=False)
    assert report.unchanged == 6
    assert len(Searcher(built)) == 6


@pytest.mark.parametrize("name", ["a-file", DB_NAME])
def test_an_index_option_naming_a_file_says_to_give_a_folder(built, tmp_path, name):
    given = built / DB_NAME if name == DB_NAME else tmp_path / name
    given.touch()
    for action in (
        lambda: Store.open(given, readonly=True),
        lambda: Store.open(given, create=True),
    ):
        with pytest.raises(BadInputError, match="is a file, not a folder") as failure:
            action()
        if name == DB_NAME:
            assert f"--index {built}" in str(failure.value)


def test_an_index_folder_that_cannot_be_made_is_one_line(tmp_path, text_only, small_gallery):
    (tmp_path / "plain").touch()
    with pytest.raises(IndexWriteError, match="cannot create the index folder"):
        build_index(small_gallery, tmp_path / "plain" / "index", text_only, progress=False)
