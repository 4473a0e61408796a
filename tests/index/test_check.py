"""``imgret check``: SQLite's check, every vector, the search cache row for row, the files;
``--repair`` mends what the text stages can and names what needs ``imgret index``."""

from __future__ import annotations

import json
import sqlite3

import numpy as np

from imgret.cli import main
from imgret.index.build import build_index
from imgret.index.check import check_index
from imgret.index.search_cache import cache_folder
from imgret.index.store import DB_NAME, Store


def test_a_sound_index_passes(text_only, small_gallery, tmp_path, capsys):
    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    report = check_index(index)
    assert report.ok and report.rows == 6
    assert main(["check", "--index", str(index)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_check_finds_each_problem_and_repair_mends_what_it_can(
    text_only, small_gallery, tmp_path, capsys
):
    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    with Store.open(index, readonly=True) as store:
        generation = store.vectors_generation()
        good = {row.path: row.vector.copy() for row in store.rows()}
    listing = cache_folder(index, text_only.embedder) / f"paths-{generation}.json"
    data = json.loads(listing.read_text())
    listing.write_text(json.dumps({**data, "paths": data["paths"][::-1]}))  # reordered
    with sqlite3.connect(index / DB_NAME) as db:  # bytes SQLite accepts, numbers that are not
        garbage = np.full(len(good["bus.jpg"]), 7e18, dtype=np.float32).tobytes()
        db.execute("UPDATE images SET vector = ? WHERE path = 'bus.jpg'", (garbage,))
        # A note saved by an `imgret note` killed before it re-embedded the image.
        db.execute("INSERT INTO notes (path, text, updated) VALUES ('zidane.jpg', 'two men', 0)")
    (small_gallery / "sub").rename(tmp_path / "moved-away")

    found = check_index(index)
    assert not found.ok and not found.integrity
    assert found.damaged == ["bus.jpg"] and found.pending == ["zidane.jpg"]
    assert "differs from the index" in found.cache
    assert found.missing and all(p.startswith("sub/") for p in found.missing)
    code = main(["check", "--index", str(index)])
    out = capsys.readouterr().out
    assert code == 1 and out.count("problem: ") == 4 and "imgret check --repair" in out

    code = main(["check", "--index", str(index), "--repair"])
    out = capsys.readouterr().out
    assert code == 1  # the files that are gone need `imgret index`
    assert "re-embedded 2 image(s)" in out and "rebuilt the search cache" in out
    assert out.count("problem: ") == 1 and "indexed file(s) are gone" in out
    again = check_index(index)
    assert not (again.damaged or again.pending or again.cache) and again.missing
    with Store.open(index, readonly=True) as store:
        rows = {row.path: row for row in store.rows()}
    np.testing.assert_allclose(rows["bus.jpg"].vector, good["bus.jpg"], atol=1e-5)
    assert rows["zidane.jpg"].notes == "two men"


def test_sqlite_damage_is_reported(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    with sqlite3.connect(index / DB_NAME) as db:
        db.execute("PRAGMA journal_mode = DELETE")  # everything in the main file
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'images_by_hash'"
        ).fetchone()[0]
    with open(index / DB_NAME, "r+b") as file:  # the hash index's page: a table stays readable
        file.seek((root - 1) * page_size + 8)
        file.write(b"\xff" * 64)
    report = check_index(index)
    assert report.integrity and "SQLite finds the index file damaged" in report.problems[0]
