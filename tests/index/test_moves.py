"""An index follows its gallery: a renamed file keeps its analysis, vector and note without a
vision model; a moved gallery (alone, or with its index) keeps every row and note."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from imgret.errors import GalleryMismatchError
from imgret.index.build import build_index
from imgret.index.notes import set_notes
from imgret.index.store import Store
from imgret.retrieval.searcher import Searcher
from tests.support.galleries import make_small_gallery


def _rows(index) -> dict:
    with Store.open(index, readonly=True) as store:
        return {row.path: row for row in store.rows()}, store.notes()


def test_a_renamed_file_takes_over_its_row_and_note_without_a_vision_model(
    tiny_config, small_gallery, tmp_path, monkeypatch
):
    index = tmp_path / "index"
    build_index(small_gallery, index, tiny_config, progress=False)
    set_notes(index, {"bus.jpg": "school trip to London"})
    before, _ = _rows(index)
    (small_gallery / "trips").mkdir()
    (small_gallery / "bus.jpg").rename(small_gallery / "trips" / "london.jpg")
    shutil.copy(small_gallery / "zidane.jpg", small_gallery / "copy-of-zidane.jpg")

    from imgret.index import engines

    analysed = []
    real = engines.InProcessEngine.analyse

    def counting(self, gallery, paths, config):
        analysed.extend(paths)
        return real(self, gallery, paths, config)

    monkeypatch.setattr(engines.InProcessEngine, "analyse", counting)
    report = build_index(small_gallery, index, tiny_config, progress=False)
    assert (report.renamed, report.removed, report.new) == (1, 0, 1)
    assert analysed == ["copy-of-zidane.jpg"]  # the copy's original is still there
    after, notes = _rows(index)
    moved = after["trips/london.jpg"]
    assert "bus.jpg" not in after and notes == {"trips/london.jpg": "school trip to London"}
    assert moved.caption == before["bus.jpg"].caption and moved.counts == before["bus.jpg"].counts
    np.testing.assert_array_equal(moved.vector, before["bus.jpg"].vector)
    hit = Searcher(index).search("school trip to London", k=1)[0]
    assert hit.path == small_gallery / "trips" / "london.jpg"


def test_a_project_folder_moved_whole_still_shows_the_right_files(text_only, tmp_path):
    project = tmp_path / "project"
    make_small_gallery(project / "gallery")
    build_index(project / "gallery", project / "index", text_only, progress=False)
    project.rename(tmp_path / "renamed-project")
    moved = tmp_path / "renamed-project"
    searcher = Searcher(moved / "index")
    assert searcher.gallery == moved / "gallery"
    assert all(hit.path.is_file() for hit in searcher.search("a photo", k=6))
    report = build_index(moved / "gallery", moved / "index", text_only, progress=False)
    assert (report.unchanged, report.moved_from) == (6, None)


def test_a_moved_gallery_is_followed_with_its_notes_and_vectors(text_only, small_gallery, tmp_path):
    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    set_notes(index, {"sub/" + next((small_gallery / "sub").iterdir()).name: "a note"})
    before, notes_before = _rows(index)
    new_home = tmp_path / "disk2" / "photos"
    new_home.parent.mkdir()
    shutil.move(small_gallery, new_home)
    with pytest.warns(UserWarning, match="is not there"):
        Searcher(index)
    report = build_index(new_home, index, text_only, progress=False)
    assert report.moved_from == small_gallery and report.unchanged == 6
    assert "the gallery moved from" in report.summary()
    after, notes_after = _rows(index)
    assert notes_after == notes_before
    for path, row in before.items():
        np.testing.assert_array_equal(after[path].vector, row.vector)
    assert Searcher(index).gallery == new_home


def test_another_gallery_is_refused_unless_it_is_said_to_be_the_moved_one(
    text_only, small_gallery, tmp_path
):
    index = tmp_path / "index"
    build_index(small_gallery, index, text_only, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(small_gallery / "bus.jpg", other / "bus.jpg")
    with pytest.raises(GalleryMismatchError, match="pass --moved") as refused:
        build_index(other, index, text_only, progress=False)
    assert "delete" not in str(refused.value)
    shutil.rmtree(small_gallery)  # gone, but `other` lacks most of its files: still refused
    with pytest.raises(GalleryMismatchError, match="is gone, and this folder lacks its files"):
        build_index(other, index, text_only, progress=False)
    report = build_index(other, index, text_only, progress=False, moved=True)
    assert (report.moved_from, report.unchanged, report.removed) == (small_gallery, 1, 5)
