"""after:/before:, camera:, place: and --sort date on real photos with EXIF written by the
test, and an index that gains photo metadata from the files alone, without any model."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest

import imgret.index.build as build
from imgret.config import Config
from imgret.index.build import build_index
from imgret.index.store import Store
from imgret.metadata import metadata_key
from imgret.retrieval.searcher import Searcher
from tests.support.exif_photos import write_with_exif
from tests.support.galleries import coco_images
from tests.support.shared_data import COCO_SAMPLE, NEEDS_MINILM, needs_shared

pytestmark = [
    needs_shared(COCO_SAMPLE),
    NEEDS_MINILM,
]
needs_places = pytest.mark.skipif(
    importlib.util.find_spec("reverse_geocode") is None,
    reason="place names need the places extra (pip install reverse_geocode)",
)
MINILM = Config(captioner=None, detector=None, topics=None, embedder="minilm", device="cpu")
PHOTOS = {
    "trips/paris.jpg": dict(
        taken="2019:06:15 12:30:00",
        make="Canon",
        model="Canon EOS 5D Mark IV",
        position=(48.8566, 2.3522),
    ),
    "trips/new-york.jpg": dict(
        taken="2020:01:02 08:00:00",
        make="NIKON CORPORATION",
        model="NIKON D750",
        position=(40.7128, -74.0060),
    ),
    "zurich.jpg": dict(
        taken="2018:12:31 23:59:59", make="Apple", model="iPhone 12", position=(47.3769, 8.5417)
    ),
    "sydney.png": dict(taken="2019:12:31 10:00:00", position=(-33.8688, 151.2093)),
    "plain.jpg": {},
}


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photo-filters")
    for (name, exif), source in zip(PHOTOS.items(), coco_images(len(PHOTOS)), strict=True):
        write_with_exif(source, root / "gallery" / name, **exif)  # type: ignore[arg-type]
    build_index(root / "gallery", root / "index", MINILM, progress=False)
    return root / "index"


def found(searcher: Searcher, query: str, **options) -> list[str]:
    return [hit.relpath for hit in searcher.search(query, k=10, **options)]


def test_dates_filter_by_day_month_and_year(index):
    searcher = Searcher(index)
    assert set(found(searcher, "a photo after:2019")) == {
        "trips/paris.jpg",
        "trips/new-york.jpg",
        "sydney.png",
    }
    assert set(found(searcher, "a photo after:2019 before:2020")) == {
        "trips/paris.jpg",
        "sydney.png",
    }
    assert found(searcher, "a photo after:2019-06-16 before:2020-01-02") == ["sydney.png"]
    assert found(searcher, "a photo before:2019-01") == ["zurich.jpg"]
    assert found(searcher, "a photo after:2019-12-31 before:2020") == ["sydney.png"]
    # Undated photos never meet a date, and are all a negated date keeps besides.
    assert set(found(searcher, "a photo -after:2019")) == {"zurich.jpg", "plain.jpg"}


def test_camera_matches_words_of_make_and_model(index):
    searcher = Searcher(index)
    assert found(searcher, "a photo camera:canon") == ["trips/paris.jpg"]
    assert found(searcher, 'a photo camera:"eos 5d"') == ["trips/paris.jpg"]
    assert found(searcher, "a photo camera:nikon") == ["trips/new-york.jpg"]
    assert found(searcher, "a photo camera:iphone in:trips") == []
    assert set(found(searcher, "a photo -camera:canon")) == set(PHOTOS) - {"trips/paris.jpg"}


def test_sort_by_date_newest_first_undated_last(index):
    searcher = Searcher(index)
    assert found(searcher, "a photo", sort="date") == [
        "trips/new-york.jpg",
        "sydney.png",
        "trips/paris.jpg",
        "zurich.jpg",
        "plain.jpg",
    ]
    assert found(searcher, "ext:jpg", sort="date") == [
        "trips/new-york.jpg",
        "trips/paris.jpg",
        "zurich.jpg",
        "plain.jpg",
    ]
    assert found(searcher, "ext:jpg") == sorted(found(searcher, "ext:jpg"))
    hits = searcher.search("a photo", k=2, sort="date")
    assert [h.rank for h in hits] == [1, 2]
    best_two = {h.relpath for h in searcher.search("a photo", k=2)}
    assert {h.relpath for h in hits} == best_two  # the top k by score, then ordered by date
    hit = searcher.search("a photo camera:canon", k=1)[0]
    assert (hit.taken, hit.camera) == ("2019-06-15T12:30:00", "Canon EOS 5D Mark IV")


@needs_places
def test_place_matches_city_region_or_country_offline(index):
    searcher = Searcher(index)
    assert found(searcher, "a photo place:paris") == ["trips/paris.jpg"]
    assert found(searcher, "a photo place:france") == ["trips/paris.jpg"]
    assert found(searcher, 'a photo place:"new york"') == ["trips/new-york.jpg"]
    assert found(searcher, 'a photo place:"United States"') == ["trips/new-york.jpg"]
    assert found(searcher, "a photo place:zurich") == ["zurich.jpg"]  # Zürich: accents fold
    assert found(searcher, 'a photo place:"new south wales"') == ["sydney.png"]
    assert found(searcher, "a photo place:london") == []
    assert set(found(searcher, "a photo -place:france")) == set(PHOTOS) - {"trips/paris.jpg"}
    # Place names are not the image's words: "exact words" do not match them.
    assert found(searcher, '"france"') == []
    hit = searcher.search("a photo place:paris", k=1)[0]
    assert hit.place == "Paris, Île-de-France, France"
    assert "Paris" not in hit.description  # off by default: a filter first


@needs_places
def test_places_in_the_description_when_asked(tmp_path, index):
    with Store.open(index, readonly=True) as store:
        gallery = store.gallery
    assert gallery is not None
    config = Config(**{**MINILM.to_dict(), "describe_place": True})
    report = build_index(gallery, tmp_path / "index", config, progress=False)
    with Store.open(tmp_path / "index", readonly=True) as store:
        described = {row.path: row.description for row in store.rows()}
    assert report.new == len(PHOTOS)
    assert described["trips/paris.jpg"].endswith("taken in Paris, Île-de-France, France.")
    assert "taken in" not in described["plain.jpg"]


def test_an_index_gains_photo_metadata_from_the_files_alone(tmp_path, index, monkeypatch):
    import shutil

    shutil.copytree(index, tmp_path / "index")
    with sqlite3.connect(tmp_path / "index" / "index.sqlite3") as db:  # as format 3 left it
        db.execute("UPDATE images SET taken = '', camera_make = '', metadata_key = ''")
    with Store.open(index, readonly=True) as store:
        gallery = store.gallery
        before = {row.path: row for row in store.rows()}

    def no_models(*args, **kwargs):
        raise AssertionError("reading photo metadata must not load a model")

    monkeypatch.setattr(build, "load_stages", no_models)
    report = build_index(gallery, tmp_path / "index", progress=False)  # type: ignore[arg-type]
    assert (report.metadata, report.new, report.reembedded, report.unchanged) == (5, 0, 0, 5)
    assert "photo metadata read for 5" in report.summary()
    with Store.open(tmp_path / "index", readonly=True) as store:
        after = {row.path: row for row in store.rows()}
    for path, row in after.items():
        assert (row.taken, row.camera_make, row.place) == (
            before[path].taken,
            before[path].camera_make,
            before[path].place,
        )
        assert row.metadata_key == metadata_key()
        assert (row.vector == before[path].vector).all()
    again = build_index(gallery, tmp_path / "index", progress=False)  # type: ignore[arg-type]
    assert (again.metadata, again.unchanged) == (0, 5)


def test_a_searcher_sees_metadata_written_after_it_loaded(tmp_path, index):
    """Dates and cameras are held in memory; a metadata-only write (no vector changes) is
    seen by the next search all the same."""
    import dataclasses
    import shutil

    copy = Path(shutil.copytree(index, tmp_path / "index"))
    searcher = Searcher(copy)
    assert found(searcher, "a photo camera:canon") == ["trips/paris.jpg"]
    with Store.open(copy) as store:
        (row,) = store.rows(["plain.jpg"])
        generation = store.vectors_generation()
        store.update_metadata([dataclasses.replace(row, camera_make="Canon", taken="2031-01-01")])
        assert store.vectors_generation() == generation  # the vectors are as they were
    assert set(found(searcher, "a photo camera:canon")) == {"trips/paris.jpg", "plain.jpg"}
    assert found(searcher, "a photo after:2030") == ["plain.jpg"]
