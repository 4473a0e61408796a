"""Where weights come from: an explicit path, then ``models/<hub id>/``, then the hub (cache).

Every stage loads through :func:`resolve` and wraps its library's loading call in
:func:`load_or_explain`, so a missing model ends in one message that names the model, the
files it needs and the folder to put them in — not a stack trace from inside a library.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

if TYPE_CHECKING:
    import torch

from imgret.errors import ModelUnavailableError, UnsafeWeightsError

T = TypeVar("T")


def resolve(model: str, models_dir: Path | str = "models") -> str:
    """The local path for ``model`` if there is one, else ``model`` itself (a hub id).

    An existing file or folder wins; then ``models_dir/<model>`` (as the original's
    ``models/noamrot/FuseCap_Image_Captioning``); otherwise the hub id is returned for the
    library to find in its cache or download. A name that can only be a path (absolute,
    ``./``, ``~``) and does not exist is an error here, before a library calls it a bad hub id.
    """
    path = Path(model).expanduser()
    if path.exists():
        return str(path)
    local = Path(models_dir) / model
    if local.exists():
        return str(local)
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        raise ModelUnavailableError(
            f"The model '{model}' looks like a path, but there is no such file or folder.\n"
            f"  Check the path, or give a hub id (organisation/name)."
        )
    return model


def hub_revision(location: str) -> str | None:
    """The commit of a hub model in the local cache; None for local folders or when unknown.

    transformers 5 no longer records ``_commit_hash`` on loaded configs, so the cached
    snapshot's folder name (which is the commit) is read instead.
    """
    if Path(location).exists():
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(location, "config.json")
    except ValueError:
        return None
    return Path(cached).parent.name if isinstance(cached, str) else None


def pick_device(device: str | None = None) -> str:
    """The device asked for, or CUDA when present, else CPU (the original fixed one GPU)."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def placement(device: str | None) -> tuple[str, torch.dtype]:
    """The device (see :func:`pick_device`) and the dtype a transformers stage runs in there:
    float16 on CUDA, where it halves memory and doubles speed; float32 on CPU."""
    import torch

    device = pick_device(device)
    return device, torch.float16 if device.startswith("cuda") else torch.float32


def load_located(
    stage: str,
    model: str,
    files: Sequence[str],
    models_dir: Path | str,
    load: Callable[[str], T],
) -> tuple[T, str | None]:
    """``load(location)`` at the model's :func:`resolve`-d location, explained when missing,
    with the hub commit it came from (:func:`hub_revision`)."""
    location = resolve(model, models_dir)
    use_hub(location)
    quiet_transformers()
    loaded = load_or_explain(stage, model, files, models_dir, lambda: load(location))
    return loaded, hub_revision(location)


def quiet_transformers() -> None:
    """Turn off transformers' "Loading weights" bar, drawn at every model load (a second's
    work, not the long work a bar is for), keeping the hub's download bars (minutes)."""
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    download_bars = not are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()  # switches the hub's bars off too
    if download_bars:
        enable_progress_bars()


def quiet_ultralytics() -> None:
    """Keep Ultralytics to its warnings: unset, it prints a settings banner at import (at
    every run where its settings file cannot be kept) and a summary per model."""
    import logging

    if "ultralytics" not in sys.modules:
        os.environ.setdefault("YOLO_VERBOSE", "False")
    import ultralytics  # noqa: F401  (configures its logger on import)

    logging.getLogger("ultralytics").setLevel(logging.WARNING)


HUB_PROBE_SECONDS = 1.5
"""How long the hub may take to answer before this run works offline."""

_hub_checked = threading.Lock()
_hub_probe: list[bool] = []


def use_hub(location: str) -> None:
    """Before ``location`` is asked of the hub: find out once per process whether the hub
    can be reached, and if not, go offline for the rest of the run, saying so in one line.

    Without this, huggingface_hub retries every file of every model for minutes on a
    machine without network ("Retrying in 8s [Retry 4/5]"); offline, a model in the cache
    loads at once and a missing one fails in seconds with the message naming its files.
    ``HF_HUB_OFFLINE`` set either way skips the check.
    """
    if Path(location).exists() or "HF_HUB_OFFLINE" in os.environ:
        return
    with _hub_checked:
        if _hub_probe:
            return
        endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        reason = _unreachable(endpoint, HUB_PROBE_SECONDS)
        _hub_probe.append(reason is None)
        if reason is None:
            return
        os.environ["HF_HUB_OFFLINE"] = "1"
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True  # read from the environment once, on import
        print(
            f"imgret: the model hub ({endpoint}) cannot be reached ({reason}); working "
            "offline for this run (set HF_HUB_OFFLINE=1 to skip this check)",
            file=sys.stderr,
        )


def _unreachable(url: str, timeout: float) -> str | None:
    """None when ``url`` answers an HTTP request within ``timeout`` seconds (any answer
    below 500: a server that answers makes the hub fail fast, not retry), else why not.

    urllib follows the proxy variables as the hub's client does; the request runs in a
    thread because a missing name resolver can stall longer than any socket timeout.
    """
    outcome: list[str | None] = []

    def ask() -> None:
        try:
            urlopen(Request(url, method="HEAD"), timeout=timeout).close()
            outcome.append(None)
        except HTTPError as exc:
            outcome.append(None if exc.code < 500 else f"HTTP {exc.code}")
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            outcome.append(getattr(reason, "strerror", None) or str(reason))

    probe = threading.Thread(target=ask, daemon=True, name="imgret-hub-probe")
    probe.start()
    probe.join(timeout * 2)
    return outcome[0] if outcome else f"no answer in {timeout:g} s"


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def missing_model_message(
    stage: str, model: str, files: Sequence[str], models_dir: Path | str, cause: BaseException
) -> str:
    folder = Path(models_dir) / model
    hint = (
        "the hub is switched off (HF_HUB_OFFLINE=1)"
        if is_offline() and _hub_probe != [False]
        else "it is not in the local cache and the hub could not be reached"
    )
    switch_off = "" if stage == "embedder" else f", or switch the stage off with --{stage} none"
    return (
        f"Cannot load the {stage} model '{model}': {hint}.\n"
        f"  Put its files ({', '.join(files)}) in {folder}/ and run again,\n"
        f"  or pick another model with --{stage} (a hub id or a local folder)"
        f"{switch_off}.\n"
        f"  ({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})"
    )


def unsafe_weights_message(stage: str, location: str | Path, cause: BaseException) -> str:
    """Why a weights file was refused: loading it would need a full unpickling.

    torch's own message is a page of advice to load the file unsafely; only the line that
    names what it refused (e.g. "Unsupported global: GLOBAL builtins.exec") is kept.
    """
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?: was not an allowed|\n\n|$)", str(cause))
    reason = found.group(1).strip() if found else type(cause).__name__
    return (
        f"Refused to load the {stage} weights {location}: the file is not plain weights "
        "(tensors and known model classes) or it is damaged; loading it in full could run "
        "whatever code it holds.\n"
        f"  Replace it with the model's original file (or a .safetensors / .onnx export), or "
        f"pick another model with --{stage}.\n"
        f"  ({reason})"
    )


def load_or_explain(
    stage: str,
    model: str,
    files: Sequence[str],
    models_dir: Path | str,
    load: Callable[[], T],
) -> T:
    """Run ``load``; turn 'not found / hub unreachable' into a :class:`ModelUnavailableError`
    and a pickle that ``weights_only=True`` refused (transformers and sentence-transformers
    load ``.bin`` files so) into an :class:`UnsafeWeightsError`."""
    try:
        return load()
    except pickle.UnpicklingError as exc:
        raise UnsafeWeightsError(unsafe_weights_message(stage, model, exc)) from exc
    except (OSError, ValueError) as exc:
        text = str(exc).lower()
        if isinstance(exc, ValueError) and "offline" not in text and "not found" not in text:
            raise
        raise ModelUnavailableError(
            missing_model_message(stage, model, files, models_dir, exc)
        ) from exc
