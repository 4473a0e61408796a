"""Ray's overhead: the same build in-process and on a local Ray, and what the one SQLite writer
sustains.

Each run builds a fresh index of the same images; the in-process and Ray runs alternate, so a
busy machine slows both alike. "Ray, cold" is the first build on a newly started Ray (its
workers import the model libraries); "Ray, warm" a later one on the running cluster, which is
what a cluster user sees. ``ray.init`` is timed apart. Every Ray build's rows are checked
against the in-process ones (same descriptions, vectors within 1e-5). Then the vision stages
alone through each engine: seconds to the first batch (Ray: its actors start, import torch
and load their models) and from there to the last, the cost that grows with the gallery.
``--cli`` times ``imgret index`` and ``imgret index --ray`` as a person runs them, each a
fresh process (imports, model loading, and for Ray its local cluster started and stopped).

    .venv/bin/python bench/ray_overhead.py                        # cpu profile, 239 images
    .venv/bin/python bench/ray_overhead.py --real-size --images 12  # the original's model sizes
    .venv/bin/python bench/ray_overhead.py --writer                # SQLite rows/s only
    .venv/bin/python bench/ray_overhead.py --cli --repeats 1       # the two commands
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (before ultralytics, which otherwise sets OMP_NUM_THREADS=1)
from common import REPO, YOLOX_NANO, busy_note, coco_images, machine

from imgret.config import Config, apply_profile
from imgret.index.build import build_index
from imgret.index.store import Store
from tests.support.rows import stored_row


def gallery_of(images: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for image in images:
        (folder / image.name).symlink_to(image)
    return folder


def rows_of(index: Path) -> dict:
    with Store.open(index) as store:
        return {row.path: row for row in store.rows()}


def same_rows(a: dict, b: dict) -> dict[str, object]:
    """Whether two indexes hold the same rows: descriptions, counts, vectors (max difference)."""
    same = a.keys() == b.keys() and all(
        (a[p].description, a[p].counts, a[p].caption, a[p].text_in_image)
        == (b[p].description, b[p].counts, b[p].caption, b[p].text_in_image)
        for p in a
    )
    worst = max((float(np.abs(a[p].vector - b[p].vector).max()) for p in a if p in b), default=0)
    return {"identical_descriptions": same, "max_vector_difference": worst}


def overhead(config: Config, images: list[Path], repeats: int, engine_options: dict) -> dict:
    import ray

    from imgret.index.engines import InProcessEngine
    from imgret.index.ray_engine import RayEngine

    work = Path(tempfile.mkdtemp(prefix="imgret-ray-bench-"))
    gallery = gallery_of(images, work / "gallery")
    results: dict[str, list[float]] = {"in_process_s": [], "ray_s": []}
    checks = []
    try:
        started = time.perf_counter()
        ray.init(include_dashboard=False)  # every core of this machine
        init_s = time.perf_counter() - started
        engine = RayEngine(**engine_options)
        for i in range(repeats):
            here = build_index(gallery, work / f"here-{i}", config, progress=False)
            results["in_process_s"].append(here.seconds)
            there = build_index(gallery, work / f"ray-{i}", config, progress=False, engine=engine)
            results["ray_s"].append(there.seconds)
            checks.append(same_rows(rows_of(work / f"here-{i}"), rows_of(work / f"ray-{i}")))
            print(
                f"  run {i + 1}: in-process {here.seconds:.1f} s, Ray {there.seconds:.1f} s "
                f"({there.seconds / here.seconds:.2f}x); {checks[-1]}",
                flush=True,
            )
        timeline = {
            "in_process": vision_timeline(InProcessEngine(), gallery, config),
            "ray": vision_timeline(engine, gallery, config),
        }
        print(f"  vision stages alone: {timeline}", flush=True)
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    warm_here = min(results["in_process_s"][1:] or results["in_process_s"])
    warm_ray = min(results["ray_s"][1:] or results["ray_s"])
    return {
        **results,
        "ray_init_s": init_s,
        "cold_ratio": results["ray_s"][0] / results["in_process_s"][0],
        "warm_ratio": warm_ray / warm_here,
        "cold_ratio_with_init": (results["ray_s"][0] + init_s) / results["in_process_s"][0],
        "checks": checks,
        "engine": engine_options,
        "vision_alone": timeline,
    }


def vision_timeline(engine: object, gallery: Path, config: Config) -> dict[str, float]:
    """Seconds to the engine's first batch of the whole gallery, and from it to the last."""
    paths = sorted(p.name for p in gallery.iterdir())
    started = time.perf_counter()
    first = None
    for _ in engine.analyse(gallery, paths, config):  # type: ignore[attr-defined]
        first = first or time.perf_counter()
    assert first is not None
    done = time.perf_counter()
    return {"first_batch_s": round(first - started, 2), "rest_s": round(done - first, 2)}


def commands(images: list[Path], repeats: int) -> dict[str, list[float]]:
    """``imgret index`` and ``imgret index --ray`` (cpu profile), each a fresh process."""
    work = Path(tempfile.mkdtemp(prefix="imgret-ray-cli-"))
    gallery = gallery_of(images, work / "gallery")
    imgret = [sys.executable, "-m", "imgret.cli", "index", str(gallery), "--profile", "cpu"]
    imgret += ["--detector", str(YOLOX_NANO), "--device", "cpu", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    took: dict[str, list[float]] = {"in_process_s": [], "ray_s": []}
    try:
        for i in range(repeats):
            for key, extra in (("in_process_s", []), ("ray_s", ["--ray"])):
                started = time.perf_counter()
                index = ["--index", str(work / f"{key}-{i}")]
                subprocess.run(
                    [*imgret, *index, *extra],
                    check=True,
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                took[key].append(round(time.perf_counter() - started, 2))
            print(f"  commands, run {i + 1}: {took}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return took


def writer_rows_per_second(n: int, dim: int, batch: int) -> float:
    """Rows/s of the build's commit path (upsert + meta in one transaction per batch)."""
    rows = [stored_row(f"folder/{i:08d}.jpg", i, dim=dim) for i in range(n)]
    folder = Path(tempfile.mkdtemp(prefix="imgret-writer-"))
    try:
        with Store.open(folder, create=True) as store:
            started = time.perf_counter()
            for start in range(0, n, batch):
                with store.transaction():
                    store.upsert(rows[start : start + batch])
                    store.set_meta(stages={"embedder": {"model": "e1", "revision": None}})
            return n / (time.perf_counter() - started)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None, help="default: all coco-sample")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--real-size", action="store_true", help="the original's model sizes")
    parser.add_argument("--writer", action="store_true", help="only the SQLite writer")
    parser.add_argument("--actor-cpus", type=float, default=1.0, help="num_cpus per actor")
    parser.add_argument(
        "--decode-cpus",
        type=float,
        default=1.0,
        help="num_cpus per decode task (unlike the "
        "actors' number, decoding runs as tasks of its own; equal, Ray Data fuses it into the "
        "first stage's actor)",
    )
    parser.add_argument("--cli", action="store_true", help="time the two commands only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    note = busy_note()
    results: dict[str, object] = {"machine": machine(), "note": note}
    print(note)
    if args.cli:
        took = commands(coco_images(args.images), args.repeats)
        ratios = [r / h for r, h in zip(took["ray_s"], took["in_process_s"], strict=True)]
        results["commands"] = {**took, "ratios": ratios}
        print(f"imgret index: {took}; --ray / in-process {[round(r, 2) for r in ratios]}")
    elif not args.writer:
        images = coco_images(args.images)
        if args.real_size:
            from real_size_models import real_size_models

            models = real_size_models()
            config = Config(**{s: str(p) for s, p in models.items()}, device="cpu")
        else:
            config = apply_profile("cpu", detector=str(YOLOX_NANO), device="cpu")
        name = "real-size" if args.real_size else "cpu profile"
        print(f"{name}: {len(images)} images, {args.repeats} runs each", flush=True)
        found = overhead(
            config,
            images,
            args.repeats,
            {"num_cpus": args.actor_cpus, "decode_cpus": args.decode_cpus},
        )
        results["overhead"] = {"profile": name, "images": len(images), **found}
        print(
            f"{name}: in-process {found['in_process_s']}, Ray {found['ray_s']} s; "
            f"ray.init {found['ray_init_s']:.1f} s; cold {found['cold_ratio']:.2f}x "
            f"({found['cold_ratio_with_init']:.2f}x with ray.init), warm {found['warm_ratio']:.2f}x"
        )
    writer = {}
    for dim in (384, 768) if not args.cli else ():
        for batch in (16, 256):
            rate = writer_rows_per_second(20_000, dim, batch)
            writer[f"dim {dim}, batch {batch}"] = rate
            print(f"SQLite writer, {dim}-d vectors, {batch} rows a transaction: {rate:,.0f} rows/s")
    if writer:
        results["writer_rows_per_s"] = writer
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
