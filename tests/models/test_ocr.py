"""The OCR stage: reading order on hand-placed boxes, and the real PP-OCRv4 weights on a sign."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from imgret.config import Config
from imgret.models import TextReader
from imgret.models.ocr import RapidTextReader, reading_order
from imgret.models.stages import load_stages


def box(x: float, y: float, width: float = 100, height: float = 40) -> np.ndarray:
    return np.array([[x, y], [x + width, y], [x + width, y + height], [x, y + height]])


def test_reading_order_goes_by_rows_then_left_to_right_and_drops_unsure_lines():
    lines = [
        (box(300, 108), "BREAD", 0.95),
        (box(10, 10), "OPEN", 0.99),
        (box(10, 100), "FRESH", 0.97),
        (box(150, 14), "24", 0.9),  # a few pixels lower, still the first row
        (box(300, 300), "smudge", 0.3),
        (box(280, 12), "HOURS", 0.8),
        (box(10, 200), "  ", 0.99),
    ]
    assert reading_order(lines, min_confidence=0.5) == "OPEN 24 HOURS FRESH BREAD"
    assert reading_order(lines, min_confidence=0.91) == "OPEN FRESH BREAD"
    assert reading_order([], min_confidence=0.5) == ""


def sign(lines: list[str]) -> Image.Image:
    """Black words on white, in a TrueType font (matplotlib's DejaVu Sans, else Pillow's own)."""
    import matplotlib

    font_file = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    font = (
        ImageFont.truetype(str(font_file), 64)
        if font_file.exists()
        else ImageFont.load_default(size=64)
    )
    image = Image.new("RGB", (800, 120 * len(lines) + 40), "white")
    draw = ImageDraw.Draw(image)
    for row, text in enumerate(lines):
        draw.text((40, 40 + 120 * row), text, fill="black", font=font)
    return image


@pytest.fixture(scope="module")
def reader() -> RapidTextReader:
    stages = load_stages(Config(embedder="unused", ocr="rapidocr", device="cpu"), which=["ocr"])
    return stages.ocr


def test_rapidocr_reads_a_sign(reader):
    assert isinstance(reader, TextReader)
    assert reader.model_id == "rapidocr" and reader.revision
    texts = reader.read([sign(["OPEN 24 HOURS", "FRESH BREAD"]), Image.new("L", (300, 200), 255)])
    assert texts[0].split() == ["OPEN", "24", "HOURS", "FRESH", "BREAD"]
    assert texts[1] == ""
    assert reader.read([]) == []


def test_unknown_ocr_model_is_explained():
    with pytest.raises(ValueError, match="--ocr rapidocr"):
        RapidTextReader("tesseract", Config(device="cpu"))
