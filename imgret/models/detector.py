"""The detector stage: how many objects of each class an image shows.

Two back ends behind one interface: Ultralytics YOLO weights (``.pt``, the original's
``yolov8m-oiv7.pt`` by default, or any Ultralytics detection model) and ONNX exports of YOLOX
or Ultralytics YOLO run on onnxruntime (:mod:`imgret.models.onnx_detector`). The choice is
made from the file, so ``--detector`` takes either.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from PIL import Image

from imgret.config import Config
from imgret.errors import BadInputError, ModelUnavailableError, UnsafeWeightsError
from imgret.images import file_sha256
from imgret.models import Detector
from imgret.models.counting import Counting
from imgret.models.loading import pick_device, quiet_ultralytics, resolve, unsafe_weights_message
from imgret.models.onnx_detector import OnnxDetector, find_onnx

BOX_TASKS = ("detect", "segment")
"""Ultralytics tasks whose results carry axis-aligned boxes to count."""


def load_detector(model: str, config: Config) -> Detector:
    """An :class:`OnnxDetector` for an .onnx file (or a folder holding one), else Ultralytics.

    The model is looked up as a path, then in ``config.models_dir``; a missing file ends in a
    :class:`ModelUnavailableError` that says where to put it.
    """
    path = _locate(model, config)
    onnx = find_onnx(path) if path.exists() else None
    if onnx is not None:
        return OnnxDetector(model, config, path=onnx)
    if path.is_dir():
        weights = sorted(p for p in path.iterdir() if p.suffix.lower() == ".pt")
        if len(weights) != 1:
            raise ModelUnavailableError(
                f"The detector folder {path} should hold one .onnx or one .pt file; "
                f"it holds {', '.join(sorted(p.name for p in path.iterdir())) or 'nothing'}."
            )
        path = weights[0]
    return UltralyticsDetector(model, config, path=path)


def _offline() -> bool:
    return any(
        os.environ.get(name, "0").lower() in {"1", "true", "yes"}
        for name in ("YOLO_OFFLINE", "HF_HUB_OFFLINE")
    )


def _locate(model: str, config: Config) -> Path:
    """``model`` as a path on disk, or as given when it may still be downloaded by name."""
    try:
        return Path(resolve(model, config.models_dir))
    except ModelUnavailableError as exc:
        raise ModelUnavailableError(
            _missing_weights(model, config, "there is no such path")
        ) from exc


def _missing_weights(
    model: str, config: Config, reason: str | None = None, cause: BaseException | None = None
) -> str:
    name = Path(model).name
    if not Path(model).suffix:
        name += " (a .pt file, or a folder holding one .onnx model and its classes.txt)"
    folder = Path(model).parent if Path(model).parent != Path(".") else config.models_dir
    if reason is None:
        reason = "the file is not on disk and " + (
            "offline mode is on" if _offline() else "it could not be downloaded"
        )
    detail = f"\n  ({type(cause).__name__}: {cause})" if cause else ""
    return (
        f"Cannot load the detector model '{model}': {reason}.\n"
        f"  Put {name} in {folder}/ (or pass its path with --detector), "
        f"pick another model with --detector (a .pt file, an .onnx file or a folder holding "
        f"one), or switch the stage off with --detector none.{detail}"
    )


def _weights_path(model: str, config: Config, path: Path) -> str:
    """Where Ultralytics should load from; fails fast instead of a download it cannot make.

    Ultralytics downloads a missing official checkpoint by name and retries for a long time
    when the network is unreachable, so without a local file and with offline mode on it is
    never asked. Online, a bare name downloads into ``models_dir``, where the next run finds it.
    """
    if path.exists() or path.suffix.lower() in {".yaml", ".yml"}:
        return str(path)
    from ultralytics.utils import ONLINE, SETTINGS

    cached = Path(SETTINGS["weights_dir"]) / model
    if cached.exists():
        return str(cached)
    if _offline() or not ONLINE:
        raise ModelUnavailableError(_missing_weights(model, config))
    return str(path if path.parent != Path(".") else config.models_dir / path.name)


def _require_safe_load() -> None:
    """Fail unless Ultralytics loads .pt files with ``weights_only=True`` in this process.

    ``imgret/__init__.py`` turns its safe mode on before Ultralytics is imported; a program
    that imported Ultralytics first gets it off, and a swapped .pt would then run its code.
    """
    from ultralytics.nn import tasks

    if not tasks.SAFE_LOAD or not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        raise UnsafeWeightsError(
            "Ultralytics was imported before imgret without ULTRALYTICS_SAFE_LOAD=1, so it would "
            "unpickle .pt files in full (running any code they hold); set ULTRALYTICS_SAFE_LOAD=1 "
            "before starting Python, or import imgret before ultralytics"
        )


def _half_precision() -> dict[str, object]:
    """fp16 in the spelling this Ultralytics takes (``half`` became ``quantize=16`` in 8.4)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return {"quantize": 16} if "quantize" in DEFAULT_CFG_DICT else {"half": True}


class UltralyticsDetector:
    """Ultralytics YOLO detection weights behind the :class:`Detector` interface."""

    def __init__(self, model: str, config: Config, path: Path | None = None) -> None:
        import torch  # noqa: F401  (before ultralytics, which otherwise sets OMP_NUM_THREADS=1)

        quiet_ultralytics()
        from ultralytics import YOLO

        self.model_id = model
        weights = _weights_path(model, config, path or _locate(model, config))
        _require_safe_load()
        if Path(weights).suffix.lower() == ".pt" and not zipfile.is_zipfile(weights):
            # Every torch.save since PyTorch 1.6 is a zip archive; other bytes make torch's
            # unpickler fail in ways Ultralytics does not catch (IndexError, KeyError …).
            raise ModelUnavailableError(
                _missing_weights(
                    model, config, f"{weights} is damaged or not a PyTorch checkpoint at all"
                )
            )
        try:
            self.model = YOLO(weights)
        except (FileNotFoundError, ConnectionError) as exc:
            raise ModelUnavailableError(_missing_weights(model, config, cause=exc)) from exc
        except TypeError as exc:
            # Ultralytics' safe mode reports a pickle it refused as a TypeError caused by
            # UnpicklingError (unknown globals, or bytes that are no checkpoint at all).
            if isinstance(exc.__cause__, pickle.UnpicklingError):
                raise UnsafeWeightsError(
                    unsafe_weights_message("detector", weights, exc.__cause__)
                ) from exc
            raise
        if self.model.task not in BOX_TASKS:
            raise BadInputError(
                f"{model} is an Ultralytics '{self.model.task}' model; the detector stage "
                "needs a detection model (e.g. yolov8m-oiv7.pt or yolov8n.pt)"
            )
        weights_file = Path(weights)
        if weights_file.suffix.lower() == ".pt" and weights_file.is_file():
            self.revision: str | None = file_sha256(weights_file)[:12]
        else:
            self.revision = None
        self.device = pick_device(config.device)
        self.counting = Counting.from_config(config)
        self.names: dict[int, str] = self.model.names
        self.precision = _half_precision() if self.device.startswith("cuda") else {}

    def detect(self, images: list[Image.Image]) -> list[dict[str, int]]:
        """Per image, how many boxes of each class pass the confidence threshold after NMS,
        and the classes seen only below it counted 0 (:func:`count_classes`)."""
        if not images:
            return []
        rgb = [image.convert("RGB") for image in images]
        # Ultralytics letterboxes a batch of differently shaped photos to full squares but a
        # single photo to its own small rectangle; a GPU gains from the batch, a CPU only pays
        # for the extra pixels (bench/RESULTS.md), so the CPU takes one photo at a time.
        groups = [rgb] if self.device.startswith("cuda") else [[image] for image in rgb]
        # Ultralytics' first CPU predict sets torch's threads for the whole process
        # (one on a 2-core machine), slowing every other stage; give them back afterwards.
        threads = torch.get_num_threads()
        try:
            results = [
                result
                for group in groups
                for result in self.model.predict(
                    group,
                    conf=self.counting.lowest,
                    iou=self.counting.iou,
                    device=self.device,
                    **self.precision,  # type: ignore[arg-type]
                    batch=len(group),
                    verbose=False,
                )
            ]
        finally:
            torch.set_num_threads(threads)
        return [
            self.counting.count(
                result.boxes.cls.cpu().numpy(),  # type: ignore[union-attr]
                result.boxes.conf.cpu().numpy(),  # type: ignore[union-attr]
                self.names,
            )
            for result in results
        ]
