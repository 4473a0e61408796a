"""Finding, hashing and decoding the images of a gallery.

Decoding is the one step that meets arbitrary files from the wild, so everything that can go
wrong with a file (empty, truncated, not an image, a decompression bomb) ends here as a
:class:`BadImageError` with a short reason, and the indexer skips the file instead of dying.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from imgret.errors import BadImageError, escape_controls

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

_HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_TRANSPARENT_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def find_images(root: Path | str, unreadable: list[OSError] | None = None) -> list[Path]:
    """Every image file under ``root``, sorted; hidden folders and files are left out.

    Only regular files count: a named pipe or socket with an image suffix would block or fail
    the decoder. Symlinked files are followed, symlinked folders are not (no loops). Folders
    that cannot be listed are appended to ``unreadable`` (their ``filename`` says which), so
    a caller can tell "no files there" from "could not look".
    """
    root = Path(root)
    found = []
    for folder, subfolders, files in os.walk(
        root, onerror=unreadable.append if unreadable is not None else None
    ):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in files:
            path = Path(folder, name)
            if (
                not name.startswith(".")
                and path.suffix.lower() in IMAGE_SUFFIXES
                and path.is_file()
            ):
                found.append(path)
    return sorted(found)


def printable(name: str) -> str:
    """A file name as one line of text: as it is when every character prints, else quoted
    with the others escaped (``'two\\nlines.jpg'``), so a line break in a name cannot break
    a listing into lines that look like other files."""
    if name.isprintable():
        return name
    return f"'{escape_controls(name)}'"


def stream_sha256(file: BinaryIO) -> str:
    """SHA-256 of an open file from its start, read in 1 MB blocks: memory stays flat
    whatever the file's size."""
    file.seek(0)
    digest = hashlib.sha256()
    for block in iter(lambda: file.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path | str) -> str:
    """Content hash of a file: tells a touched file (same bytes) from a changed one."""
    with open(path, "rb") as file:
        return stream_sha256(file)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: transparency on white; 16-bit and float scaled, not clipped."""
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode in _TRANSPARENT_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _pillow_open(source: BinaryIO | Path | str) -> Image.Image:
    """Pillow's own ``Image.open``, even after ultralytics has wrapped it.

    ultralytics replaces ``PIL.Image.open`` with a wrapper that, on any file Pillow cannot
    identify, installs and imports the pi-heif package (pip, when YOLO_AUTOINSTALL is on);
    a gallery's stray text file must not trigger that.
    """
    opener = Image.open
    if opener.__module__ != Image.__name__:
        opener = getattr(sys.modules.get(opener.__module__), "_image_open", opener)
    return opener(source)


def decode_image(
    data: bytes | BinaryIO | Path | str,
    max_megapixels: float | None = None,
    name: Path | str = "<bytes>",
) -> Image.Image:
    """Decode bytes, an open binary file or a path into an upright RGB image, or raise
    :class:`BadImageError`.

    The size is checked from the header before any pixel is decoded, so a decompression bomb
    costs nothing. ``max_megapixels`` None or 0 leaves only Pillow's own limit.
    """
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    if isinstance(data, bytes) and not data:
        raise BadImageError(name, "empty file (0 bytes)")
    try:
        with _pillow_open(source) as image:
            width, height = image.size
            if max_megapixels and width * height > max_megapixels * 1e6:
                raise BadImageError(
                    name,
                    f"{width}x{height} is {width * height / 1e6:.0f} megapixels, above the "
                    f"limit of {max_megapixels:g} (possible decompression bomb); raise it with "
                    "--max-image-megapixels (Config.max_image_megapixels) if the image is real",
                )
            image.load()
            upright = ImageOps.exif_transpose(image)
            rgb = to_rgb(upright)
            return rgb.copy() if rgb is image else rgb
    except BadImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImageError(name, f"refused as a possible decompression bomb ({exc})") from exc
    except (Image.UnidentifiedImageError, ImportError) as exc:
        raise BadImageError(name, "not an image Pillow can read") from exc
    except FileNotFoundError as exc:
        raise BadImageError(name, "file disappeared") from exc
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on malformed files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadImageError(name, f"corrupt or truncated ({reason})") from exc


def load_image(path: Path | str, max_megapixels: float | None = None) -> Image.Image:
    """Open one image file as an upright RGB image, or raise :class:`BadImageError`."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise BadImageError(path, "empty file (0 bytes)")
    return decode_image(path, max_megapixels, name=path)


@dataclass
class DecodedImage:
    """One file read once: its stat and hash, and the image or the reason it has none."""

    path: Path
    size: int
    mtime_ns: int
    sha256: str
    image: Image.Image | None = None
    error: str | None = None


def read_image(path: Path, max_megapixels: float | None = None) -> DecodedImage:
    """Stat, decode and hash a file through one open handle; never raises for a bad file.

    Pillow identifies the file from its header and checks its size before any pixel is
    read, and the hash streams in blocks, so a large file that is not an image (or is a
    bomb) costs a header read, not its size in memory. Only good images are hashed: the
    hash is what recognises a renamed file, and bad files are remembered by their stat.
    """
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            decoded = DecodedImage(path, stat.st_size, stat.st_mtime_ns, "")
            if stat.st_size == 0:
                decoded.error = "empty file (0 bytes)"
                return decoded
            try:
                decoded.image = decode_image(file, max_megapixels, name=path)
            except BadImageError as exc:
                decoded.error = exc.reason
                return decoded
            decoded.sha256 = stream_sha256(file)
    except OSError as exc:
        return DecodedImage(path, 0, 0, "", error=f"cannot read ({exc.strerror or exc})")
    return decoded


def decode_batches(
    paths: Sequence[Path],
    batch_size: int,
    workers: int = 4,
    max_megapixels: float | None = None,
    ahead: int = 2,
) -> Iterator[list[DecodedImage]]:
    """Yield batches of decoded images, read by ``workers`` threads while the caller works.

    At most ``ahead`` batches beyond the one being handed out are in flight, so memory stays
    bounded by a few batches whatever the size of the gallery.
    """
    chunks = iter([list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)])
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="imgret-decode")

    def submit(batch: list[Path]) -> list[Future[DecodedImage]]:
        return [pool.submit(read_image, path, max_megapixels) for path in batch]

    pending = deque(submit(batch) for batch in islice(chunks, ahead + 1))
    try:
        while pending:
            yield [future.result() for future in pending.popleft()]
            following = next(chunks, None)
            if following is not None:
                pending.append(submit(following))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
