"""The OCR stage: text written in the image (signs, shop fronts, jerseys, documents).

Captioners rarely spell out the words they see, yet a search for "the bakery on Main
Street" often hinges on them. RapidOCR runs PP-OCRv4 on onnxruntime with the weights inside
its wheel, so the stage works offline from a plain ``pip install``. It is off by default:
most photos hold no text, and it costs time per image.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
from PIL import Image

from imgret.config import Config
from imgret.errors import BadInputError, ModelUnavailableError
from imgret.models.loading import pick_device

DEFAULT_NAMES = frozenset({"rapidocr", "default", "on", "true", "yes", "pp-ocrv4"})
"""Stage values that mean "the PP-OCRv4 weights shipped in the rapidocr-onnxruntime wheel"."""


def reading_order(lines: list[tuple[np.ndarray, str, float]], min_confidence: float) -> str:
    """The confident lines joined with spaces, top to bottom and left to right.

    Lines whose tops lie within half a line height of each other read as one row, so words on
    one sign line up even when their boxes are a few pixels apart vertically.
    """
    kept = [
        (np.asarray(box, np.float32), text.strip())
        for box, text, score in lines
        if text.strip() and float(score) >= min_confidence
    ]
    if not kept:
        return ""
    kept.sort(key=lambda item: item[0][:, 1].min())
    rows: list[list[tuple[np.ndarray, str]]] = []
    for box, text in kept:
        top, height = box[:, 1].min(), np.ptp(box[:, 1])
        if rows and top - rows[-1][0][0][:, 1].min() < height / 2:
            rows[-1].append((box, text))
        else:
            rows.append([(box, text)])
    ordered = (sorted(row, key=lambda item: item[0][:, 0].min()) for row in rows)
    return " ".join(text for row in ordered for _, text in row)


class RapidTextReader:
    """RapidOCR (PP-OCRv4 detection, angle classification, recognition) as a :class:`TextReader`."""

    def __init__(self, model: str, config: Config) -> None:
        if model.strip().lower() not in DEFAULT_NAMES:
            raise BadInputError(
                f"unknown OCR model '{model}': use --ocr rapidocr (the PP-OCRv4 weights that "
                "ship with rapidocr-onnxruntime) or --ocr none"
            )
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise ModelUnavailableError(
                "The OCR stage needs the rapidocr-onnxruntime package: "
                "pip install 'imgret[ocr]' (or rapidocr-onnxruntime), or switch it off "
                "with --ocr none."
            ) from exc
        self.model_id = "rapidocr"
        self.revision = metadata.version("rapidocr-onnxruntime")
        self.min_confidence = config.ocr_min_confidence
        on_gpu = pick_device(config.device).startswith("cuda")
        self.engine = RapidOCR(
            text_score=self.min_confidence,
            det_use_cuda=on_gpu,
            cls_use_cuda=on_gpu,
            rec_use_cuda=on_gpu,
        )

    def read(self, images: list[Image.Image]) -> list[str]:
        """Per image, its confident lines of text in reading order ("" when there are none).

        RapidOCR takes one image at a time (its detector works at each image's own size).
        """
        texts = []
        for image in images:
            lines, _ = self.engine(image.convert("RGB"))
            texts.append(reading_order(lines or [], self.min_confidence))
        return texts
