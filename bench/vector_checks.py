"""What the vector checks of issue 11 cost: the search cache's check at every open, the
check of every vector when the cache is written, and ``imgret check``'s full comparison.

Rows are synthetic unit vectors (the checks never look at what they mean), written straight
into a fresh index.

    .venv/bin/python bench/vector_checks.py [--rows 100000] [--dim 384]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from imgret.index.check import _cache_problem
from imgret.index.search_cache import load_search_vectors
from imgret.index.store import Store, vector_problems
from tests.support.rows import stored_row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        index = Path(folder)
        rng = np.random.default_rng(0)
        template = stored_row("x.jpg", 0, dim=args.dim)
        with Store.open(index, create=True) as store:
            for start in range(0, args.rows, 10_000):
                block = rng.normal(size=(min(10_000, args.rows - start), args.dim))
                block = (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float32)
                rows = []
                for i, vector in enumerate(block):
                    row = stored_row(f"{start + i:08}.jpg", 0, dim=args.dim)
                    row.vector, row.embedder = vector, template.embedder
                    rows.append(row)
                store.upsert(rows)
            store.set_meta(dimension=args.dim)
        matrix = rng.normal(size=(args.rows, args.dim)).astype(np.float32)
        started = time.perf_counter()
        vector_problems(matrix)
        norms = time.perf_counter() - started
        started = time.perf_counter()
        load_search_vectors(index, "e1")
        write = time.perf_counter() - started
        opens = []
        for _ in range(5):
            started = time.perf_counter()
            load_search_vectors(index, "e1")
            opens.append(time.perf_counter() - started)
        with Store.open(index, readonly=True) as store:
            started = time.perf_counter()
            assert _cache_problem(store, "e1") is None
            full = time.perf_counter() - started
    print(f"{args.rows} rows x {args.dim}:")
    print(f"  norm check of the matrix (vector_problems)      {norms * 1e3:8.1f} ms")
    print(f"  cache written from the store (all rows checked) {write * 1e3:8.1f} ms")
    print(f"  cache opened and checked (32 rows), median of 5 {sorted(opens)[2] * 1e3:8.1f} ms")
    print(f"  imgret check's full cache comparison            {full * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
