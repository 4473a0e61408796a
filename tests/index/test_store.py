"""The SQLite index: round trips, atomic batches, formats, notes, skipped files, export, lock."""

from __future__ import annotations

import json
import sqlite3
import threading

import numpy as np
import pytest

from imgret.config import Config
from imgret.errors import (
    EmptyIndexError,
    IndexBusyError,
    IndexDamagedError,
    IndexFormatError,
    IndexNotFoundError,
)
from imgret.index.export import export_arrays
from imgret.index.info import index_info
from imgret.index.store import (
    COUNTS_TABLE,
    DB_NAME,
    FORMAT_VERSION,
    TEXT_TABLE,
    ImageRow,
    Skipped,
    Store,
    writer_lock,
)
from tests.support.rows import stored_row


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "index", create=True) as opened:
        yield opened


def test_rows_round_trip(store):
    rows = [stored_row("b/2.jpg", 2), stored_row("a.jpg", 1)]
    store.upsert(rows)
    back = store.rows()
    assert [r.path for r in back] == ["a.jpg", "b/2.jpg"]
    for got, want in zip(back, sorted(rows, key=lambda r: r.path), strict=True):
        np.testing.assert_array_equal(got.vector, want.vector)
        assert got.vector.dtype == np.float32
        got.vector = want.vector
        assert got == want
    assert [r.path for r in store.rows(["b/2.jpg", "missing", "a.jpg"])] == ["b/2.jpg", "a.jpg"]
    state = store.states()["a.jpg"]
    assert (state.size, state.sha256, state.notes) == (101, f"{1:064x}", "a note")


def test_file_is_sqlite_in_wal_mode_and_reopens(tmp_path, store):
    store.upsert([stored_row("a.jpg", 1)])
    store.close()
    connection = sqlite3.connect(tmp_path / "index" / DB_NAME)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
    with Store.open(tmp_path / "index") as again:
        assert again.count() == 1
        assert again.meta()["format_version"] == FORMAT_VERSION


def test_a_failed_batch_writes_nothing(store):
    store.upsert([stored_row("kept.jpg", 1)])
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.upsert([stored_row("lost1.jpg", 2), stored_row("lost2.jpg", 3)])
        store.delete(["kept.jpg"])
        raise RuntimeError("boom")
    assert [r.path for r in store.rows()] == ["kept.jpg"]
    with pytest.raises(ValueError, match="vector"):
        store.upsert([stored_row("ok.jpg", 4), ImageRow("novector.jpg", 1, 1, "", 1, 1)])
    assert store.count() == 1


def test_missing_index_says_to_build_one(tmp_path):
    with pytest.raises(IndexNotFoundError, match="imgret index"):
        Store.open(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_newer_format_is_refused_clearly(tmp_path, store):
    store.set_meta(format_version=FORMAT_VERSION + 1)
    store.close()
    with pytest.raises(IndexFormatError, match="newer imgret"):
        Store.open(tmp_path / "index")


def test_foreign_files_are_refused_clearly(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / DB_NAME).write_bytes(b"not a database at all, " * 100)
    with pytest.raises(IndexFormatError, match="not an imgret index"):
        Store.open(tmp_path / "junk")
    (tmp_path / "other").mkdir()
    sqlite3.connect(tmp_path / "other" / DB_NAME).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(IndexFormatError, match="not an imgret index"):
        Store.open(tmp_path / "other")


def test_meta_and_config_round_trip(store):
    config = Config(captioner=None, embedder="minilm", batch_size=3)
    store.set_meta(gallery="/photos", config=config.to_dict(), dimension=384)
    assert store.config() == config
    assert str(store.gallery) == "/photos"
    assert store.meta()["dimension"] == 384


def test_notes_are_kept_apart_from_rows(store):
    store.upsert([stored_row("a.jpg", 1)])
    store.set_notes({"a.jpg": "  Nairobi park  ", "later.jpg": "not indexed yet"})
    store.delete(["a.jpg"])
    assert store.notes() == {"a.jpg": "Nairobi park", "later.jpg": "not indexed yet"}
    store.set_notes({"a.jpg": ""})
    assert store.notes() == {"later.jpg": "not indexed yet"}


def test_skipped_files_are_remembered_until_indexed(store):
    store.upsert([stored_row("a.jpg", 1)])
    store.mark_skipped([Skipped("a.jpg", 5, 6, "corrupt"), Skipped("b.jpg", 7, 8, "empty")])
    assert store.count() == 0
    assert store.skipped()["b.jpg"] == Skipped("b.jpg", 7, 8, "empty")
    store.upsert([stored_row("b.jpg", 2)])
    assert set(store.skipped()) == {"a.jpg"}
    store.forget_skipped(["a.jpg"])
    assert store.skipped() == {}


def test_vectors_of_one_embedder(store):
    store.upsert(
        [
            stored_row("a.jpg", 1),
            stored_row("c.jpg", 3),
            stored_row("b.jpg", 2, embedder="e2", dim=4),
        ]
    )
    paths, matrix = store.vectors("e1")
    assert paths == ["a.jpg", "c.jpg"]
    assert matrix.shape == (2, 8) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-6)
    assert store.vectors("e3")[0] == []
    # Without an embedder, rows of another size are not of the index's dimension: damaged
    # for this index, reported with the command that re-embeds them.
    with pytest.raises(IndexDamagedError, match=r"\(b\.jpg\); run `imgret check --repair"):
        store.vectors()


def test_export_writes_plain_arrays(tmp_path, store):
    config = Config(captioner=None, detector=None, topics=None, embedder="e1")
    store.set_meta(gallery=str(tmp_path / "photos"), config=config.to_dict())
    with pytest.raises(EmptyIndexError, match="imgret index"):
        export_arrays(store, tmp_path / "out")
    rows = [
        stored_row("z.jpg", 1),
        stored_row("sub/a.jpg", 2),
        stored_row("old.jpg", 3, embedder="e0"),
    ]
    store.upsert(rows)
    written = export_arrays(store, tmp_path / "out")
    matrix = np.load(written[0], allow_pickle=False)
    paths = json.loads(written[1].read_text())
    assert [p.name for p in written] == ["feature_matrix.npy", "paths.json"]
    assert paths == [(tmp_path / "photos" / p).as_posix() for p in ("sub/a.jpg", "z.jpg")]
    np.testing.assert_array_equal(matrix, np.stack([rows[1].vector, rows[0].vector]))


def test_info_summarises(store):
    config = Config(captioner=None, detector=None, topics=None, embedder="e1")
    store.set_meta(gallery="/g", config=config.to_dict(), dimension=8)
    store.upsert([stored_row("a.jpg", 1), stored_row("b.jpg", 2, embedder="e0")])
    store.set_notes({"a.jpg": "x"})
    info = index_info(store)
    assert (info.images, info.embedded, info.notes, info.dimension) == (2, 1, 1, 8)
    assert "1 searchable" in info.summary() and "/g" in info.summary()


def test_writer_lock_is_exclusive(tmp_path):
    held, release = threading.Event(), threading.Event()

    def hold():
        with writer_lock(tmp_path / "index"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    with pytest.raises(IndexBusyError, match="--wait SECONDS"), writer_lock(tmp_path / "index"):
        pass
    threading.Timer(0.3, release.set).start()
    with writer_lock(tmp_path / "index", wait=10):
        assert release.is_set()
    holder.join()


def test_vectors_generation_changes_only_when_vectors_or_paths_do(store):
    seen = [store.vectors_generation()]

    def changed() -> bool:
        seen.append(store.vectors_generation())
        return seen[-1] != seen[-2]

    assert seen[0] is not None
    store.upsert([stored_row("a.jpg", 1), stored_row("b.jpg", 2)])
    assert changed()
    store.update_stats([("a.jpg", 1, 2)])
    store.set_notes({"a.jpg": "my dog"})
    store.upsert([])
    store.delete([])
    assert not changed()
    store.delete(["a.jpg"])
    assert changed()
    store.mark_skipped([Skipped("b.jpg", 1, 2, "broken")])
    assert changed()


def test_the_full_text_index_follows_upserts_replacements_skips_and_deletes(store):
    def matching(phrase: str) -> list[str]:
        select = f"SELECT rowid FROM {TEXT_TABLE} WHERE {TEXT_TABLE} MATCH ?"
        paths = {rowid: path for path, rowid in store.rowids().items()}
        return sorted(paths[r] for r in store.rowids_of(select, [f'"{phrase}"']))

    first, second = stored_row("trip/a.jpg", 1), stored_row("b.jpg", 2)
    first.description, second.notes = "a red bus in London", "Café by the sea"
    store.upsert([first, second])
    assert matching("red bus") == ["trip/a.jpg"]
    assert matching("cafe") == matching("CAFÉ") == ["b.jpg"]
    assert matching("trip") == ["trip/a.jpg"]  # the path is text too
    assert matching("stop") == ["b.jpg", "trip/a.jpg"]  # text read in the image
    first.description = "a green tram"
    store.upsert([first])  # INSERT OR REPLACE: the old words must go with the old row
    assert (matching("red bus"), matching("green tram")) == ([], ["trip/a.jpg"])
    with store.transaction():
        store._db.execute("UPDATE images SET notes = 'night train' WHERE path = 'b.jpg'")
    assert (matching("night train"), matching("cafe")) == (["b.jpg"], [])
    store.mark_skipped([Skipped("b.jpg", 1, 2, "corrupt")])
    store.delete(["trip/a.jpg"])
    assert matching("stop") == []
    (count,) = store._db.execute(f"SELECT COUNT(*) FROM {TEXT_TABLE}").fetchone()
    assert count == 0


def test_the_counts_table_follows_every_write_and_leaves_out_unsure_classes(store):
    def counted() -> list[tuple]:
        rows = store._db.execute(f"SELECT image, label, count FROM {COUNTS_TABLE}").fetchall()
        paths = {rowid: path for path, rowid in store.rowids().items()}
        return sorted((paths[image], label, n) for image, label, n in rows)

    first, second = stored_row("a.jpg", 2), stored_row("b.jpg", 3)
    first.counts, second.counts = {"Person": 2, "dog": 0}, {"cat": 1}
    store.upsert([first, second])
    assert counted() == [("a.jpg", "person", 2), ("b.jpg", "cat", 1)]
    first.counts = {"bus": 1}
    store.upsert([first])
    assert counted() == [("a.jpg", "bus", 1), ("b.jpg", "cat", 1)]
    store.delete(["b.jpg"])
    assert counted() == [("a.jpg", "bus", 1)]
