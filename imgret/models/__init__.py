"""Model stages: each a small class with one batch method, loaded once per process.

The narrow interfaces below are all the rest of imgret knows about a model, so another
model of the same kind drops in by hub id or path.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Captioner(Protocol):
    model_id: str
    revision: str | None

    def caption(self, images: list[Image.Image]) -> list[str]:
        """One clean caption per image (no prompt echo)."""
        ...


@runtime_checkable
class Detector(Protocol):
    model_id: str
    revision: str | None

    def detect(self, images: list[Image.Image]) -> list[dict[str, int]]:
        """Per image, how many objects of each class were found."""
        ...


@runtime_checkable
class TextReader(Protocol):
    model_id: str
    revision: str | None

    def read(self, images: list[Image.Image]) -> list[str]:
        """Per image, the text written in it (empty when none)."""
        ...


@runtime_checkable
class Tagger(Protocol):
    model_id: str
    revision: str | None

    def tag(self, images: list[Image.Image]) -> list[list[tuple[str, float]]]:
        """Per image, its kept labels with their probabilities, the most probable first."""
        ...


@runtime_checkable
class TopicClassifier(Protocol):
    model_id: str
    revision: str | None

    def classify(self, texts: list[str]) -> list[list[tuple[str, float]]]:
        """Per text, every label with its score."""
        ...


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    revision: str | None
    dimension: int

    def embed(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """float32 [n, dimension], rows L2-normalised, from (instruction, text) pairs."""
        ...
