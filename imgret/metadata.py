"""What a photo's file says about it: date taken, camera, GPS position, and the place there.

Read from EXIF with Pillow, from the file's header only (no pixel is decoded), so an index
gains it for every stored image without running a model. Place names come from GPS offline,
with ``reverse_geocode`` (optional extra ``places``), which ships GeoNames' cities of 1,000+
people with their region and country, so nothing is looked up on the internet.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import ExifTags

from imgret.errors import MissingPackageError
from imgret.images import _pillow_open

EXIF_VERSION = 1
"""Bump when what is read from EXIF changes: every stored row then reads its file again."""

_DATE_TAGS = (ExifTags.Base.DateTimeOriginal, ExifTags.Base.DateTimeDigitized)


@dataclass(frozen=True)
class PhotoMetadata:
    """The EXIF facts imgret keeps; empty (or None) where the file has none."""

    taken: str = ""
    """When the photo was taken, ISO ``YYYY-MM-DDTHH:MM:SS`` in the camera's own clock."""
    camera_make: str = ""
    camera_model: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class Place:
    """The populated place nearest a GPS position, as GeoNames names it."""

    city: str = ""
    region: str = ""
    country: str = ""


def metadata_key() -> str:
    """What the stored metadata of a row was read with: rows with another key are read again,
    so installing the places extra later fills in the places of photos indexed before."""
    return f"exif{EXIF_VERSION}" + ("+places" if places_available() else "")


def places_available() -> bool:
    return importlib.util.find_spec("reverse_geocode") is not None


def read_metadata(path: Path | str) -> PhotoMetadata:
    """The EXIF facts of an image file; a file without EXIF, or with broken EXIF, has none."""
    try:
        with _pillow_open(path) as image:
            exif = image.getexif()
            details = exif.get_ifd(ExifTags.IFD.Exif)
            gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # noqa: BLE001 - EXIF in the wild is often malformed; it is optional
        return PhotoMetadata()
    dates = [details.get(tag) for tag in _DATE_TAGS] + [exif.get(ExifTags.Base.DateTime)]
    position = _position(gps)
    return PhotoMetadata(
        taken=next((d for d in map(_date, dates) if d), ""),
        camera_make=_text(exif.get(ExifTags.Base.Make)),
        camera_model=_text(exif.get(ExifTags.Base.Model)),
        latitude=position[0] if position else None,
        longitude=position[1] if position else None,
    )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).replace("\x00", " ").split()) if value is not None else ""


def _date(value: Any) -> str:
    """EXIF's "YYYY:MM:DD HH:MM:SS" as ISO text; unset ("0000:00:00 …") or malformed is ""."""
    text = _text(value)
    try:
        when = datetime.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        try:
            when = datetime.datetime.strptime(text[:10], "%Y:%m:%d")
        except ValueError:
            return ""
    return when.isoformat(timespec="seconds")


def _position(gps: dict) -> tuple[float, float] | None:
    try:
        latitude = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef))
        longitude = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (abs(latitude) <= 90 and abs(longitude) <= 180) or latitude == longitude == 0:
        return None  # out of range, or the 0, 0 some cameras write without a fix
    return latitude, longitude


def _degrees(value: Sequence[Any], ref: Any) -> float:
    parts = [float(part) for part in value]
    degrees = sum(part / 60**i for i, part in enumerate(parts[:3]))
    if not math.isfinite(degrees):
        raise ValueError("not a position")
    return -degrees if _text(ref).upper() in ("S", "W") else degrees


def look_up_places(positions: Sequence[tuple[float, float]]) -> list[Place]:
    """The nearest place to each (latitude, longitude), offline; loading the gazetteer takes
    a few seconds once per process."""
    try:
        import reverse_geocode
    except ImportError as exc:
        raise MissingPackageError(
            "place names need the places extra: pip install 'imgret[places]' "
            "(reverse_geocode), then run imgret index again"
        ) from exc
    if not positions:
        return []
    found = reverse_geocode.search(list(positions))
    return [
        Place(
            city=str(f.get("city", "")),
            region=str(f.get("state", "")),
            country=str(f.get("country", "")),
        )
        for f in found
    ]
