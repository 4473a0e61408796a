"""What every benchmark needs: an offline environment, the machine it ran on, a matmul rate.

Import this module before the model libraries (transformers, sentence-transformers,
ultralytics): it sets the tests' offline variables (tests/offline_env.py), which they read on
import.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tests.support.offline_env  # noqa: E402,F401  (the tests' offline environment)
from tests.support.galleries import coco_images  # noqa: E402,F401
from tests.support.shared_data import COCO_SAMPLE, REPO, YOLOX_NANO  # noqa: E402,F401

PACKAGES = ("torch", "transformers", "sentence-transformers", "ultralytics", "numpy", "faiss-cpu")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, object]:
    """CPU, cores, GPU, load and package versions: what a number means depends on all of them."""
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "versions": versions,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def busy_note() -> str:
    """A warning when other processes compete for the cores, so noisy numbers are labelled."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cores:
        return f"machine busy: load average {load:.1f} on {cores} cores before the run"
    return f"machine quiet: load average {load:.1f} on {cores} cores before the run"


def matmul_gflops(size: int = 2048, device: str = "cpu", repeats: int = 5) -> float:
    """The matmul rate of this machine (best of ``repeats``), the floor's yardstick: float32 on
    the CPU, float16 on a GPU (the precision imgret runs its models in there)."""
    import torch

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    a = torch.rand(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        a @ a
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def read_gbs(device: str = "cpu", megabytes: int = 512, repeats: int = 2) -> float:
    """Memory read rate (best of ``repeats``): summing a large array reads each byte once."""
    import torch

    a = torch.ones(megabytes << 18, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        a.sum()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return a.numel() * a.element_size() / best / 1e9


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
