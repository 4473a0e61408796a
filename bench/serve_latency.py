"""`imgret serve` through HTTP: search latency, throughput, first results, thumbnails.

An index of N rows (10^4 and 10^5) is written directly: each row is one of coco-sample's
annotated photos (its description composed from COCO's box counts, as the detector would),
its vector that description's all-MiniLM-L6-v2 vector with a little noise (so every row is
distinct), its file a symlink inside the gallery to that photo, and its content hash its
own (every thumbnail is made anew, none shared). Then `imgret serve` runs as a person runs
it, in its own process, and this process is the client:

- first results: seconds from the server's "ready" line to the first answered search;
- one client: p50/p99 of ``GET /api/search`` (k=20) over distinct COCO captions as queries,
  with the explanation the page asks for (each part of each hit scored), without it, and the
  explained queries asked again (query and part vectors known: the server's own cost);
- 8 concurrent clients on queries not asked before: queries per second and their p50/p99;
- thumbnails: the 40 hits of a query fetched by 6 parallel connections (a browser's per-host
  limit), cold (each made from the photo) and cached (read from the thumbnail folder).

    .venv/bin/python bench/serve_latency.py                 # 10^4 and 10^5, ~4 min on 2 cores
    .venv/bin/python bench/serve_latency.py --sizes 10000 --queries 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import COCO_SAMPLE, REPO, busy_note, machine
from real_size_models import coco_captions

from imgret import describe
from imgret.config import Config
from imgret.encode import TEXT_STAGES, encode
from imgret.index.store import ImageRow, Store
from imgret.models.stages import load_stages
from tests.support.coco_counts import ground_truth

CONFIG = Config(captioner=None, detector=None, topics=None, embedder="minilm", device="cpu")
NOISE = 0.05


def write_index(root: Path, n: int) -> Path:
    """An index of ``n`` rows over coco-sample's annotated photos (see the module's docstring)."""
    counts, _ = ground_truth()
    names = sorted(counts)
    gallery, index = root / "gallery", root / "index"
    (gallery / "photos").mkdir(parents=True)
    (gallery / "rows").mkdir()
    for name in names:
        shutil.copy(COCO_SAMPLE / "images" / name, gallery / "photos" / name)
    descriptions = [describe.compose_description(counts=dict(counts[name])) for name in names]
    _, _, base = encode(descriptions, load_stages(CONFIG, which=TEXT_STAGES), CONFIG)
    rng = np.random.default_rng(0)
    with Store.open(index, create=True) as store:
        store.set_meta(
            gallery=gallery.resolve().as_posix(),
            config=CONFIG.to_dict(),
            dimension=int(base.shape[1]),
            created=time.time(),
            updated=time.time(),
        )
        for start in range(0, n, 10_000):
            rows = []
            for i in range(start, min(n, start + 10_000)):
                photo = names[i % len(names)]
                link = gallery / "rows" / f"{i:06d}.jpg"
                link.symlink_to(Path("..") / "photos" / photo)
                stat = link.stat()
                vector = base[i % len(names)] + NOISE * rng.standard_normal(base.shape[1])
                rows.append(
                    ImageRow(
                        path=f"rows/{i:06d}.jpg",
                        size=stat.st_size,
                        mtime_ns=stat.st_mtime_ns,
                        sha256=hashlib.sha256(b"row %d" % i).hexdigest(),
                        width=640,
                        height=480,
                        counts=dict(counts[photo]),
                        description=descriptions[i % len(names)],
                        instruction=describe.instruction([]),
                        embedder=CONFIG.embedder,
                        vector=(vector / np.linalg.norm(vector)).astype(np.float32),
                    )
                )
            with store.transaction():
                store.upsert(rows)
    return index


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _long_query_status(port: int) -> int:
    """What a 100 KB query gets (httpx refuses to send a URL that long; http.client does)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/api/search?q=" + "a" * 100_000)
        return connection.getresponse().status
    finally:
        connection.close()


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def measure(index: Path, queries: list[str], clients: int, int8: bool = False) -> dict:
    import httpx

    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imgret.cli",
            "serve",
            "--index",
            str(index),
            "--port",
            str(port),
            "--device",
            "cpu",
            *(["--int8"] if int8 else []),
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert server.stderr is not None
    try:
        for line in server.stderr:
            if "ready" in line:
                break
        else:
            raise RuntimeError(f"imgret serve stopped with {server.wait()}")
        ready = time.perf_counter()
        threading.Thread(target=server.stderr.read, daemon=True).start()  # keep the pipe empty
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as web:

            def search(q: str, explain: bool = True, k: int = 20) -> tuple[float, dict]:
                start = time.perf_counter()
                response = web.get("/api/search", params={"q": q, "k": k, "explain": explain})
                response.raise_for_status()
                return time.perf_counter() - start, response.json()

            first_took, _ = search(queries[0])
            result: dict = {
                "start_to_ready_s": round(ready - started, 2),
                "ready_to_first_results_s": round(time.perf_counter() - ready, 3),
                "first_search_ms": round(first_took * 1e3, 1),
            }
            for q in queries[1:21]:  # warm-up
                search(q)
            rest = queries[21:]
            third = len(rest) // 3
            explained, plain, concurrent = rest[:third], rest[third : 2 * third], rest[2 * third :]
            result["one_client_explained"] = percentiles([search(q)[0] for q in explained])
            result["one_client_plain"] = percentiles([search(q, False)[0] for q in plain])
            # The same queries again: their vectors and parts are known (the next page, a
            # refresh), so this is the server's own cost beside the models.
            result["one_client_repeated"] = percentiles([search(q)[0] for q in explained])

            def client(share: list[str]) -> list[float]:
                with httpx.Client(base_url=base, timeout=60) as own:
                    took = []
                    for q in share:
                        start = time.perf_counter()
                        own.get("/api/search", params={"q": q, "k": 20}).raise_for_status()
                        took.append(time.perf_counter() - start)
                    return took

            shares = [concurrent[i::clients] for i in range(clients)]
            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                times = [t for share in pool.map(client, shares) for t in share]
            wall = time.perf_counter() - start
            result[f"{clients}_clients"] = {
                "queries_per_s": round(len(times) / wall, 1),
                **percentiles(times),
            }

            _, page = search("people walking in the street with umbrellas", k=40)
            urls = [hit["thumbnail_url"] for hit in page["hits"]]

            def fetch_all() -> float:
                start = time.perf_counter()
                with ThreadPoolExecutor(6) as pool:
                    for response in pool.map(web.get, urls):
                        response.raise_for_status()
                return time.perf_counter() - start

            result["thumbnails_40_cold_s"] = round(fetch_all(), 3)
            result["thumbnails_40_cached_ms"] = round(fetch_all() * 1e3, 1)
            result["query_of_100kb_status"] = _long_query_status(port)
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=320, help="distinct queries per size")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--int8", action="store_true", help="serve with int8 query encoding")
    args = parser.parse_args()
    note = busy_note()
    captions = list(dict.fromkeys(coco_captions()))
    queries = [captions[i] for i in np.random.default_rng(1).permutation(len(captions))]
    queries = queries[: args.queries]
    results = {"machine": machine(), "note": note, "sizes": {}}
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix="imgret-serve-bench-"))
        try:
            start = time.perf_counter()
            index = write_index(root, n)
            print(f"{n} rows written in {time.perf_counter() - start:.0f} s", file=sys.stderr)
            results["sizes"][n] = measure(index, queries, args.clients, args.int8)
            print(json.dumps({n: results["sizes"][n]}), file=sys.stderr)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
