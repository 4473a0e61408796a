"""Real photos with EXIF written by the test: date taken, camera, GPS of a known place."""

from __future__ import annotations

from pathlib import Path

from PIL import ExifTags, Image


def write_with_exif(
    source: Path,
    target: Path,
    *,
    taken: str | None = None,
    make: str | None = None,
    model: str | None = None,
    position: tuple[float, float] | None = None,
) -> Path:
    """``source`` re-saved at ``target`` with the EXIF given (``taken`` as EXIF writes it,
    "2019:06:15 12:30:00"; ``position`` in signed decimal degrees)."""
    exif = Image.Exif()
    if make is not None:
        exif[ExifTags.Base.Make] = make
    if model is not None:
        exif[ExifTags.Base.Model] = model
    # Sub-IFDs assigned as dicts: Pillow's PNG writer drops ones filled through get_ifd.
    if taken is not None:
        exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: taken}
    if position is not None:
        gps: dict[int, object] = {}
        for (ref, tag), value, signs in zip(
            (
                (ExifTags.GPS.GPSLatitudeRef, ExifTags.GPS.GPSLatitude),
                (ExifTags.GPS.GPSLongitudeRef, ExifTags.GPS.GPSLongitude),
            ),
            position,
            ("NS", "EW"),
            strict=True,
        ):
            gps[ref] = signs[value < 0]
            degrees = abs(value)
            minutes = (degrees % 1) * 60
            gps[tag] = (float(int(degrees)), float(int(minutes)), round((minutes % 1) * 60, 4))
        exif[ExifTags.IFD.GPSInfo] = gps
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.save(target, exif=exif)
    return target
