"""Cold start: from process start to the first result of ``imgret search``, and where it goes.

Two indexes of COCO sample photos, with vision stages off and each photo's first human
caption as its note: "minilm" (all-MiniLM-L6-v2, real weights, no topic model) and
"real-size" (the default architectures, RoBERTa-base topics + INSTRUCTOR-large, random
weights, from bench/real_size_models.py). Each is also padded with synthetic rows to
``--pad`` vectors, where loading the vectors starts to count.

Two measurements per index: the real command (``imgret search QUERY --index DIR``, timed
from launch to exit by this script), and the same calls made phase by phase in a fresh
interpreter: interpreter start, imgret imports, model-library imports (torch, transformers,
sentence-transformers), vector load (``Searcher``), model load, first query, next query.

    .venv/bin/python bench/cold_start.py [--images 100] [--pad 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUERIES = ("a red bus parked in a city street", "two people playing tennis on a court")


def driver(index: str, queries: tuple[str, ...]) -> dict[str, object]:
    """Run in a fresh interpreter: the phases of ``imgret search``, each timed."""
    phases = {"interpreter": time.time() - float(os.environ["IMGRET_BENCH_LAUNCHED"])}
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        phases[name] = time.perf_counter() - mark
        mark = time.perf_counter()

    import imgret.cli  # noqa: F401
    from imgret.retrieval.searcher import Searcher

    phase("imgret imports")
    import sentence_transformers  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    phase("model-library imports")
    searcher = Searcher(index)
    phase("vector load")
    searcher.stages  # noqa: B018  (loads the models)
    phase("model load")
    searcher.search(queries[0], k=10)
    phase("first query")
    searcher.search(queries[1], k=10)
    phase("next query")
    return {"phases_s": phases, "vectors": len(searcher)}


def first_captions(paths: list[Path]) -> dict[str, str]:
    """Each COCO photo's first human caption (the tests' corpus where the sample is missing)."""
    from real_size_models import coco_captions

    from tests.support.shared_data import COCO_SAMPLE

    captions = COCO_SAMPLE / "captions.json"
    if not captions.exists():
        corpus = coco_captions()
        return {p.name: corpus[i % len(corpus)] for i, p in enumerate(paths)}
    from imgret.evaluation.datasets import load_dataset

    first = {image.path.name: image.captions[0] for image in load_dataset(captions).images}
    return {p.name: first[p.name] for p in paths}


def build(index: Path, images: int, config, pad: int) -> None:
    """An index of COCO photos described by their first human caption, plus synthetic rows."""
    import shutil

    import numpy as np

    from imgret.index.build import build_index
    from imgret.index.store import ImageRow, Store, writer_lock
    from tests.support.galleries import coco_images

    if (index / "done").exists():
        return
    shutil.rmtree(index, ignore_errors=True)
    gallery = index / "gallery"
    gallery.mkdir(parents=True)
    paths = coco_images(images, fallback=True)
    for path in paths:
        shutil.copy(path, gallery / path.name)
    with writer_lock(index / "index"), Store.open(index / "index", create=True) as store:
        store.set_notes(first_captions(paths))
    build_index(gallery, index / "index", config, progress=True)
    with Store.open(index / "index") as store:
        _, matrix = store.vectors()
        rng = np.random.default_rng(0)
        for start in range(0, pad - len(paths), 10_000):
            rows = []
            for i in range(start, min(start + 10_000, pad - len(paths))):
                vector = matrix[i % len(matrix)] + 0.5 * rng.standard_normal(matrix.shape[1])
                rows.append(
                    ImageRow(
                        path=f"synthetic/{i:07d}.jpg",
                        size=0,
                        mtime_ns=0,
                        sha256="",
                        width=1,
                        height=1,
                        description="synthetic row",
                        embedder=config.embedder,
                        vector=(vector / np.linalg.norm(vector)).astype(np.float32),
                    )
                )
            store.upsert(rows)
    (index / "done").touch()


def run_cli(index: Path, query: str) -> float:
    script = Path(sys.executable).parent / "imgret"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "imgret.cli"]
    start = time.perf_counter()
    subprocess.run(
        [*command, "search", query, "--index", str(index)],
        check=True,
        capture_output=True,
        env=os.environ,
        cwd=REPO,
    )
    return time.perf_counter() - start


def run_driver(index: Path) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, __file__, "--driver", str(index)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "IMGRET_BENCH_LAUNCHED": repr(time.time())},
        cwd=REPO,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, default=100, help="COCO photos in each index")
    parser.add_argument("--pad", type=int, default=100_000, help="vectors in the padded index")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--which", nargs="+", default=["minilm", "real-size"])
    parser.add_argument("--root", type=Path, default=REPO / "tmp" / "bench-cold-start")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.driver:
        print(json.dumps(driver(args.driver, QUERIES)))
        return

    from common import busy_note, machine
    from real_size_models import real_size_models

    from imgret.config import Config

    note = busy_note()
    print(note)
    results: dict[str, object] = {"machine": machine(), "note": note, "runs": []}
    for which in args.which:
        if which == "minilm":
            config = Config(captioner=None, detector=None, topics=None, embedder="minilm")
        else:
            models = real_size_models()
            config = Config(
                captioner=None,
                detector=None,
                topics=str(models["topics"]),
                embedder=str(models["embedder"]),
            )
        for pad in (args.images, args.pad):
            folder = args.root / f"{which}-{pad}"
            build(folder, args.images, config, pad)
            for _ in range(args.repeats):
                cli = run_cli(folder / "index", QUERIES[0])
                run = {"models": which, "cli_s": cli, **run_driver(folder / "index")}
                results["runs"].append(run)
                print(json.dumps(run), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
