"""Thumbnails: made once, upright, RGB, beside the index or in the user's cache folder."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from imgret.errors import BadImageError
from imgret.serve.thumbnails import FOLDER, Thumbnails, cache_root
from tests.support.galleries import coco_images
from tests.support.shared_data import COCO_SAMPLE, needs_shared


@needs_shared(COCO_SAMPLE)
def test_a_thumbnail_is_made_once_and_kept_beside_the_index(tmp_path):
    (photo,) = coco_images(1)
    thumbnails = Thumbnails(tmp_path)
    made = thumbnails.path(photo, "abc")
    assert made == tmp_path / FOLDER / "abc-320.jpg"
    with Image.open(made) as small, Image.open(photo) as big:
        assert small.format == "JPEG" and max(small.size) == 320
        assert small.size[0] / small.size[1] == pytest.approx(big.size[0] / big.size[1], abs=0.01)
    stamp = made.stat().st_mtime_ns
    assert thumbnails.path(photo, "abc") == made and made.stat().st_mtime_ns == stamp
    assert not list((tmp_path / FOLDER).glob(".*.tmp"))


def test_exif_orientation_and_transparency_are_applied(tmp_path):
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    Image.new("RGB", (400, 200), "red").save(rotated, exif=exif)
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (100, 100), (0, 0, 0, 0)).save(clear)
    thumbnails = Thumbnails(tmp_path / "index")
    with Image.open(thumbnails.path(rotated, "r")) as small:
        assert small.size == (160, 320)
    with Image.open(thumbnails.path(clear, "c")) as small:
        assert small.mode == "RGB" and small.getpixel((50, 50)) == pytest.approx((255,) * 3, abs=2)


def test_a_broken_file_is_a_bad_image(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(BadImageError, match="cannot make a thumbnail"):
        Thumbnails(tmp_path / "index").path(broken, "b")


def test_an_index_folder_that_cannot_hold_thumbnails_uses_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    index = tmp_path / "index"
    index.mkdir()
    (index / FOLDER).write_text("a file where the folder would go")
    root = cache_root(index)
    assert root.is_relative_to(tmp_path / "cache" / "imgret" / FOLDER) and root.is_dir()
    assert cache_root(index) == root
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(index / FOLDER, other / FOLDER)
    assert cache_root(other) != root  # one folder per index
