"""Photo metadata from EXIF (date, camera, GPS) and offline place names, on real photos."""

from __future__ import annotations

import importlib.util

import pytest
from PIL import ExifTags, Image

from imgret.metadata import (
    PhotoMetadata,
    Place,
    look_up_places,
    metadata_key,
    read_metadata,
)
from tests.support.exif_photos import write_with_exif
from tests.support.galleries import coco_images
from tests.support.shared_data import COCO_SAMPLE, needs_shared

pytestmark = needs_shared(COCO_SAMPLE)
needs_places = pytest.mark.skipif(
    importlib.util.find_spec("reverse_geocode") is None,
    reason="place names need the places extra (pip install reverse_geocode)",
)


def test_exif_date_camera_and_gps_are_read(tmp_path):
    photo = write_with_exif(
        coco_images(1)[0],
        tmp_path / "paris.jpg",
        taken="2019:06:15 12:30:05",
        make="Canon\x00",
        model=" Canon EOS 5D  Mark IV ",
        position=(48.8566, -2.3522),
    )
    facts = read_metadata(photo)
    assert (facts.taken, facts.camera_make, facts.camera_model) == (
        "2019-06-15T12:30:05",
        "Canon",
        "Canon EOS 5D Mark IV",
    )
    assert facts.latitude == pytest.approx(48.8566, abs=1e-4)
    assert facts.longitude == pytest.approx(-2.3522, abs=1e-4)


def test_png_exif_and_the_plain_date_tag(tmp_path):
    source = coco_images(1)[0]
    exif = Image.Exif()
    exif[ExifTags.Base.DateTime] = "2021:03:04 05:06:07"
    target = tmp_path / "shot.png"
    Image.open(source).save(target, exif=exif)
    assert read_metadata(target) == PhotoMetadata(taken="2021-03-04T05:06:07")


@pytest.mark.parametrize(
    "taken", ["0000:00:00 00:00:00", "    :  :     :  :  ", "2019-06-15", "yesterday"]
)
def test_unset_or_malformed_dates_are_unknown(tmp_path, taken):
    photo = write_with_exif(coco_images(1)[0], tmp_path / "a.jpg", taken=taken)
    assert read_metadata(photo).taken == ""


def test_a_photo_without_exif_or_a_broken_file_has_none(tmp_path):
    plain = tmp_path / "plain.jpg"
    Image.open(coco_images(1)[0]).save(plain)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00garbage")
    assert read_metadata(plain) == read_metadata(broken) == PhotoMetadata()
    assert read_metadata(tmp_path / "missing.jpg") == PhotoMetadata()


def test_no_fix_is_no_position(tmp_path):
    photo = write_with_exif(coco_images(1)[0], tmp_path / "a.jpg", position=(0.0, 0.0))
    assert (read_metadata(photo).latitude, read_metadata(photo).longitude) == (None, None)


@needs_places
def test_places_are_named_offline():
    places = look_up_places([(48.8566, 2.3522), (40.7128, -74.0060), (-33.8688, 151.2093)])
    assert places == [
        Place("Paris", "Île-de-France", "France"),
        Place("New York City", "New York", "United States"),
        Place("Sydney", "New South Wales", "Australia"),
    ]
    assert metadata_key().endswith("+places")
