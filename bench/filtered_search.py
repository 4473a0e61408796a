"""Filtered search latency: the query grammar's filters at 10^5 images, exact and approximate.

An index of ``--images`` synthetic rows (384-d unit vectors around random centres, as
MiniLM's; counts, folders, dates and descriptions made up so that each filter below keeps
the share of rows it names) is searched through ``Searcher.search`` with the query vector
given, so the time is what the grammar adds to a search and what ranking costs, without the
embedder (bench/query_latency.py measures encoding). Each query is timed ``--repeat`` times;
p50 and p99 in milliseconds, beside unfiltered search, and whether every filtered search
returned its full k (no empty pages).

    .venv/bin/python bench/filtered_search.py [--images 100000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from common import busy_note, machine

from imgret.config import Config
from imgret.index.search_cache import load_search_vectors
from imgret.index.store import ImageRow, Store
from imgret.retrieval.searcher import Searcher

DIMENSION = 384
QUERIES = {
    "unfiltered": ("a photo", None),
    "1%: in:folder": ("a photo in:f07", 0.01),
    "1%: has:dog": ("a photo has:dog", 0.01),
    '1%: "exact words"': ('a photo "lighthouse"', 0.01),
    "1%: after:date": ("a photo after:2024-06", 0.01),
    "50%: has:person": ("a photo has:person", 0.5),
    "50%: -has:person": ("a photo -has:person", 0.5),
    "50%: before:date": ("a photo before:2020-01-01", 0.5),
    "50% and 1%: has:person in:f08": ("a photo has:person in:f08", 0.01),
}
"""Label → (query, share of the rows it keeps)."""


def make_index(folder: Path, n: int) -> Path:
    """``n`` rows whose made-up fields give each filter of QUERIES its share."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, DIMENSION)).astype(np.float32)
    with Store.open(folder, create=True) as store:
        store.set_meta(
            gallery=str(folder / "gallery"),
            config=Config(captioner=None, detector=None, topics=None, embedder="minilm").to_dict(),
        )
        for start in range(0, n, 10_000):
            rows = []
            for i in range(start, min(n, start + 10_000)):
                vector = centres[i % 200] + 0.8 * rng.standard_normal(DIMENSION)
                counts = {"person": 1 + i % 3} if i % 2 == 0 else {"car": 1}
                if i % 100 == 1:
                    counts["dog"] = 1
                day = "2024-07-01" if i % 100 == 3 else ("2019-05-05" if i % 2 else "2021-03-03")
                rows.append(
                    ImageRow(
                        path=f"f{i % 100:02d}/{i:07d}.jpg",
                        size=0,
                        mtime_ns=0,
                        sha256=f"{i:064x}",
                        width=640,
                        height=480,
                        counts=counts,
                        description=("a lighthouse by the sea" if i % 100 == 5 else "a photo")
                        + f" number {i}.",
                        embedder="minilm",
                        vector=(vector / np.linalg.norm(vector)).astype(np.float32),
                        taken=f"{day}T12:00:00",
                    )
                )
            store.upsert(rows)
    load_search_vectors(folder, "minilm")
    return folder


def measure(searcher: Searcher, query: str, vector: np.ndarray, k: int, repeat: int) -> dict:
    # The query vector is given: what is timed is the grammar, the candidates and the ranking.
    searcher.embed_queries = lambda texts: ([""] * len(texts), vector[None])  # type: ignore[method-assign]
    searcher.search(query, k=k)
    seconds, full = [], True
    for _ in range(repeat):
        started = time.perf_counter()
        hits = searcher.search(query, k=k)
        seconds.append(time.perf_counter() - started)
        full &= len(hits) == k
    ms = np.asarray(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "full_k": full,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--work", type=Path, help="keep the index here (default: a temp folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="imgret-filtered-"))
    index = work / f"index-{args.images}"
    if not (index / "index.sqlite3").exists():
        started = time.perf_counter()
        make_index(index, args.images)
        print(f"made {args.images} rows in {time.perf_counter() - started:.0f} s", flush=True)
    vector = np.random.default_rng(1).standard_normal(DIMENSION).astype(np.float32)
    vector /= np.linalg.norm(vector)
    results: dict[str, dict] = {"machine": machine(), "images": args.images, "k": args.k}
    note = busy_note()
    if note:
        print(note)
    for mode in ("exact", "approximate"):
        searcher = Searcher(index, approximate=mode == "approximate")
        base = None
        for label, (query, share) in QUERIES.items():
            found = measure(searcher, query, vector, args.k, args.repeat)
            base = base or found["p50_ms"]
            found["share"] = share
            found["vs_unfiltered"] = round(found["p50_ms"] / base, 2)
            results[f"{mode} {label}"] = found
            print(f"{mode:<12} {label:<34} {json.dumps(found)}", flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
