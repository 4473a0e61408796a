"""Captioned image datasets for evaluation: which images, and the human captions of each.

Two formats cover the benchmarks the original reports: the Karpathy split files
(``dataset_flickr8k.json``, ``dataset_flickr30k.json``, ``dataset_coco.json``), which fix the
test images everyone reports on, and COCO caption JSON (``captions_val2017.json`` and the
coco-sample's ``captions.json``, which adds a ``split`` per image).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgret.errors import BadInputError, MissingFileError

KARPATHY_DEFAULT_SPLIT = "test"


@dataclass(frozen=True)
class CaptionedImage:
    """An image file and its human captions, in the dataset's order (caption 0 first)."""

    path: Path
    captions: tuple[str, ...]


@dataclass(frozen=True)
class CaptionedDataset:
    """The images of one split, and what the dataset is (for labels and the published figures)."""

    name: str
    """``flickr8k``, ``flickr30k``, ``coco`` or the file's stem."""
    split: str | None
    images: list[CaptionedImage]
    image_root: Path


def load_dataset(
    annotations: Path | str,
    images: Path | str | None = None,
    split: str | None = None,
) -> CaptionedDataset:
    """Load a Karpathy split file or a COCO caption JSON, whichever ``annotations`` is.

    ``images`` is the folder the file names are relative to; by default ``images/`` beside
    the JSON file, or its own folder. ``split`` defaults to ``test`` for Karpathy files and to
    every image for COCO JSON.
    """
    path = Path(annotations)
    if not path.is_file():
        raise MissingFileError(f"no annotation file at {path}: give a Karpathy or COCO JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path} is not valid JSON ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        if "annotations" in data:
            return _coco(data, path, images, split)
        if all("sentences" in image for image in data["images"][:1]):
            return _karpathy(data, path, images, split or KARPATHY_DEFAULT_SPLIT)
    raise BadInputError(
        f"{path} is neither a Karpathy split file (images[].sentences) nor COCO caption JSON "
        "(images + annotations)"
    )


def _karpathy(data: dict[str, Any], path: Path, images: Path | str | None, split: str):
    entries = data["images"]
    chosen = [e for e in entries if e.get("split") == split]
    if not chosen:
        raise BadInputError(_no_split_message(path, split, {e.get("split") for e in entries}))
    relative = [Path(e.get("filepath", "")) / e["filename"] for e in chosen]
    root = _image_root(path, images, relative)
    items = [
        CaptionedImage(root / rel, tuple(s["raw"].strip() for s in e.get("sentences", [])))
        for rel, e in zip(relative, chosen, strict=True)
    ]
    name = str(data.get("dataset") or path.stem.removeprefix("dataset_"))
    return CaptionedDataset(name=name, split=split, images=items, image_root=root)


def _coco(data: dict[str, Any], path: Path, images: Path | str | None, split: str | None):
    entries = data["images"]
    if split is not None:
        if not any("split" in e for e in entries):
            raise BadInputError(
                f"{path} has no 'split' field per image, so --split {split} cannot be applied: "
                "leave the split out to use every image of the file"
            )
        chosen = [e for e in entries if e.get("split") == split]
        if not chosen:
            raise BadInputError(_no_split_message(path, split, {e.get("split") for e in entries}))
    else:
        chosen = entries
    captions: dict[Any, list[str]] = defaultdict(list)
    for annotation in sorted(data["annotations"], key=lambda a: a.get("id", 0)):
        captions[annotation["image_id"]].append(annotation["caption"].strip())
    relative = [Path(e["file_name"]) for e in chosen]
    root = _image_root(path, images, relative)
    items = [
        CaptionedImage(root / rel, tuple(captions.get(e["id"], ())))
        for rel, e in zip(relative, chosen, strict=True)
    ]
    return CaptionedDataset(name="coco", split=split, images=items, image_root=root)


def _no_split_message(path: Path, split: str, available: set[Any]) -> str:
    names = ", ".join(sorted(str(s) for s in available if s is not None)) or "none"
    return f"{path} has no images in split '{split}'; its splits are: {names}"


def _image_root(path: Path, images: Path | str | None, relative: list[Path]) -> Path:
    """The folder the file names are relative to; every listed image must be there."""
    candidates = [Path(images)] if images is not None else [path.parent / "images", path.parent]
    missing_in = {
        root: [rel for rel in relative if not (root / rel).is_file()] for root in candidates
    }
    best = min(candidates, key=lambda root: len(missing_in[root]))
    missing = missing_in[best]
    if not missing:
        return best
    examples = ", ".join(str(rel) for rel in missing[:3])
    raise MissingFileError(
        f"{len(missing)} of the {len(relative)} images listed in {path.name} are not in "
        f"{best} (e.g. {examples}); pass the folder that holds them with --images"
    )
