"""Packed dataset size and throughput against the classic per-LOD raw format and training's appetite.

Generates demo-like JPEGs (smooth colourful gradients with outlined shapes and a little
noise, made at 2x and Lanczos-reduced like the images stage does; their JPEG sizes match
real 64px/256px anime faces at the same quality within ~25%), packs them, and prints:
source bytes, packed bytes and ratio, the classic tool's raw per-LOD size (computed: every
LOD r = res, res/2, ..., 4 stored as r*r*3 uint8), packing images/s, and training-reader
images/s at several training resolutions with and without JPEG's DCT-domain downscale,
with the CPU time the reader used per wall second (how many cores it keeps busy).

    .venv/bin/python -m benchmarks.bench_dataset [--n 300] [--seconds 2]

What training consumes, for comparison (StyleGAN2-ADA PyTorch README, "Expected training
time", Tesla V100, sec/kimg -> real images/s): 128px 1 GPU 12.8 s/kimg = 78 img/s, 8 GPUs
3.9 s/kimg = 256 img/s; 256px 1 GPU 21.6 s/kimg = 46 img/s, 8 GPUs 4.4 s/kimg = 227 img/s;
512px 8 GPUs 9.5 s/kimg = 105 img/s.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ganflow.dataset import pack
from ganflow.records import dct_ratio, training_dataset
from ganflow.tables import write_tsv

IMAGE_COLUMNS = ["image", "id", "path", "source", "box", "width", "height", "format", "sha256", "upscale"]
# real images/s consumed by StyleGAN2-ADA training on V100s (README table, best sec/kimg)
CONSUMED = {128: 1000 / 3.9, 256: 1000 / 4.4, 512: 1000 / 9.5}


def demo_image(rng: np.random.Generator, res: int) -> Image.Image:
    """A smooth, colourful, outlined picture whose JPEG size is like a real face crop's."""
    big = res * 2
    img = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((big, big), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 12))):
        x, y = rng.integers(-big // 4, big, 2)
        w, h = rng.integers(big // 8, big // 2, 2)
        shape = draw.ellipse if rng.random() < 0.6 else draw.rectangle
        shape([int(x), int(y), int(x + w), int(y + h)], fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
              outline=(20, 15, 30), width=max(1, big // 64))
    for _ in range(int(rng.integers(8, 16))):
        draw.line([tuple(int(v) for v in rng.integers(0, big, 2)) for _ in range(3)],
                  fill=(30, 20, 40), width=max(1, big // 96))
    img = img.filter(ImageFilter.GaussianBlur(big / 256))
    noisy = np.asarray(img).astype(np.int16) + rng.normal(0, 3.0, (big, big, 3)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).resize((res, res), Image.LANCZOS)


def make_images(root: Path, n: int, res: int, quality: int, seed: int = 0) -> list[Path]:
    """n JPEGs in two image shards, with their images manifests; returns the manifests."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[dict]] = {"0000": [], "0001": []}
    for i in range(n):
        shard = f"{i % 2:04d}"
        path = root / "images" / shard / f"{1000 + i}-0.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        demo_image(rng, res).save(buf, "JPEG", quality=quality)
        path.write_bytes(buf.getvalue())
        rows[shard].append({"image": f"{1000 + i}-0", "id": 1000 + i, "path": str(path),
                            "source": f"mirror/original/{(1000 + i) % 1000:04d}/{1000 + i}.jpg",
                            "box": f"{i % 50},{i % 30},{res * 3},{res * 3}", "width": res, "height": res,
                            "format": "jpg", "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                            "upscale": "none"})
    manifests = []
    for shard, shard_rows in rows.items():
        manifests.append(root / "images" / f"{shard}.tsv")
        write_tsv(manifests[-1], shard_rows, IMAGE_COLUMNS)
    return manifests


def per_lod_bytes(res: int) -> int:
    """Raw uint8 bytes the classic tool stores per image: one r*r*3 array per LOD down to 4px."""
    total, r = 0, res
    while r >= 4:
        total += r * r * 3
        r //= 2
    return total


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_rate(dataset_dir: Path, resolution: int, dct: bool, seconds: float, batch: int = 32) -> tuple[float, float]:
    """Steady-state training-reader images/s and cores busy (process CPU s per wall s)."""
    it = iter(training_dataset(dataset_dir, resolution, batch, mirror=True, shuffle_buffer=512,
                               dct_downscale=dct))
    for _ in range(3):  # warm up: graph tracing, thread pools, first shuffle fill
        next(it)
    n, t0, c0 = 0, time.perf_counter(), cpu_seconds()
    while time.perf_counter() - t0 < seconds:
        x = next(it)
        n += int(x.shape[0])
    wall = time.perf_counter() - t0
    return n / wall, (cpu_seconds() - c0) / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="images at 64px and 256px (a fifth of it at 512px)")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality (the demo config's)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.0, help="per read measurement")
    args = ap.parse_args()
    start = time.perf_counter()
    print(f"CPUs: os.cpu_count()={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.2f} (the machine may be shared)")
    for res, n, train_res in ((64, args.n, [64]), (256, args.n, [256, 128, 64]), (512, args.n // 5, [256])):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            manifests = make_images(root, n, res, args.quality)
            t0 = time.perf_counter()
            meta = pack(manifests, root / "dataset", shards=args.shards, seed=0)
            pack_s = time.perf_counter() - t0
            src, packed, records = meta["source_bytes"], meta["packed_bytes"], meta["record_bytes"]
            lod = per_lod_bytes(res) * meta["count"]
            print(f"\n{meta['count']} JPEGs of {res}px (quality {args.quality}), {args.shards} shards")
            print(f"  source bytes          {src:>12,d}  ({src / meta['count']:,.0f} per image)")
            print(f"  packed bytes (GZIP)   {packed:>12,d}  ({packed / src:.3f}x source)")
            print(f"  records uncompressed  {records:>12,d}  ({records / src:.3f}x source)")
            print(f"  classic per-LOD raw   {lod:>12,d}  ({lod / src:.1f}x source; "
                  f"{per_lod_bytes(res):,d} bytes per image, LODs {res}..4)")
            print(f"  pack                  {meta['count'] / pack_s:>10,.0f} images/s  ({pack_s:.2f} s)")
            for r in train_res:
                modes = [True, False] if r < res else [True]
                for dct in modes:
                    rate, cores = read_rate(root / "dataset", r, dct, args.seconds)
                    k = dct_ratio(res, r) if dct else 1
                    how = "full size" if r == res else ("full decode + area resize" if k == 1 else
                                                        f"DCT 1/{k}" + (" + area resize" if res // k != r else ""))
                    need = (f"8xV100 StyleGAN2-ADA consumes {CONSUMED[r]:,.0f}" if r in CONSUMED
                            else "no published reference below 128px")
                    print(f"  read at {r:>3d}px  {how:<26s} {rate:>8,.0f} images/s, {cores:.2f} cores busy; {need}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
