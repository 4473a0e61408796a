"""The memory-mapped copy of the search vectors: current with the store, or not used."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from imgret.index.info import index_info
from imgret.index.search_cache import _save, cache_folder, load_search_vectors
from imgret.index.store import DB_NAME, CheckedVectors, Store
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
    _save(old.folder, old.generation, CheckedVectors(old.relpaths, np.asarray(old.matrix), []))
    assert load_search_vectors(index, "e1").relpaths == ["a.jpg", "b.jpg"]
    assert (new.folder / f"vectors-{new.generation}.npy").exists()


def test_an_index_from_before_the_token_gets_one_from_its_first_writer(tmp_path):
    index = _index(tmp_path, [stored_row("a.jpg", 1)])
    with sqlite3.connect(index / DB_NAME) as db:
        db.execute("DELETE FROM meta WHERE key = 'vectors_generation'")
    assert load_search_vectors(index, "e1").folder is None
    Store.open(index).close()
    assert load_search_vectors(index, "e1").folder is not None


def _replace_vectors(loaded, matrix) -> None:
    np.save(loaded.folder / f"vectors-{loaded.generation}.npy", matrix)


@pytest.mark.parametrize(
    "damage", ["same shape, other numbers", "float64", "paths reordered", "a row changed"]
)
def test_a_cache_that_does_not_match_the_store_is_rebuilt(tmp_path, damage):
    """The file names carry the store's token, but a replaced file keeps the name."""
    index = _index(tmp_path, [stored_row(f"{i:02}.jpg", i) for i in range(40)])
    first = load_search_vectors(index, "e1")
    truth = np.array(first.matrix)
    listing = first.folder / f"paths-{first.generation}.json"
    if damage == "same shape, other numbers":
        other = np.random.default_rng(7).normal(size=truth.shape).astype(np.float32)
        _replace_vectors(first, other / np.linalg.norm(other, axis=1, keepdims=True))
    elif damage == "float64":
        _replace_vectors(first, truth.astype(np.float64))
    elif damage == "paths reordered":
        data = json.loads(listing.read_text())
        listing.write_text(json.dumps({**data, "paths": data["paths"][::-1]}))
    else:
        changed = truth.copy()
        changed[0] = changed[1]
        _replace_vectors(first, changed)
    with pytest.warns(UserWarning, match="does not match the index"):
        again = load_search_vectors(index, "e1")
    assert again.relpaths == first.relpaths and again.generation == first.generation
    np.testing.assert_array_equal(again.matrix, truth)
    third = load_search_vectors(index, "e1")  # the rebuilt copy is used again, silently
    assert isinstance(third.matrix, np.memmap)
    np.testing.assert_array_equal(third.matrix, truth)


def test_damaged_vectors_are_left_out_and_listed(tmp_path):
    index = _index(tmp_path, [stored_row(f"{i}.jpg", i) for i in range(4)])
    with sqlite3.connect(index / DB_NAME) as db:
        garbage = np.full(8, 3e18, dtype=np.float32).tobytes()
        db.execute("UPDATE images SET vector = ? WHERE path = '1.jpg'", (garbage,))
        db.execute("UPDATE images SET vector = ? WHERE path = '2.jpg'", (b"\x00" * 5,))
        nan = np.full(8, np.nan, dtype=np.float32).tobytes()
        db.execute("UPDATE images SET vector = ? WHERE path = '3.jpg'", (nan,))
    loaded = load_search_vectors(index, "e1")
    assert loaded.relpaths == ["0.jpg"] and loaded.damaged == ["1.jpg", "2.jpg", "3.jpg"]
    cached = load_search_vectors(index, "e1")  # the copy remembers what it left out
    assert isinstance(cached.matrix, np.memmap) and cached.damaged == loaded.damaged


def test_a_cache_of_the_previous_layout_is_written_anew_without_a_warning(tmp_path, recwarn):
    index = _index(tmp_path, [stored_row("a.jpg", 1), stored_row("b.jpg", 2)])
    first = load_search_vectors(index, "e1")
    listing = first.folder / f"paths-{first.generation}.json"
    listing.write_text(json.dumps(first.relpaths))  # as the release before wrote it
    assert load_search_vectors(index, "e1").relpaths == ["a.jpg", "b.jpg"]
    assert json.loads(listing.read_text())["paths"] == ["a.jpg", "b.jpg"]
    assert not [w for w in recwarn if "search cache" in str(w.message)]
