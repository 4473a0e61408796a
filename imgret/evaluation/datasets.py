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
from pathlib import Path, PurePosixPath, PureWindowsPath
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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path} is not valid UTF-8 JSON ({exc})") from None
    except OSError as exc:
        raise MissingFileError(f"cannot read {path} ({exc.strerror or exc})") from None
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        if "annotations" in data:
            return _coco(data, path, images, split)
        if all(isinstance(e, dict) and "sentences" in e for e in data["images"][:1]):
            return _karpathy(data, path, images, split or KARPATHY_DEFAULT_SPLIT)
    raise BadInputError(
        f"{path} is neither a Karpathy split file (images[].sentences) nor COCO caption JSON "
        "(images + annotations)"
    )


def _text(entry: Any, key: str, path: Path, where: str) -> str:
    """``entry[key]`` when it is text; anything else is the file's fault, said in one line."""
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, str):
        got = (
            "is missing"
            if not isinstance(entry, dict) or key not in entry
            else (f"is {type(value).__name__} {value!r:.40}, not text")
        )
        raise BadInputError(f"{path}: {where}: {key!r} {got}; fix the file or use the original")
    return value


def _image_id(entry: dict[str, Any], key: str, path: Path, where: str) -> int | str:
    """An image id (COCO's are numbers; text is accepted) that joins images to captions."""
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        got = "is missing" if key not in entry else f"is {value!r:.40}, not a number"
        raise BadInputError(f"{path}: {where}: {key!r} {got}; fix the file or use the original")
    return value


def _entries(data: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    values = data.get(key)
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise BadInputError(f"{path}: {key!r} must be a list of objects")
    return values


def _karpathy(data: dict[str, Any], path: Path, images: Path | str | None, split: str):
    entries = _entries(data, "images", path)
    chosen = [e for e in entries if e.get("split") == split]
    if not chosen:
        raise BadInputError(_no_split_message(path, split, [e.get("split") for e in entries]))
    relative = []
    captions = []
    for number, e in enumerate(chosen):
        where = f"image {number} of split {split!r}"
        folder = e.get("filepath", "")
        if not isinstance(folder, str):
            folder = _text(e, "filepath", path, where)
        relative.append(_image_name(path, folder, _text(e, "filename", path, where)))
        sentences = e.get("sentences", [])
        if not isinstance(sentences, list):
            raise BadInputError(f"{path}: {where}: 'sentences' must be a list")
        captions.append(
            tuple(
                _text(s, "raw", path, f"{where}, sentence {i}").strip()
                for i, s in enumerate(sentences)
            )
        )
    root = _image_root(path, images, relative)
    items = [CaptionedImage(root / rel, caps) for rel, caps in zip(relative, captions, strict=True)]
    name = str(data.get("dataset") or path.stem.removeprefix("dataset_"))
    return CaptionedDataset(name=name, split=split, images=items, image_root=root)


def _coco(data: dict[str, Any], path: Path, images: Path | str | None, split: str | None):
    entries = _entries(data, "images", path)
    if split is not None:
        if not any("split" in e for e in entries):
            raise BadInputError(
                f"{path} has no 'split' field per image, so --split {split} cannot be applied: "
                "leave the split out to use every image of the file"
            )
        chosen = [e for e in entries if e.get("split") == split]
        if not chosen:
            raise BadInputError(_no_split_message(path, split, [e.get("split") for e in entries]))
    else:
        chosen = entries
    numbered: dict[int | str, list[tuple[float, str]]] = defaultdict(list)
    for number, annotation in enumerate(_entries(data, "annotations", path)):
        where = f"annotation {number}"
        text = _text(annotation, "caption", path, where)
        order = annotation.get("id", 0)
        order = order if isinstance(order, (int, float)) and not isinstance(order, bool) else 0
        numbered[_image_id(annotation, "image_id", path, where)].append((order, text.strip()))
    captions = {key: [text for _, text in sorted(pairs)] for key, pairs in numbered.items()}
    relative = [
        _image_name(path, _text(e, "file_name", path, f"image {i}")) for i, e in enumerate(chosen)
    ]
    ids = [_image_id(e, "id", path, f"image {i}") for i, e in enumerate(chosen)]
    root = _image_root(path, images, relative)
    items = [
        CaptionedImage(root / rel, tuple(captions.get(key, ())))
        for rel, key in zip(relative, ids, strict=True)
    ]
    return CaptionedDataset(name="coco", split=split, images=items, image_root=root)


def _image_name(path: Path, *parts: str) -> Path:
    """An image's name as the file gives it, refused when it would leave the image folder.

    Evaluation links every listed image into its work folder under this name, so a name that
    is absolute or climbs with ``..`` would reach outside it; like git with paths that leave
    the work tree, such a name is an error, not something to resolve.
    """
    joined = "/".join(str(part) for part in parts if str(part))
    for flavour in (PurePosixPath, PureWindowsPath):
        name = flavour(joined)
        if name.is_absolute() or name.anchor or ".." in name.parts:
            raise BadInputError(
                f"{path}: the image name {joined!r} leaves the image folder (an absolute path "
                "or '..'); image names must be relative to the image folder and stay inside it"
            )
    return Path(joined)


def _no_split_message(path: Path, split: str, available: list[Any]) -> str:
    names = ", ".join(sorted({str(s) for s in available if s is not None})) or "none"
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
