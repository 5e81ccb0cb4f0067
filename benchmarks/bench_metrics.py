"""What FID, KID and precision/recall cost here, per 1k images and for the 50k protocol.

Rows:
- generate: seconds per 1k images of a generator (random weights; speed does not depend
  on training) at the demo's size and at 256px, untruncated with random noise, as the
  metrics rule draws them;
- inception: seconds per 1k images through Keras's Inception-v3 (299x299, pool3's 2048
  features) with random weights: the official graph's architecture and FLOPs, not the
  file itself (which this machine cannot download); the images are resized first;
- vgg16: the same through the metrics' own VGG16 (feature_nets.load_vgg16: resize to 224,
  13 convolutions, fc1, fc2's 4096) from a weights file of the real shapes with random
  values (528 MB, written to a temporary folder);
- fid / kid / pr: the arithmetic on random features of the real widths (2048, 2048, 4096)
  at a few sizes; FID's matrix root does not grow with N, KID grows with its subsets, and
  precision/recall's neighbour search with N^2, so the 50k estimate is extrapolated.
The last lines add the rows up for fid50k_full, kid50k_full and pr50k3_full against a
dataset of --reals images.

    .venv/bin/python benchmarks/bench_metrics.py [--images 64] [--reals 70000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganflow import networks  # noqa: E402
from ganflow.feature_metrics import fid, kid, mean_cov, precision_recall  # noqa: E402
from ganflow.feature_nets import VGG16_BLOCKS, load_vgg16  # noqa: E402
from ganflow.latents import seed_images  # noqa: E402

GENERATORS = {
    "demo (32px)": dict(resolution=32, z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64),
    "256px (paper256)": dict(resolution=256, z_dim=512, w_dim=512, mapping_layers=8, channel_base=16384,
                             channel_max=512),
}


def per_1k(seconds: float, n: int) -> float:
    return seconds / n * 1000


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def bench_generator(kwargs: dict, n: int) -> float:
    G = networks.Generator(**kwargs)
    list(seed_images(G, range(8), 1.0, noise_mode="random", batch_size=8))  # trace
    seconds, _ = timed(lambda: list(seed_images(G, range(n), 1.0, noise_mode="random", batch_size=16)))
    return per_1k(seconds, n)


def bench_features(features, n: int, batch: int = 16) -> float:
    """Seconds per 1k 256px uint8 images through `features` (images -> feature rows)."""
    images = np.random.default_rng(0).integers(0, 256, (batch, 256, 256, 3), np.uint8)
    features(images)  # trace
    t0 = time.perf_counter()
    for _ in range(-(-n // batch)):
        features(images)
    return per_1k(time.perf_counter() - t0, -(-n // batch) * batch)


def keras_features(net: keras.Model, side: int):
    forward = tf.function(lambda x: net(tf.image.resize(tf.cast(x, tf.float32), [side, side]), training=False))
    return lambda images: forward(images).numpy()


def vgg16_file(path: Path) -> Path:
    """Keras's VGG16 weights file layout with the real shapes and random values."""
    rng = np.random.default_rng(0)
    widths, channels = (64, 128, 256, 512, 512), 3
    with h5py.File(path, "w") as fh:
        for b, (count, width) in enumerate(zip(VGG16_BLOCKS, widths), 1):
            for i in range(1, count + 1):
                fh[f"block{b}_conv{i}/W"] = rng.normal(0, 0.05, (3, 3, channels, width)).astype(np.float32)
                fh[f"block{b}_conv{i}/b"] = np.zeros(width, np.float32)
                fh[f"block{b}_conv{i}"].attrs["weight_names"] = ["W", "b"]
                channels = width
        for name, shape in (("fc1", (7 * 7 * 512, 4096)), ("fc2", (4096, 4096))):
            fh[f"{name}/W"] = rng.normal(0, 0.01, shape).astype(np.float32)
            fh[f"{name}/b"] = np.zeros(shape[1], np.float32)
            fh[name].attrs["weight_names"] = ["W", "b"]
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64, help="images per network timing")
    ap.add_argument("--reals", type=int, default=70000, help="real images of the dataset (FFHQ: 70000)")
    args = ap.parse_args()
    rows: dict[str, float] = {}
    for name, kwargs in GENERATORS.items():
        rows[f"generate {name}"] = bench_generator(kwargs, args.images if kwargs["resolution"] <= 64 else 16)
        print(f"generate, {name}: {rows[f'generate {name}']:.1f} s per 1k images", flush=True)
    inception = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg",
                                               input_shape=(299, 299, 3))
    rows["inception"] = bench_features(keras_features(inception, 299), args.images)
    print(f"inception-v3 pool3 features (299x299): {rows['inception']:.1f} s per 1k images", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows["vgg16"] = bench_features(load_vgg16(vgg16_file(Path(tmp) / "vgg16.h5")), args.images)
    print(f"vgg16 fc2 features (load_vgg16, 224x224): {rows['vgg16']:.1f} s per 1k images", flush=True)

    rng = np.random.default_rng(0)
    feats = rng.standard_normal((10000, 2048)).astype(np.float32)
    t_fid, _ = timed(lambda: fid(mean_cov(feats[:5000]), mean_cov(feats[5000:])))
    print(f"fid arithmetic (2048-d, 5k vs 5k features; the matrix root dominates): {t_fid:.1f} s", flush=True)
    t_kid, _ = timed(kid, feats[:5000], feats[5000:], subsets=10, subset_size=1000)
    print(f"kid arithmetic: {t_kid / 10:.2f} s per subset of 1000 (the protocol: 100 subsets)", flush=True)
    pr = {}
    for n in (1000, 2000, 4000):
        x = rng.standard_normal((2 * n, 4096)).astype(np.float32)
        pr[n], _ = timed(precision_recall, x[:n], x[n:])
        print(f"precision/recall arithmetic (4096-d, {n} vs {n}, k=3): {pr[n]:.1f} s", flush=True)
    pr50k = pr[4000] * (50000 / 4000) ** 2

    gen = rows["generate 256px (paper256)"]
    print(f"\nfid50k_full / kid50k_full at 256px against {args.reals} reals, on this CPU: "
          f"{(50 * (gen + rows['inception']) + args.reals / 1000 * rows['inception'] + t_fid) / 3600:.1f} h "
          f"(features shared; KID's arithmetic adds {t_kid * 10:.0f} s)")
    print(f"pr50k3_full at 256px (50k generated vs 50k reals): "
          f"{(50 * (gen + 2 * rows['vgg16']) + pr50k) / 3600:.1f} h (neighbour search extrapolated as N^2: "
          f"{pr50k / 3600:.1f} h)")


if __name__ == "__main__":
    main()
