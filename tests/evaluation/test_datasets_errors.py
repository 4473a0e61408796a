"""Annotation files that are wrong in any way: one line naming the file and the fault (a
missing field, a number where a caption belongs), or the dataset they describe; never a
traceback from inside the loader."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgret.errors import BadInputError
from imgret.evaluation.datasets import load_dataset

FAST = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))


def _coco(images=None, annotations=None) -> dict:
    return {
        "images": images if images is not None else [{"id": 1, "file_name": "a.jpg"}],
        "annotations": annotations
        if annotations is not None
        else [{"id": 5, "image_id": 1, "caption": "a dog"}],
    }


def _karpathy(sentence: object) -> dict:
    return {"images": [{"filename": "a.jpg", "split": "test", "sentences": [sentence]}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_coco(images=[{"id": 1}]), "image 0: 'file_name' is missing"),
        (_coco(annotations=[{"image_id": 1}]), "annotation 0: 'caption' is missing"),
        (_coco(annotations=[{"image_id": 1, "caption": 7}]), "'caption' is int 7, not text"),
        (_coco(annotations=[{"caption": "x"}]), "annotation 0: 'image_id' is missing"),
        (_coco(images=[{"id": [1], "file_name": "a.jpg"}]), "'id' is [1], not a number"),
        (_coco(images=[3]), "'images' must be a list of objects"),
        (_karpathy({"tokens": []}), "sentence 0: 'raw' is missing"),
        (_karpathy({"raw": None}), "'raw' is NoneType None, not text"),
        (
            {"images": [{"split": "test", "sentences": []}]},
            "image 0 of split 'test': 'filename' is missing",
        ),
    ],
)
def test_a_faulty_annotation_file_is_one_line_naming_the_fault(tmp_path, data, message):
    (tmp_path / "a.jpg").write_bytes(b"")
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BadInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset(path, images=tmp_path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
keys = st.sampled_from(["id", "image_id", "file_name", "filename", "caption", "raw", "split"])
entries = st.dictionaries(keys | st.text(max_size=4), json_values | st.just("a.jpg"), max_size=5)
documents = st.fixed_dictionaries(
    {"images": st.lists(entries | json_values, max_size=3)},
    optional={
        "annotations": st.lists(entries | json_values, max_size=3) | json_values,
        "dataset": json_values,
    },
)


@FAST
@given(documents | json_values, st.sampled_from([None, "test", "train"]))
def test_any_json_gives_a_dataset_or_one_clear_error(tmp_path_factory, data, split):
    folder = tmp_path_factory.mktemp("annotations")
    (folder / "a.jpg").write_bytes(b"")
    path = folder / "captions.json"
    path.write_text(json.dumps(data))
    try:
        dataset = load_dataset(path, images=folder, split=split)
    except BadInputError as exc:
        assert "\n" not in str(exc).strip() or str(path) in str(exc)
        return
    for image in dataset.images:
        assert image.path == folder / "a.jpg"
        assert all(isinstance(caption, str) for caption in image.captions)
