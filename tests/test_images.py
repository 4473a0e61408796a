"""Finding, hashing and decoding images: orientation, colour modes, bad files, decode-ahead."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgret import images
from imgret.errors import BadImageError
from imgret.images import decode_batches, file_sha256, find_images, load_image


def _write(path: Path, image: Image.Image, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save)
    return path


def test_find_images_is_recursive_case_blind_and_skips_hidden(tmp_path):
    red = Image.new("RGB", (4, 4), "red")
    wanted = [
        _write(tmp_path / "a.JPG", red, format="JPEG"),
        _write(tmp_path / "b.jpeg", red, format="JPEG"),
        _write(tmp_path / "deep" / "er" / "c.PnG", red, format="PNG"),
        _write(tmp_path / "d.webp", red, format="WEBP"),
        _write(tmp_path / "e.bmp", red, format="BMP"),
        _write(tmp_path / "f.Gif", red, format="GIF"),
        _write(tmp_path / "g.tif", red, format="TIFF"),
        _write(tmp_path / "h.TIFF", red, format="TIFF"),
    ]
    _write(tmp_path / ".hidden" / "x.jpg", red, format="JPEG")
    _write(tmp_path / ".y.jpg", red, format="JPEG")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "folder.jpg").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.jpg")
    assert find_images(tmp_path) == sorted(wanted)


def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (40, 20), "black")
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    path = _write(tmp_path / "rotated.jpg", stored, format="JPEG", exif=exif, quality=95)
    upright = load_image(path)
    assert upright.size == (20, 40)
    pixels = np.asarray(upright).astype(int)
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 1] < 60  # top is red
    assert pixels[35, 10].max() < 60  # bottom is black


@pytest.mark.parametrize(
    ("mode", "make", "suffix", "expected"),
    [
        ("RGBA", lambda: Image.new("RGBA", (8, 8), (255, 0, 0, 0)), ".png", (255, 255, 255)),
        ("RGBA half", lambda: Image.new("RGBA", (8, 8), (0, 0, 0, 128)), ".png", (127, 127, 127)),
        ("LA", lambda: Image.new("LA", (8, 8), (0, 0)), ".png", (255, 255, 255)),
        ("L", lambda: Image.new("L", (8, 8), 100), ".png", (100, 100, 100)),
        ("1", lambda: Image.new("1", (8, 8), 1), ".png", (255, 255, 255)),
        ("P", lambda: Image.new("RGB", (8, 8), (0, 0, 255)).convert("P"), ".gif", (0, 0, 255)),
        ("CMYK", lambda: Image.new("CMYK", (8, 8), (0, 255, 255, 0)), ".tif", (255, 0, 0)),
        ("I;16", lambda: Image.new("I;16", (8, 8), 32896), ".png", (128, 128, 128)),
        ("F", lambda: Image.new("F", (8, 8), 65535.0), ".tif", (255, 255, 255)),
    ],
)
def test_modes_become_rgb(tmp_path, mode, make, suffix, expected):
    path = _write(tmp_path / f"image{suffix}", make())
    image = load_image(path)
    assert image.mode == "RGB"
    assert tuple(np.asarray(image)[4, 4]) == pytest.approx(expected, abs=2)


def test_palette_transparency_composites_on_white(tmp_path):
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0] * 256)
    path = _write(tmp_path / "t.png", palette, transparency=0)
    assert tuple(np.asarray(load_image(path))[0, 0]) == (255, 255, 255)


def _bad_files(folder: Path) -> dict[str, Path]:
    good = _write(folder / "good.jpg", Image.new("RGB", (64, 64), "green"), format="JPEG")
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = folder / "text.jpg"
    text.write_text("this is not a picture\n")
    bomb = _write(folder / "bomb.png", Image.new("L", (2000, 1000)))
    return {"good": good, "empty": empty, "truncated": truncated, "text": text, "bomb": bomb}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty file"),
        ("truncated", "truncated"),
        ("text", "not an image"),
        ("bomb", "decompression bomb"),
    ],
)
def test_bad_files_raise_bad_image_error_with_reason(tmp_path, name, reason):
    files = _bad_files(tmp_path)
    with pytest.raises(BadImageError) as caught:
        load_image(files[name], max_megapixels=1.0)
    assert reason in caught.value.reason
    assert caught.value.path == files[name]
    decoded = images.read_image(files[name], max_megapixels=1.0)
    assert decoded.image is None and reason in decoded.error


def test_bomb_limit_can_be_raised(tmp_path):
    bomb = _bad_files(tmp_path)["bomb"]
    assert load_image(bomb, max_megapixels=3.0).size == (2000, 1000)


def test_hash_matches_content_and_read_image(tmp_path):
    path = _bad_files(tmp_path)["good"]
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == expected
    decoded = images.read_image(path)
    assert decoded.sha256 == expected
    assert decoded.size == path.stat().st_size and decoded.mtime_ns == path.stat().st_mtime_ns
    assert decoded.image.size == (64, 64) and decoded.error is None


def test_decode_batches_keeps_order_and_reports_bad_files(tmp_path):
    files = _bad_files(tmp_path)
    paths = [files[n] for n in ("good", "empty", "text", "good", "truncated")]
    batches = list(decode_batches(paths, batch_size=2, workers=3, max_megapixels=1.0))
    assert [len(b) for b in batches] == [2, 2, 1]
    flat = [d for b in batches for d in b]
    assert [d.path for d in flat] == paths
    assert [d.image is not None for d in flat] == [True, False, False, True, False]


def test_decode_batches_reads_only_a_bounded_number_ahead(tmp_path, monkeypatch):
    path = _write(tmp_path / "x.png", Image.new("RGB", (8, 8)))
    started = []
    lock = threading.Lock()
    real = images.read_image

    def counting(p, limit):
        with lock:
            started.append(p)
        return real(p, limit)

    monkeypatch.setattr(images, "read_image", counting)
    batches = decode_batches([path] * 40, batch_size=2, workers=4, ahead=2)
    first = next(batches)
    time.sleep(0.3)
    assert len(first) == 2
    assert len(started) <= 2 * (2 + 1)  # the batch handed out and two ahead
    assert sum(len(b) for b in batches) == 38
    assert len(started) == 40


def test_ultralytics_pillow_patch_does_not_leak_into_decoding(tmp_path):
    import ultralytics.utils.patches  # noqa: F401  (wraps PIL.Image.open to fetch pi-heif)

    text = tmp_path / "text.jpg"
    text.write_text("not a picture")
    with pytest.raises(BadImageError, match="not an image"):
        load_image(text)


def test_a_large_file_that_is_no_image_costs_a_header_read_not_its_size(tmp_path):
    import tracemalloc

    big = tmp_path / "video.jpg"
    with open(big, "wb") as file:
        file.write(b"RIFF\x00\x00\x00\x00AVI " + os.urandom(1 << 20) * 48)  # 48 MB, no image
    good = _bad_files(tmp_path)["good"]
    tracemalloc.start()
    try:
        decoded = images.read_image(big)
        bad_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        assert images.read_image(good).sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
    finally:
        tracemalloc.stop()
    assert decoded.image is None and "not an image" in (decoded.error or "")
    assert bad_peak < 4 << 20, f"read {bad_peak / 1e6:.0f} MB of a file that is no image"
    big_image = _write(tmp_path / "big.png", Image.new("RGB", (64, 64)))
    with open(big_image, "ab") as file:  # trailing bytes Pillow ignores, hashed in blocks
        file.write(os.urandom(1 << 20) * 24)
    tracemalloc.start()
    try:
        decoded = images.read_image(big_image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded.sha256 == file_sha256(big_image) and decoded.image is not None
    assert peak < 8 << 20, f"hashing took {peak / 1e6:.0f} MB"
