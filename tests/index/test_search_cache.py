"""The memory-mapped copy of the search vectors: current with the store, or not used."""

from __future__ import annotations

import sqlite3

import numpy as np

from imgret.index.info import index_info
from imgret.index.search_cache import _save, cache_folder, load_search_vectors
from imgret.index.store import DB_NAME, Store
from tests.support.rows import stored_row


def _index(tmp_path, rows):
    with Store.open(tmp_path, create=True) as store:
        store.upsert(rows)
    return tmp_path


def test_second_load_maps_the_files_the_first_wrote(tmp_path):
    index = _index(
        tmp_path, [stored_row(f"{i}.jpg", i) for i in range(5)] + [stored_row("x.jpg", 9, "e2")]
    )
    first = load_search_vectors(index, "e1")
    second = load_search_vectors(index, "e1")
    with Store.open(index, readonly=True) as store:
        paths, matrix = store.vectors("e1")
    assert first.relpaths == second.relpaths == paths
    assert first.total == second.total == 6
    assert not isinstance(first.matrix, np.memmap) and isinstance(second.matrix, np.memmap)
    np.testing.assert_array_equal(second.matrix, matrix)
    other = load_search_vectors(index, "e2")
    assert other.relpaths == ["x.jpg"] and other.folder != first.folder


def test_a_write_makes_the_next_load_read_the_store_and_drop_stale_files(tmp_path):
    index = _index(
        tmp_path, [stored_row("a.jpg", 1), stored_row("b.jpg", 2), stored_row("x.jpg", 9, "e2")]
    )
    load_search_vectors(index, "e2")
    load_search_vectors(index, "e1")
    old = load_search_vectors(index, "e1")
    assert isinstance(old.matrix, np.memmap)
    with Store.open(index) as store:
        store.upsert([stored_row("c.jpg", 3)])
        store.delete(["a.jpg"])
    new = load_search_vectors(index, "e1")
    assert new.generation != old.generation
    assert new.relpaths == ["b.jpg", "c.jpg"]
    # The older mapping stays readable after its files are gone.
    np.testing.assert_array_equal(old.matrix[1], new.matrix[0])
    names = sorted(p.name for p in cache_folder(index, "e1").iterdir())
    assert names == [f"paths-{new.generation}.json", f"vectors-{new.generation}.npy"]
    assert not cache_folder(index, "e2").exists()


def test_info_counts_the_cache_apart_from_the_database(tmp_path):
    index = _index(tmp_path, [stored_row("a.jpg", 1), stored_row("b.jpg", 2)])
    with Store.open(index, readonly=True) as store:
        assert index_info(store).cache_bytes == 0
    loaded = load_search_vectors(index, "e1")
    files = list(loaded.folder.iterdir())
    with Store.open(index, readonly=True) as store:
        info = index_info(store)
    assert info.cache_bytes == sum(f.stat().st_size for f in files) > 2 * 8 * 4
    assert "search cache" in info.summary()


def test_derived_arrays_are_computed_once_per_generation(tmp_path):
    index = _index(tmp_path, [stored_row("a.jpg", 1), stored_row("b.jpg", 2)])
    calls = []

    def doubled(matrix):
        calls.append(1)
        return np.asarray(matrix) * 2

    first = load_search_vectors(index, "e1").derived("doubled", doubled)
    second = load_search_vectors(index, "e1").derived("doubled", doubled)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)


def test_an_unwritable_cache_leaves_vectors_in_memory(tmp_path):
    index = _index(tmp_path, [stored_row("a.jpg", 1)])
    (index / "search-cache").write_text("a file where the folder would be")
    loaded = load_search_vectors(index, "e1")
    assert loaded.relpaths == ["a.jpg"] and loaded.folder is None
    assert loaded.derived("same", lambda m: m) is loaded.matrix


def test_an_empty_index_writes_nothing(tmp_path):
    index = _index(tmp_path, [])
    loaded = load_search_vectors(index, "e1")
    assert loaded.relpaths == [] and loaded.total == 0
    assert not (index / "search-cache").exists()


def test_files_removed_under_a_search_fall_back_to_the_store(tmp_path):
    index = _index(tmp_path, [stored_row("a.jpg", 1), stored_row("b.jpg", 2)])
    first = load_search_vectors(index, "e1")
    (first.folder / f"vectors-{first.generation}.npy").unlink()
    again = load_search_vectors(index, "e1")
    assert again.relpaths == ["a.jpg", "b.jpg"] and again.generation == first.generation
    assert (first.folder / f"vectors-{first.generation}.npy").exists()


def test_a_search_of_an_older_generation_leaves_newer_files(tmp_path):
    index = _index(tmp_path, [stored_row("a.jpg", 1)])
    old = load_search_vectors(index, "e1")
    with Store.open(index) as store:
        store.upsert([stored_row("b.jpg", 2)])
    new = load_search_vectors(index, "e1")
    assert old.generation < new.generation
    # The slower search writes its older generation after the newer one was cached.
    _save(old.folder, old.generation, old.relpaths, np.asarray(old.matrix))
    assert load_search_vectors(index, "e1").relpaths == ["a.jpg", "b.jpg"]
    assert (new.folder / f"vectors-{new.generation}.npy").exists()


def test_an_index_from_before_the_token_gets_one_from_its_first_writer(tmp_path):
    index = _index(tmp_path, [stored_row("a.jpg", 1)])
    with sqlite3.connect(index / DB_NAME) as db:
        db.execute("DELETE FROM meta WHERE key = 'vectors_generation'")
    assert load_search_vectors(index, "e1").folder is None
    Store.open(index).close()
    assert load_search_vectors(index, "e1").folder is not None
