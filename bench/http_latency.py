"""Benchmark the web API over HTTP: text search and upload search latency.

    python bench/http_latency.py [--sizes 10000,100000] [--models tiny|base] [--requests 200]
                         [--concurrency 8] [--k 30] [--json]

For each collection size, synthetic clustered 512-d vectors are inserted through
the store (as the indexer would), the real app is served by uvicorn on a
loopback port, and an httpx client measures, per request:

* text search (``GET /api/v1/search``) and upload search (``POST
  /api/v1/search/image`` with a 1024x768 JPEG), p50 and p99;
* first one client at a time, then ``--concurrency`` clients at once (p50/p99 per
  request and requests per second);
* the same searches called in-process on the library (the baseline, same run),
  so the HTTP overhead shows as a difference and a ratio.

Models have random weights (pretrained ones cannot be downloaded here):
``tiny`` (default) costs almost nothing, so the figures show the server, the
store and the image decoding; ``base`` has the real ViT-B/32 and multilingual
DistilBERT shapes, so it adds the real embedding cost (builds in tens of seconds).
The machine is shared and noisy: compare figures as ratios within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from PIL import Image

from lookalike.collection import Collection
from lookalike.config import Settings
from lookalike.models import create_embedder
from lookalike.models.testing import build_random_clip, build_random_multilingual
from lookalike.records import Record
from lookalike.web import create_app

QUERIES = [
    "a dog on the beach", "chien sur la plage", "ein roter Kreis", "sunset over mountains",
    "красная машина", "recycling symbol", "a bowl of fruit", "城市的夜景", "green stripes",
    "two cats sleeping", "snow in the forest", "the estimated sign",
]  # fmt: skip


def clustered(n: int, dim: int, seed: int = 1, clusters: int = 500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    out = centers[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)).astype(
        np.float32
    ) * (0.35 / np.sqrt(dim))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def fill(collection: Collection, n: int, batch: int = 2000) -> float:
    """Insert ``n`` synthetic records through the store; seconds taken (with the index sync)."""
    store, embedder = collection.store, collection.embedder
    store.bind_model(embedder.info)
    vectors = clustered(n, embedder.dim)
    started = time.perf_counter()
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            folder = f"/bench/f{i % 200:03d}"
            rows.append(
                Record(
                    id=f"{i:012x}", path=f"{folder}/img{i:07d}.jpg", root="/bench",
                    relpath=f"f{i % 200:03d}/img{i:07d}.jpg", format="jpeg", size=200_000 + i,
                    mtime=1_600_000_000.0 + i, sha256=f"{i:064x}", width=4000, height=3000,
                    vector=vectors[i],
                )
            )  # fmt: skip
        store.upsert(rows)
    store.flush()
    sync = getattr(store, "sync_index", None)
    if sync is not None:
        sync()
    return time.perf_counter() - started


def timed_sync(collection: Collection) -> float:
    """Seconds to open the collection's vector index (from its saved files)."""
    started = time.perf_counter()
    sync = getattr(collection.store, "sync_index", None)
    if sync is not None:
        sync(persist=False)
    return time.perf_counter() - started


def query_jpeg() -> bytes:
    rng = np.random.default_rng(7)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
    out = io.BytesIO()
    coarse.resize((1024, 768), Image.Resampling.BICUBIC).save(out, "JPEG", quality=88)
    return out.getvalue()


class Server:
    def __init__(self, app: Any) -> None:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        with httpx.Client(base_url=self.url, timeout=5) as client:
            for _ in range(600):  # bounded wait for start-up (models load in the lifespan)
                self.thread.join(timeout=0.1)  # returns at once if the server thread died
                if not self.thread.is_alive():
                    break
                if not self.server.started:
                    continue
                client.get("/api/v1/health").raise_for_status()
                return self.url
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def pct(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2),
    }


def run_clients(
    call: Callable[[httpx.Client, int], None], url: str, total: int, clients: int
) -> dict[str, float]:
    """``total`` requests spread over ``clients`` concurrent clients (one connection each)."""
    per = max(1, total // clients)

    def worker(w: int) -> list[float]:
        times = []
        with httpx.Client(base_url=url, timeout=120) as client:
            for i in range(per):
                t = time.perf_counter()
                call(client, w * per + i)
                times.append(time.perf_counter() - t)
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = [t for chunk in pool.map(worker, range(clients)) for t in chunk]
    wall = time.perf_counter() - started
    return {**pct(times), "req_per_s": round(len(times) / wall, 1), "requests": len(times)}


def measure(
    n: int, args: argparse.Namespace, models: tuple[str, str], home: Path
) -> dict[str, Any]:
    settings = Settings(
        home=home / f"n{n}", image_model=models[0], text_model=models[1], collection="bench"
    )
    embedder = create_embedder(settings)
    embedder.load()
    collection = Collection(settings, embedder=embedder)
    fig: dict[str, Any] = {"n": n, "dim": embedder.dim}
    if collection.store.count() == n:  # kept from an earlier run (--home): only open it
        fig["open_s"] = round(timed_sync(collection), 1)
    else:
        fig["insert_s"] = round(fill(collection, n), 1)
    image = query_jpeg()
    searcher = collection.searcher

    def lib_text(i: int) -> None:
        searcher.text(QUERIES[i % len(QUERIES)], k=args.k)

    def lib_image(i: int) -> None:
        searcher.image(image, k=args.k)

    def http_text(client: httpx.Client, i: int) -> None:
        r = client.get("/api/v1/search", params={"q": QUERIES[i % len(QUERIES)], "k": args.k})
        r.raise_for_status()

    def http_image(client: httpx.Client, i: int) -> None:
        r = client.post(
            "/api/v1/search/image", params={"k": args.k}, files={"image": ("q.jpg", image)}
        )
        r.raise_for_status()

    for name, fn in (("library_text", lib_text), ("library_image", lib_image)):
        for i in range(5):
            fn(i)
        times = []
        for i in range(args.requests):
            t = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t)
        fig[name] = pct(times)

    app = create_app(settings, collection=collection, preload=False)
    with Server(app) as url:
        for name, call in (("http_text", http_text), ("http_image", http_image)):
            run_clients(call, url, 10, 1)  # warm-up
            fig[name + "_1"] = run_clients(call, url, args.requests, 1)
            fig[name + f"_{args.concurrency}"] = run_clients(
                call, url, args.requests, args.concurrency
            )
    collection.close()
    for kind in ("text", "image"):
        lib, one = fig[f"library_{kind}"]["p50_ms"], fig[f"http_{kind}_1"]["p50_ms"]
        fig[f"http_overhead_{kind}_ms"] = round(one - lib, 2)
        fig[f"http_vs_library_{kind}"] = round(one / lib, 2) if lib else None
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="collection sizes, comma-separated")
    ap.add_argument("--models", choices=["tiny", "base"], default="tiny")
    ap.add_argument("--requests", type=int, default=200, help="requests per measurement")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--k", type=int, default=30, help="results per request (the page's size)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument(
        "--home",
        type=Path,
        help="keep models and collections here and reuse them on the next run (a 1M "
        "collection takes many minutes to fill; default: a temporary folder)",
    )
    args = ap.parse_args()

    with contextlib.ExitStack() as stack:
        if args.home is not None:
            home = args.home.resolve()
            home.mkdir(parents=True, exist_ok=True)
        else:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lookalike-http-")))
        models = (home / f"clip-{args.models}", home / f"text-{args.models}")
        if not all((m / "modules.json").is_file() for m in models):
            print(f"building {args.models} random-weight models (dim 512) ...", file=sys.stderr)
            build_random_clip(models[0], size=args.models, dim=512)
            build_random_multilingual(models[1], size=args.models, dim=512)
        results = []
        for n in (int(s) for s in args.sizes.split(",")):
            print(f"n={n:,}: inserting and serving ...", file=sys.stderr)
            results.append(measure(n, args, (str(models[0]), str(models[1])), home))
    if args.json:
        print(json.dumps({"models": args.models, "k": args.k, "results": results}, indent=2))
        return
    c = args.concurrency
    print(
        f"\nHTTP latency, {args.models} random-weight models, k={args.k}, "
        f"{args.requests} requests each"
    )
    head = (
        f"{'n':>8} {'what':<14} {'library p50':>11} {'1 client p50/p99':>17} "
        f"{f'{c} clients p50/p99':>18} {'req/s':>7}"
    )
    print(head)
    print("-" * len(head))
    for fig in results:
        for kind, label in (("text", "text search"), ("image", "upload search")):
            one, many = fig[f"http_{kind}_1"], fig[f"http_{kind}_{c}"]
            print(
                f"{fig['n']:>8,} {label:<14} {fig[f'library_{kind}']['p50_ms']:>9.1f}ms "
                f"{one['p50_ms']:>7.1f} / {one['p99_ms']:>6.1f}ms "
                f"{many['p50_ms']:>8.1f} / {many['p99_ms']:>6.1f}ms "
                f"{many['req_per_s']:>7.1f}"
            )
        made = f"insert {fig['insert_s']} s" if "insert_s" in fig else f"open {fig['open_s']} s"
        print(f"{'':>8} {made}; HTTP overhead at p50: text "
              f"{fig['http_overhead_text_ms']} ms (x{fig['http_vs_library_text']}), upload "
              f"{fig['http_overhead_image_ms']} ms (x{fig['http_vs_library_image']})")  # fmt: skip


if __name__ == "__main__":
    main()
