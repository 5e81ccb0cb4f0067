"""How live the explorer is: latency of one image over HTTP, and what it holds under load.

Per model, a real server (`python -m ganflow.explore EXPORT --port 0`) on this machine and
clients over keep-alive HTTP, as the page talks to it:
- latency: --requests sequential POST /api/render, each a new seed and psi (what a dragged
  psi slider sends: the page keeps one request in flight), median and p95 in ms, end to
  end (request, queue, mapping, synthesis, PNG, response);
- load: --clients clients sending the same kind of requests back to back for --seconds;
  requests per second served, and the median and p95 latency they saw (the worker batches
  what waits, so throughput grows with load while each request waits longer).
Models: `demo`, the trained demo run (results/demo, its last round) when it exists, else
the demo's architecture (32 px) with random weights; `256`, a 256 px generator with random
weights and modest channels (z and w 256, 8 mapping layers, 128 channels at most: 128 up to
64 px, 64 at 128 px, 32 at 256 px). Speed does not depend on the weights.

    .venv/bin/python -m benchmarks.bench_explore [--models demo,256] [--requests 100] [--clients 4]
        [--seconds 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ganflow import networks, weights  # noqa: E402
from ganflow.explore import find_run  # noqa: E402
from ganflow.runlog import SetupError  # noqa: E402

DEMO_ARCH = dict(resolution=32, z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64)
ARCH_256 = dict(resolution=256, z_dim=256, w_dim=256, mapping_layers=8, channel_base=8192, channel_max=128)


def random_export(directory: Path, arch: dict) -> Path:
    """An export of a seeded random generator (and a small discriminator the explorer loads)."""
    keras.utils.set_random_seed(0)
    G = networks.Generator(**arch)
    D = networks.Discriminator(resolution=arch["resolution"], channel_base=1024, channel_max=64)
    weights.write_export(directory, G, D, {})
    return directory


def start(export: Path) -> tuple[subprocess.Popen, str, int]:
    proc = subprocess.Popen([sys.executable, "-m", "ganflow.explore", str(export), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"the explorer did not start for {export}")
    host, port = line.split("http://", 1)[1].split("/", 1)[0].split(":")
    return proc, host, int(port)


def timed_requests(host: str, port: int, first: int, count: int | None, until: float | None) -> list[float]:
    """Seconds per request of back-to-back renders on one keep-alive connection."""
    conn = http.client.HTTPConnection(host, port, timeout=120)
    out, i = [], first
    while (count is None or len(out) < count) and (until is None or time.perf_counter() < until):
        body = json.dumps({"seed": i, "psi": round(0.2 + (i % 100) / 125, 3)})
        t0 = time.perf_counter()
        conn.request("POST", "/api/render", body, {"Content-Type": "application/json", "X-Ganflow": "1"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"render failed with {r.status}")
        out.append(time.perf_counter() - t0)
        i += 1
    conn.close()
    return out


def ms(times: list[float]) -> str:
    return f"{np.median(times) * 1000:7.1f} {np.percentile(times, 95) * 1000:7.1f}"


def bench(name: str, export: Path, args: argparse.Namespace) -> None:
    proc, host, port = start(export)
    try:
        timed_requests(host, port, 10 ** 6, 10, None)  # connection set-up and first-call costs
        latency = timed_requests(host, port, 0, args.requests, None)
        until = time.perf_counter() + args.seconds
        per_client: list[list[float]] = [[] for _ in range(args.clients)]
        threads = [threading.Thread(target=lambda k=k: per_client[k].extend(
            timed_requests(host, port, 10 ** 7 * (k + 1), None, until))) for k in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        loaded = [x for c in per_client for x in c]
        print(f"{name:<34} {ms(latency)} {len(loaded) / wall:9.1f} {ms(loaded)}", flush=True)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="demo,256")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    names = args.models.split(",")
    print(f"{os.cpu_count()} CPUs; latency over {args.requests} sequential requests; load: {args.clients} clients "
          f"for {args.seconds:g} s")
    print(f"{'model':<34} {'median':>7} {'p95':>7} {'req/s':>9} {'median':>7} {'p95':>7}   (ms; load columns last)")
    with tempfile.TemporaryDirectory() as tmp:
        if "demo" in names:
            try:
                bench("demo (trained, 32 px)", find_run("results/demo").export, args)
            except SetupError:
                bench("demo architecture, random, 32 px", random_export(Path(tmp) / "demo", DEMO_ARCH), args)
        if "256" in names:
            bench("256 px, random weights", random_export(Path(tmp) / "256", ARCH_256), args)


if __name__ == "__main__":
    main()
