"""Loading captioned datasets from small Karpathy and COCO files written here."""

from __future__ import annotations

import json

import pytest

from imgret.evaluation.datasets import load_dataset
from tests.support.shared_data import COCO_SAMPLE, needs_shared


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _karpathy_file(tmp_path, with_filepath: bool):
    images = []
    for i, split in enumerate(["train", "test", "val", "test", "restval"]):
        entry = {
            "filename": f"{i}.jpg",
            "split": split,
            "sentences": [{"raw": f" image {i} caption {j} ", "tokens": []} for j in range(2)],
        }
        if with_filepath:
            entry["filepath"] = "val2014"
        images.append(entry)
    path = tmp_path / "dataset_flickr8k.json"
    path.write_text(json.dumps({"images": images, "dataset": "flickr8k"}))
    return path


def test_karpathy_test_split_by_default(tmp_path):
    path = _karpathy_file(tmp_path, with_filepath=False)
    for i in range(5):
        _touch(tmp_path / "photos" / f"{i}.jpg")
    data = load_dataset(path, images=tmp_path / "photos")
    assert data.name == "flickr8k" and data.split == "test"
    assert [img.path for img in data.images] == [tmp_path / "photos" / f"{i}.jpg" for i in (1, 3)]
    assert data.images[0].captions == ("image 1 caption 0", "image 1 caption 1")
    assert [img.path.name for img in load_dataset(path, tmp_path / "photos", "val").images] == [
        "2.jpg"
    ]


def test_karpathy_coco_uses_filepath_and_finds_images_beside_the_file(tmp_path):
    path = _karpathy_file(tmp_path, with_filepath=True)
    for i in range(5):
        _touch(tmp_path / "images" / "val2014" / f"{i}.jpg")
    data = load_dataset(path, split="restval")
    assert [img.path for img in data.images] == [tmp_path / "images" / "val2014" / "4.jpg"]


def test_unknown_split_names_the_splits_there_are(tmp_path):
    path = _karpathy_file(tmp_path, with_filepath=False)
    with pytest.raises(ValueError, match="restval, test, train, val"):
        load_dataset(path, tmp_path, split="dev")


def test_missing_images_say_which_and_what_to_do(tmp_path):
    path = _karpathy_file(tmp_path, with_filepath=False)
    _touch(tmp_path / "1.jpg")
    with pytest.raises(FileNotFoundError, match=r"1 of the 2 images .*3\.jpg.*--images"):
        load_dataset(path)


def _coco_file(tmp_path, with_split: bool):
    images = [{"id": 7, "file_name": "a.jpg"}, {"id": 3, "file_name": "b.jpg"}]
    if with_split:
        images[0]["split"], images[1]["split"] = "val2017", "train2017"
    annotations = [
        {"id": 12, "image_id": 7, "caption": "second of a"},
        {"id": 10, "image_id": 7, "caption": "first of a "},
        {"id": 11, "image_id": 3, "caption": "only b"},
    ]
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    for image in images:
        _touch(tmp_path / "images" / image["file_name"])
    return path


def test_coco_captions_in_annotation_order_and_every_image_by_default(tmp_path):
    data = load_dataset(_coco_file(tmp_path, with_split=True))
    assert data.name == "coco" and data.split is None
    assert [(img.path.name, img.captions) for img in data.images] == [
        ("a.jpg", ("first of a", "second of a")),
        ("b.jpg", ("only b",)),
    ]
    assert [
        img.path.name for img in load_dataset(tmp_path / "captions.json", split="train2017").images
    ] == ["b.jpg"]


def test_coco_split_filter_needs_a_split_field(tmp_path):
    path = _coco_file(tmp_path, with_split=False)
    with pytest.raises(ValueError, match="no 'split' field"):
        load_dataset(path, split="val2017")


def test_other_json_is_refused(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"images": [{"file": "a.jpg"}]}))
    with pytest.raises(ValueError, match="neither a Karpathy"):
        load_dataset(path)


@needs_shared(COCO_SAMPLE)
def test_coco_sample():
    data = load_dataset(COCO_SAMPLE / "captions.json", split="val2017")
    assert len(data.images) == 159
    assert all(len(img.captions) == 5 and img.path.is_file() for img in data.images)
    assert len(load_dataset(COCO_SAMPLE / "captions.json").images) == 239


@pytest.mark.parametrize("name", ["../victim.jpg", "sub/../../victim.jpg", "/abs/victim.jpg"])
def test_image_names_that_leave_the_image_folder_are_refused(tmp_path, name):
    """A crafted file must not name images outside the folder: eval links each one there."""
    victim = tmp_path / "victim.jpg"
    victim.write_bytes(b"precious")
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    path = root / "captions.json"
    entry = {"id": 1, "file_name": name.replace("/abs", str(tmp_path))}
    caption = {"id": 1, "image_id": 1, "caption": "x"}
    path.write_text(json.dumps({"images": [entry], "annotations": [caption]}))
    with pytest.raises(ValueError, match="leaves the image folder"):
        load_dataset(path, images=root)
    karpathy = root / "dataset_x.json"
    sentences = [{"raw": "x"}]
    karpathy.write_text(
        json.dumps({"images": [{"filename": name, "split": "test", "sentences": sentences}]})
    )
    with pytest.raises(ValueError, match="leaves the image folder"):
        load_dataset(karpathy, images=root)
    climbing = {"filepath": "..", "filename": "victim.jpg", "split": "test"}
    karpathy.write_text(json.dumps({"images": [{**climbing, "sentences": sentences}]}))
    with pytest.raises(ValueError, match="leaves the image folder"):
        load_dataset(karpathy, images=root)
    assert victim.read_bytes() == b"precious"
