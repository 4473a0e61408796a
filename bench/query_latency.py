"""Query latency: encoding one query against its arithmetic floor, and search over 10^4–10^6.

Encoding is what ``Searcher`` does for a query: the topic classifier picks the instruction,
the embedder turns (instruction, query) into a vector. Its floor is the arithmetic it cannot
avoid, 2 × parameters × tokens per model (embedding tables excluded: a lookup costs no
multiply), divided by the float32 matmul rate this machine reaches on a 2048² matmul,
measured in the same run.

On a CPU the same queries also run through int8 copies of the text models
(``Searcher(int8=True)``), against the same float32 floor.

Search is given the query vector: exact (imgret.retrieval.neighbours.ExactIndex, numpy), imgret's
sign codes (SignCodeIndex) at a few candidate counts, and FAISS's inverted file for
comparison: p50/p99 of single queries, batched queries, memory, and recall@10 against exact
search. Stored vectors are synthetic 768-d ones: "clustered" places them around random
centres, as a photo collection's embeddings group by subject, and queries near stored
vectors; "uniform" (random directions, no neighbourhoods, the worst case for any approximate
index); or "real": all-MiniLM-L6-v2 vectors of COCO-style descriptions (384-d).

    .venv/bin/python bench/query_latency.py                     # everything, ~6 min on 2 cores
    .venv/bin/python bench/query_latency.py --skip-encoding --sizes 10000 100000
    .venv/bin/python bench/query_latency.py --skip-encoding --sizes 50000 --data real
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch  # before ultralytics, which otherwise sets OMP_NUM_THREADS=1
from common import busy_note, machine, matmul_gflops, read_gbs, sync
from real_size_models import DEFAULT_ROOT, coco_captions, real_size_models

from imgret import describe
from imgret.config import Config
from imgret.encode import TEXT_STAGES, topics_and_instructions
from imgret.retrieval.neighbours import ExactIndex, SignCodeIndex, neighbour_recall, sign_codes
from tests.support.shared_data import COCO_SAMPLE, REPO

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
    """Per query: topics, embedder and total time, each beside its floors; on a CPU also with
    int8 copies of the text models (``Searcher(int8=True)``), against the same float32 floors.

    The arithmetic floor is 2 × parameters × tokens ÷ the matmul rate; the weight-streaming
    floor is the parameters' bytes ÷ the memory read rate (a model reads all its weights for
    any query, which for a dozen tokens can take longer than the arithmetic). Both rates are
    measured just before each query, so a busy machine slows floor and query alike. Beside
    them, the model's linear layers alone at the median query's shapes: a floor that
    counts how much slower thin matmuls run than the 2048² one.
    """
    from imgret.models.int8 import int8_text_stages
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
    instructions = [i for _, i in topics_and_instructions(queries, stages, config)]
    texts = {
        "topics": queries,
        "embedder": [i + q for i, q in zip(instructions, queries, strict=True)],
    }
    tokens = {
        name: [len(tokenizers[name](text).input_ids) for text in texts[name]] for name in texts
    }
    result: dict[str, object] = {
        "queries": len(queries),
        "parameters": params,
        "mean_tokens": {k: float(np.mean(v)) for k, v in tokens.items()},
        "linear_layers_alone_ms": {
            name: linear_layers_seconds(models_[name], int(np.median(tokens[name])), device) * 1e3
            for name in ("topics", "embedder")
        },
    }
    variants = {"float32": stages}
    if device == "cpu":
        variants["int8"] = int8_text_stages(stages)
    for variant, variant_stages in variants.items():
        result[variant] = _timed_queries(
            variant_stages, config, queries, tokens, params, width, device
        )
    return result


def _timed_queries(stages, config, queries, tokens, params, width, device) -> dict:
    """One query at a time through topics then embedder, each against its floors."""
    names = ("topics", "embedder", "total")
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    topics_and_instructions(queries[:2], stages, config)  # warm-up
    stages.embedder.embed([(describe.instruction([]), queries[0])])
    for i, query in enumerate(queries):
        rate, bandwidth = matmul_gflops(device=device, repeats=1), read_gbs(device)
        start = time.perf_counter()
        [(_, instruction)] = topics_and_instructions([query], stages, config)
        middle = time.perf_counter()
        stages.embedder.embed([(instruction, query)])
        end = time.perf_counter()
        took = {"topics": middle - start, "embedder": end - middle, "total": end - start}
        floors = {
            name: (
                2 * params[name] * tokens[name][i] / (rate * 1e9),
                params[name] * width[name] / (bandwidth * 1e9),
            )
            for name in ("topics", "embedder")
        }
        floors["total"] = tuple(map(sum, zip(floors["topics"], floors["embedder"], strict=True)))
        for name in names:
            arithmetic, streaming = floors[name]
            rows[name].append(
                {"s": took[name], "arithmetic": arithmetic, "floor": max(arithmetic, streaming)}
            )
    result = {}
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


def ivf_index(stored: np.ndarray, seed: int = 0):
    """FAISS's inverted file (√n cells learnt by k-means on 64 points per cell, Flat codes):
    the usual approximate index, measured beside the sign codes imgret uses."""
    import faiss

    n, dimension = stored.shape
    nlist = max(1, round(math.sqrt(n)))
    index = faiss.index_factory(dimension, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    sample = np.random.default_rng(seed).choice(n, min(n, 64 * nlist), replace=False)
    index.train(stored[np.sort(sample)])
    index.add(stored)
    return index


def search_rows(
    stored: np.ndarray,
    wanted: np.ndarray,
    label: dict,
    candidates: list[int],
    nprobes: list[int],
) -> list[dict]:
    """Exact; sign codes at each candidate count; FAISS IVF at each nprobe; same queries."""
    k, batch, rows = 10, min(64, len(wanted)), []
    exact = ExactIndex(stored)
    truth = exact.search(wanted, k)[1]

    def add(index, name: str, memory: int, built: float | None = None) -> None:
        found = index.search(wanted, k)[1]
        row = {**label, "index": name, "memory_mb": memory / 2**20, "build_s": built}
        rows.append({**row, **time_search(index, wanted, k, batch)})
        rows[-1]["recall@10"] = neighbour_recall(found, truth)
        print(json.dumps(rows[-1]), flush=True)

    add(exact, "exact", stored.nbytes)
    if importlib.util.find_spec("faiss") is None:
        return rows
    start = time.perf_counter()
    codes = sign_codes(stored)
    built = time.perf_counter() - start
    for count in candidates:
        index = SignCodeIndex(stored, candidates=count, codes=codes)
        add(index, f"sign codes, {count} candidates", stored.nbytes + codes.nbytes, built)
    start = time.perf_counter()
    ivf = ivf_index(stored)
    built = time.perf_counter() - start
    memory = ivf.ntotal * (ivf.code_size + 8) + ivf.nlist * ivf.d * 4
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        add(ivf, f"faiss IVF{ivf.nlist},Flat nprobe={nprobe}", memory, built)
    return rows


def real_vectors(n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """all-MiniLM-L6-v2 vectors (384-d) of n descriptions as imgret writes them: a human
    caption and the object counts of another COCO sample photo (~400 s per 5·10^4 on 2 cores;
    cached in tmp/bench-vectors). Queries are captions kept out of the descriptions. The
    sample has ~1,000 captions, so each recurs in n/1000 descriptions: near-duplicate groups
    that make neighbours easier to find than in a real collection."""
    folder = REPO / "tmp" / "bench-vectors"
    stored_file, queries_file = folder / f"real-{n}.npy", folder / f"real-{n}-queries.npy"
    if stored_file.exists() and queries_file.exists():
        return np.load(stored_file), np.load(queries_file)[:queries]
    from collections import Counter

    from imgret.describe import count_sentence
    from imgret.models.stages import load_stages

    instances = json.loads((COCO_SAMPLE / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in instances["categories"]}
    counts: dict[int, Counter] = {}
    for box in instances["annotations"]:
        counts.setdefault(box["image_id"], Counter())[names[box["category_id"]]] += 1
    sentences = [count_sentence(c) for c in counts.values()]
    rng = np.random.default_rng(0)
    captions = coco_captions()
    captions = [captions[i] for i in rng.permutation(len(captions))]
    held_out, kept = captions[:200], captions[200:]
    texts = [
        f"{kept[rng.integers(len(kept))].rstrip('.')}. {sentences[rng.integers(len(sentences))]}"
        for _ in range(n)
    ]
    config = Config(captioner=None, detector=None, topics=None, embedder="minilm", device="cpu")
    embedder = load_stages(config, which=["embedder"]).embedder
    stored = embedder.embed([("", text) for text in texts])
    wanted = embedder.embed([("", text) for text in held_out])
    folder.mkdir(parents=True, exist_ok=True)
    np.save(stored_file, stored)
    np.save(queries_file, wanted)
    return stored, wanted[:queries]


def search(
    sizes: list[int], kinds: list[str], candidates: list[int], nprobes: list[int], queries: int
) -> list[dict]:
    rows = []
    for n in sizes:
        for kind in kinds:
            if kind == "real":
                stored, wanted = real_vectors(n, queries)
            else:
                stored = stored_vectors(n, kind)
                wanted = query_vectors(stored, queries, kind)
            label = {"n": n, "data": kind, "dimension": stored.shape[1]}
            rows += search_rows(stored, wanted, label, candidates, nprobes)
            del stored, wanted
    return rows


def search_file(path: Path, candidates: list[int], nprobes: list[int], queries: int) -> list[dict]:
    """Real vectors (``imgret export``'s feature_matrix.npy): random rows held out as queries."""
    matrix = np.load(path).astype(np.float32)
    held_out = np.random.default_rng(0).choice(len(matrix), queries, replace=False)
    kept = np.ones(len(matrix), dtype=bool)
    kept[held_out] = False
    label = {"n": int(kept.sum()), "data": str(path), "dimension": matrix.shape[1]}
    return search_rows(matrix[kept], matrix[held_out], label, candidates, nprobes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--data",
        nargs="+",
        default=["clustered", "uniform"],
        choices=["clustered", "uniform", "real"],
        help="real: MiniLM vectors of COCO-style descriptions (slow to build, then cached)",
    )
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 500])
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
        results["search"] = search(
            args.sizes, args.data, args.candidates, args.nprobe, args.queries
        )
        if args.vectors:
            results["search"] += search_file(
                args.vectors, args.candidates, args.nprobe, args.queries
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
