"""Query latency: encoding one query against its arithmetic floor, and search over 10^4–10^6.

Encoding is what ``Searcher`` does for a query: the topic classifier picks the instruction,
the embedder turns (instruction, query) into a vector. Its floor is the arithmetic it cannot
avoid, 2 × parameters × tokens per model (embedding tables excluded: a lookup costs no
multiply), divided by the float32 matmul rate this machine reaches on a 2048² matmul,
measured in the same run.

Search is given the query vector: exact (imgret.vector_index.ExactIndex, numpy) and FAISS
inverted-file (FaissIndex) over 768-d unit vectors, p50/p99 of single queries, batched
queries, memory, and FAISS recall@10 against exact search. Stored vectors are synthetic:
"clustered" places them around random centres, as a photo collection's embeddings group by
subject, and queries near stored vectors; "uniform" (random directions, no neighbourhoods,
the worst case for any cell-based index) is reported too.

    .venv/bin/python bench/query_latency.py                     # everything, ~5 min on 2 cores
    .venv/bin/python bench/query_latency.py --skip-encoding --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch  # before ultralytics, which otherwise sets OMP_NUM_THREADS=1
from common import busy_note, machine, matmul_gflops, read_gbs, sync
from real_size_models import DEFAULT_ROOT, coco_captions, real_size_models

from imgret.config import Config
from imgret.vector_index import ExactIndex, FaissIndex, recall_at_k

DIMENSION = 768


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def compute_parameters(model: torch.nn.Module) -> int:
    """Parameters that take part in matmuls: all but embedding tables (lookups), each tensor
    counted once (T5 shares its token table between two modules)."""
    tables = {
        id(p)
        for m in model.modules()
        if isinstance(m, torch.nn.Embedding)
        for p in m.parameters(recurse=False)
    }
    return sum(p.numel() for p in model.parameters() if id(p) not in tables)


def linear_layers_seconds(model: torch.nn.Module, tokens: int, device: str) -> float:
    """Every linear layer of a model run alone on [tokens, in] (best of 3 each): what the
    matmuls cost at the query's own shapes, where a thin matmul runs below the 2048² rate."""
    total = 0.0
    with torch.inference_mode():
        for layer in model.modules():
            if isinstance(layer, torch.nn.Linear):
                x = torch.rand(tokens, layer.in_features, device=device, dtype=layer.weight.dtype)
                best = float("inf")
                for _ in range(4):
                    sync(device)
                    start = time.perf_counter()
                    layer(x)
                    sync(device)
                    best = min(best, time.perf_counter() - start)
                total += best
    return total


def encoding(models: dict[str, Path], queries: list[str], device: str) -> dict:
    """Per query: topics, embedder and total time, each beside its floors.

    The arithmetic floor is 2 × parameters × tokens ÷ the matmul rate; the weight-streaming
    floor is the parameters' bytes ÷ the memory read rate (a model reads all its weights for
    any query, which for a dozen tokens can take longer than the arithmetic). Both rates are
    measured just before each query, so a busy machine slows floor and query alike. Beside
    them, the model's linear layers alone at the median query's shapes: a floor that
    counts how much slower thin matmuls run than the 2048² one.
    """
    from imgret.indexer import TEXT_STAGES, topics_and_instructions
    from imgret.models.stages import load_stages

    config = Config(
        captioner=None,
        detector=None,
        topics=str(models["topics"]),
        embedder=str(models["embedder"]),
        device=device,
    )
    stages = load_stages(config, which=TEXT_STAGES)
    models_ = {"topics": stages.topics.model, "embedder": stages.embedder.model}
    params = {name: compute_parameters(model) for name, model in models_.items()}
    width = {name: next(model.parameters()).element_size() for name, model in models_.items()}
    tokenizers = {"topics": stages.topics.tokenizer, "embedder": stages.embedder.model.tokenizer}
    names = ("topics", "embedder", "total")
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    tokens: dict[str, list[int]] = {"topics": [], "embedder": []}
    topics_and_instructions(queries[:2], stages, config)  # warm-up
    stages.embedder.embed([("Represent the photo title:", queries[0])])
    for query in queries:
        rate, bandwidth = matmul_gflops(device=device, repeats=1), read_gbs(device)
        start = time.perf_counter()
        [(_, instruction)] = topics_and_instructions([query], stages, config)
        middle = time.perf_counter()
        stages.embedder.embed([(instruction, query)])
        end = time.perf_counter()
        texts = {"topics": query, "embedder": instruction + query}
        took = {"topics": middle - start, "embedder": end - middle, "total": end - start}
        floors = {}
        for name in ("topics", "embedder"):
            count = len(tokenizers[name](texts[name]).input_ids)
            tokens[name].append(count)
            floors[name] = (
                2 * params[name] * count / (rate * 1e9),
                params[name] * width[name] / (bandwidth * 1e9),
            )
        floors["total"] = tuple(map(sum, zip(floors["topics"], floors["embedder"], strict=True)))
        for name in names:
            arithmetic, streaming = floors[name]
            rows[name].append(
                {"s": took[name], "arithmetic": arithmetic, "floor": max(arithmetic, streaming)}
            )
    result: dict[str, object] = {
        "queries": len(queries),
        "parameters": params,
        "mean_tokens": {k: float(np.mean(v)) for k, v in tokens.items()},
        "linear_layers_alone_ms": {
            name: linear_layers_seconds(models_[name], int(np.median(tokens[name])), device) * 1e3
            for name in ("topics", "embedder")
        },
    }
    for name in names:
        seconds = [row["s"] for row in rows[name]]
        to_arithmetic = [row["s"] / row["arithmetic"] for row in rows[name]]
        to_floor = [row["s"] / row["floor"] for row in rows[name]]
        result[name] = {
            **percentiles(seconds),
            "arithmetic_floor_p50_ms": float(np.median([r["arithmetic"] for r in rows[name]]))
            * 1e3,
            "ratio_to_arithmetic_floor_p50": float(np.median(to_arithmetic)),
            "ratio_to_arithmetic_floor_best": float(np.min(to_arithmetic)),
            "ratio_to_roofline_floor_p50": float(np.median(to_floor)),
        }
    return result


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def stored_vectors(n: int, kind: str, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """n unit vectors, generated a chunk at a time so the peak stays near the result's size."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIMENSION), dtype=np.float32)
    # Clusters of about 100 photos (an event, a subject), not aligned with FAISS's cells.
    centres = unit_rows(rng, max(1, n // 100), DIMENSION) if kind == "clustered" else None
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        block = unit_rows(rng, rows, DIMENSION)
        if centres is not None:
            block += 0.8 * centres[rng.integers(len(centres), size=rows)]
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + rows] = block
    return out


def query_vectors(stored: np.ndarray, count: int, kind: str, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return unit_rows(rng, count, DIMENSION)
    near = stored[rng.integers(len(stored), size=count)] + 0.7 * unit_rows(rng, count, DIMENSION)
    return near / np.linalg.norm(near, axis=1, keepdims=True)


def time_search(index, queries: np.ndarray, k: int, batch: int) -> dict[str, float]:
    index.search(queries[:1], k)
    singles = []
    for query in queries:
        start = time.perf_counter()
        index.search(query[None], k)
        singles.append(time.perf_counter() - start)
    tracemalloc.start()
    start = time.perf_counter()
    index.search(queries[:batch], k)
    batched = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        **percentiles(singles),
        f"batch{batch}_ms_per_query": batched / batch * 1e3,
        "search_scratch_mb": peak / 2**20,
    }


def faiss_bytes(index: FaissIndex) -> int:
    """Memory of an IVF index: codes, ids and the cell centres."""
    inner = index.index
    if hasattr(inner, "invlists"):
        return inner.ntotal * (inner.code_size + 8) + inner.nlist * inner.d * 4
    return inner.ntotal * inner.d * 4


def search_rows(
    stored: np.ndarray, wanted: np.ndarray, label: dict, nprobes: list[int]
) -> list[dict]:
    """Exact, then FAISS at each nprobe, over the same stored vectors and queries."""
    k, batch, rows = 10, min(64, len(wanted)), []
    exact = ExactIndex(stored)
    truth = exact.search(wanted, k)[1]
    row = {**label, "index": "exact", "memory_mb": stored.nbytes / 2**20}
    rows.append({**row, **time_search(exact, wanted, k, batch), "recall@10": 1.0})
    print(json.dumps(rows[-1]), flush=True)
    if importlib.util.find_spec("faiss") is None:
        return rows
    start = time.perf_counter()
    approximate = FaissIndex(stored)
    built = time.perf_counter() - start
    for nprobe in nprobes:
        approximate.nprobe = nprobe
        found = approximate.search(wanted, k)[1]
        rows.append(
            {
                **label,
                "index": f"faiss IVF{approximate.index.nlist},Flat nprobe={nprobe}",
                "memory_mb": faiss_bytes(approximate) / 2**20,
                "build_s": built,
                **time_search(approximate, wanted, k, batch),
                "recall@10": recall_at_k(found, truth),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def search(sizes: list[int], kinds: list[str], nprobes: list[int], queries: int) -> list[dict]:
    rows = []
    for n in sizes:
        for kind in kinds:
            stored = stored_vectors(n, kind)
            wanted = query_vectors(stored, queries, kind)
            rows += search_rows(stored, wanted, {"n": n, "data": kind}, nprobes)
            del stored, wanted
    return rows


def search_file(path: Path, nprobes: list[int], queries: int) -> list[dict]:
    """Real vectors (``imgret export``'s feature_matrix.npy): random rows held out as queries."""
    matrix = np.load(path).astype(np.float32)
    held_out = np.random.default_rng(0).choice(len(matrix), queries, replace=False)
    kept = np.ones(len(matrix), dtype=bool)
    kept[held_out] = False
    label = {"n": int(kept.sum()), "data": str(path)}
    return search_rows(matrix[kept], matrix[held_out], label, nprobes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--data", nargs="+", default=["clustered", "uniform"])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--queries", type=int, default=100, help="search queries per setting")
    parser.add_argument("--vectors", type=Path, help="also search a real feature_matrix.npy")
    parser.add_argument("--encode-queries", type=int, default=30)
    parser.add_argument("--skip-encoding", action="store_true")
    parser.add_argument("--device", default="cpu", help="where queries are encoded")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--models", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    note = busy_note()
    rate, bandwidth = matmul_gflops(device=args.device), read_gbs(args.device)
    print(f"{note}; on {args.device}: 2048² matmul {rate:.1f} GFLOP/s, read {bandwidth:.1f} GB/s")
    results: dict[str, object] = {
        "machine": machine(),
        "note": note,
        "matmul_gflops": rate,
        "read_gbs": bandwidth,
    }
    if not args.skip_encoding:
        queries = coco_captions()[: args.encode_queries]
        models = real_size_models(args.models)
        results["encoding"] = encoding(models, queries, args.device)
        print(json.dumps(results["encoding"], indent=1), flush=True)
    if not args.skip_search:
        results["search"] = search(args.sizes, args.data, args.nprobe, args.queries)
        if args.vectors:
            results["search"] += search_file(args.vectors, args.nprobe, args.queries)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
