"""Small JPEG copies of indexed photos, made on first request and kept on disk.

A page of 40 hits would otherwise send 40 full photos (megabytes each from a camera) and
decode them in the browser. Thumbnails are named by the image's content hash and the size,
so a moved file keeps its thumbnail and a changed one gets a new name; they live in
``INDEX/thumbnails/`` or, where the index folder cannot be written (a read-only share), in
the user's cache folder. Each file is written through a temporary name and renamed, so two
requests for the same thumbnail never read half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

from imgret.errors import BadImageError
from imgret.images import _pillow_open as pillow_open  # Pillow's own, never ultralytics' wrapper
from imgret.images import to_rgb

FOLDER = "thumbnails"
SIZE = 320
"""Longest side in pixels: sharp in a grid cell of ~160 CSS px on a 2× screen."""
QUALITY = 80


def cache_root(index_dir: Path) -> Path:
    """``INDEX/thumbnails`` if it can be written, else a folder per index in the user's cache."""
    folder = index_dir / FOLDER
    with contextlib.suppress(OSError):
        folder.mkdir(exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    from platformdirs import user_cache_dir

    digest = hashlib.sha256(str(index_dir.resolve()).encode()).hexdigest()[:16]
    folder = Path(user_cache_dir("imgret")) / FOLDER / digest
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Thumbnails:
    """Thumbnails of one index's images, ``size`` pixels on the longest side."""

    def __init__(self, index_dir: Path, size: int = SIZE) -> None:
        self.folder = cache_root(index_dir)
        self.size = size

    def path(self, source: Path, key: str) -> Path:
        """The thumbnail of ``source`` (whose content ``key`` names), made if not there yet."""
        target = self.folder / f"{key}-{self.size}.jpg"
        if not target.exists():
            self._make(source, target)
        return target

    def read(self, source: Path, key: str) -> bytes:
        """The thumbnail's bytes; made again if it went from the cache meanwhile (a person
        clearing the folder while the server runs)."""
        try:
            return self.path(source, key).read_bytes()
        except FileNotFoundError:
            target = self.folder / f"{key}-{self.size}.jpg"
            self._make(source, target)
            return target.read_bytes()

    def _make(self, source: Path, target: Path) -> None:
        """Write the thumbnail of ``source`` to ``target``, whole or not at all."""
        try:
            with pillow_open(source) as image:
                # A JPEG decodes straight at 1/2, 1/4 or 1/8 scale: a 24-megapixel photo in
                # a tenth of the time.
                image.draft("RGB", (self.size * 2, self.size * 2))
                small = to_rgb(ImageOps.exif_transpose(image))
                small.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        except (OSError, ValueError, ImportError, Image.DecompressionBombError) as exc:
            raise BadImageError(source, f"cannot make a thumbnail ({exc})") from exc
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                small.save(file, "JPEG", quality=QUALITY, optimize=True)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
