"""User notes: kept apart, survive re-indexing, CSV import, re-embed only what they touch."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from imgret.config import Config
from imgret.errors import IndexBusyError, IndexNotFoundError
from imgret.index.build import build_index
from imgret.index.notes import read_notes_csv, set_notes
from imgret.index.store import Store, writer_lock
from imgret.retrieval.searcher import Searcher


def _vectors(index) -> dict[str, np.ndarray]:
    with Store.open(index) as store:
        return {row.path: row.vector.copy() for row in store.rows()}


def test_a_note_makes_its_image_the_best_hit(small_gallery, tmp_path):
    config = Config(captioner=None, detector=None, topics=None, embedder="minilm", device="cpu")
    index = tmp_path / "index"
    build_index(small_gallery, index, config, progress=False)
    assert set_notes(index, {"bus.jpg": "red double-decker bus"}) == 1
    hits = Searcher(index).search("a bus", k=3)
    assert hits[0].relpath == "bus.jpg"
    assert hits[0].notes == "red double-decker bus"
    assert "red double-decker bus" in hits[0].description
    assert hits[0].score > hits[1].score + 0.2


def test_notes_round_trip(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    later = small_gallery / "sub" / "later.jpg"
    build_index(small_gallery, index, text_only, progress=False)
    before = _vectors(index)

    touched = {"bus.jpg": "a red bus", str(small_gallery / "zidane.jpg"): "two men"}
    assert set_notes(index, {**touched, "sub/later.jpg": "added later"}) == 2
    after = _vectors(index)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed == {"bus.jpg", "zidane.jpg"}
    assert set_notes(index, {"bus.jpg": "a red bus"}) == 0  # same text: nothing to redo

    report = build_index(small_gallery, index, text_only, progress=False)
    assert (report.reembedded, report.unchanged) == (0, 6)
    shutil.copy(small_gallery / "bus.jpg", later)
    report = build_index(small_gallery, index, text_only, progress=False)
    assert report.new == 1
    with Store.open(index) as store:
        rows = {row.path: row for row in store.rows()}
        assert store.notes()["zidane.jpg"] == "two men"
    assert rows["bus.jpg"].notes == "a red bus" and "a red bus" in rows["bus.jpg"].description
    assert rows["sub/later.jpg"].description.endswith("added later.")

    csv_file = tmp_path / "notes.csv"
    csv_file.write_text('path,text\nbus.jpg,""\nsub/later.jpg,"seen later, in the sub folder"\n')
    assert set_notes(index, read_notes_csv(csv_file)) == 2
    with Store.open(index) as store:
        rows = {row.path: row for row in store.rows()}
        assert "bus.jpg" not in store.notes()
    assert rows["bus.jpg"].notes == "" and "red bus" not in rows["bus.jpg"].description
    assert rows["sub/later.jpg"].notes == "seen later, in the sub folder"
    assert np.array_equal(rows["zidane.jpg"].vector, _vectors(index)["zidane.jpg"])


def test_notes_need_paths_inside_the_gallery_and_the_lock(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    with pytest.raises(IndexNotFoundError, match="imgret index"):
        set_notes(index, {"bus.jpg": "x"})
    assert not index.exists()
    build_index(small_gallery, index, text_only, progress=False)
    with pytest.raises(ValueError, match="not inside the indexed gallery"):
        set_notes(index, {str(tmp_path / "elsewhere.jpg"): "x"})
    with pytest.raises(ValueError, match="not inside the indexed gallery"):
        set_notes(index, {"../outside.jpg": "x"})
    with writer_lock(index), pytest.raises(IndexBusyError, match="--wait"):
        set_notes(index, {"bus.jpg": "x"})


def test_read_notes_csv(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text('a.jpg,first\n\nsub/b.jpg,"with, comma"\na.jpg,second\n', encoding="utf-8")
    assert read_notes_csv(plain) == {"a.jpg": "second", "sub/b.jpg": "with, comma"}
    bad = tmp_path / "bad.csv"
    bad.write_text("path,text\na.jpg,one,two\n")
    with pytest.raises(ValueError, match="row 2: expected two columns"):
        read_notes_csv(bad)
    with pytest.raises(FileNotFoundError, match="cannot read the notes file"):
        read_notes_csv(tmp_path / "missing.csv")


def test_rerunning_an_interrupted_note_finishes_it(text_only, small_gallery, tmp_path, monkeypatch):
    """Ctrl-C (or kill -9) after the note was saved, before the image was re-embedded."""
    import imgret.index.notes as notes_module

    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    before = _vectors(index)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(notes_module, "reembed", interrupted)
        with pytest.raises(KeyboardInterrupt):
            set_notes(index, {"bus.jpg": "a red double-decker bus"})
    with Store.open(index) as store:
        assert store.notes() == {"bus.jpg": "a red double-decker bus"}
    assert set_notes(index, {"bus.jpg": "a red double-decker bus"}) == 1
    after = _vectors(index)
    assert not np.allclose(after["bus.jpg"], before["bus.jpg"])
    with Store.open(index) as store:
        assert store.rows(["bus.jpg"])[0].notes == "a red double-decker bus"
    assert set_notes(index, {"bus.jpg": "a red double-decker bus"}) == 0  # nothing left to do
