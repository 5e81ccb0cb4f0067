"""Projection and tagger times.

projection, per model: the encoder's training time and how well it guesses (its w error
over the mean w's on fresh samples), then for images generated from known w (so a close
reconstruction exists) the steps and seconds until the pixel mean squared error (of the
image being optimised, [-1, 1] units; 0.04 is 20 dB PSNR) first falls under each of --mse,
starting at the mean w and at the encoder's guess, and the final error and the found w's
distance to the true one over the mean w's. Models:
`demo`, the trained demo run (results/demo/round-<last>/train, or --run), when it exists,
and `64`, the demo's architecture at 64 px with random weights (toRGB scaled so images
lie in [-1, 1], as a trained model's do). The distance is the
run's discriminator for `demo`, a random one for `64` (the same in both starts).

tagger: training time on --drawings demo drawings at 32 px (the demo's faces and tags),
held-out precision and recall of a few tags against the drawings' truth, and how many
images per second it scores.

    .venv/bin/python -m benchmarks.bench_project [--run DIR] [--models demo,64] [--steps 1000]
        [--targets 4] [--mse 0.1,0.05,0.035] [--encoder-steps 1000] [--drawings 300]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from ganflow import drawing, encoder, inversion, latents, networks, tagger  # noqa: E402
from ganflow.weights import load_export  # noqa: E402

DEMO_ARCH = dict(z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64)
TAGS = ("blonde_hair", "blue_hair", "long_hair", "smile")


def demo_run() -> Path | None:
    runs = sorted(Path("results/demo").glob("round-*/train/export.json"), key=lambda p: int(p.parts[-3][6:]))
    return runs[-1].parent if runs else None


def models(names: list[str], run: Path | None) -> list[tuple[str, networks.Generator, networks.Discriminator]]:
    out = []
    if "demo" in names:
        run = run or demo_run()
        if run is None:
            print("demo: no trained demo run (make demo first, or --run DIR); skipped")
        else:
            G, D, _ = load_export(run)
            out.append((f"demo ({run}, {G.resolution} px)", G, D))
    if "64" in names:
        keras.utils.set_random_seed(0)
        out.append(("64 px, random weights", tamed(networks.Generator(resolution=64, **DEMO_ARCH)),
                    networks.Discriminator(resolution=64, channel_base=1024, channel_max=64)))
    return out


def tamed(G: networks.Generator) -> networks.Generator:
    """Random weights make images far outside [-1, 1], where the uint8 target clips and no w
    matches it; the image is linear in the toRGB weights, so dividing them all by the
    images' spread brings it to a trained model's range."""
    images = G.synthesis(latents.map_latents(G, latents.seed_z(range(64), G.z_dim)), noise_mode="const")
    spread = float(np.std(images)) * 2.0
    for block in G.synthesis.blocks:
        block.torgb.conv.weight.assign(block.torgb.conv.weight / spread)
    return G


def bench_projection(name: str, G, D, args) -> None:
    t0 = time.perf_counter()
    E = encoder.train(G, encoder.EncoderSettings(steps=args.encoder_steps))
    print(f"{name}: encoder {args.encoder_steps} steps in {time.perf_counter() - t0:.1f} s, "
          f"w error {E.info['heldout_error']:.3f} of the mean w's")
    features = inversion.discriminator_features(D)
    settings = inversion.Settings(steps=args.steps)
    w_mean, _ = inversion.w_stats(G, settings.w_samples)
    thresholds = [float(t) for t in args.mse.split(",")]
    print(f"  {'target':>9} {'start':>8} {'s/step':>7} " + " ".join(f"{'mse<' + str(t):>14}" for t in thresholds)
          + f" {'final mse':>10} {'w error':>8}")
    for seed in range(args.targets):
        true = latents.map_latents(G, latents.seed_z([1000 + seed], G.z_dim), 0.7)[0]
        target = inversion.reconstruct(G, true, None)
        for label, start in (("mean w", None), ("encoder", E.guess(target))):
            t0 = time.perf_counter()
            p = inversion.project(G, target, features, settings, start=start)
            per_step = (time.perf_counter() - t0) / settings.steps
            reached = []
            for t in thresholds:
                below = np.flatnonzero(p.mse < t)
                reached.append(f"{below[0] + 1} ({(below[0] + 1) * per_step:.1f} s)" if below.size else "never")
            w_err = np.linalg.norm(p.ws[0] - true[0]) / np.linalg.norm(w_mean - true[0])
            cells = " ".join(f"{r:>14}" for r in reached)
            target_name = f"seed {1000 + seed}"
            print(f"  {target_name:>9} {label:>8} {per_step:7.3f} {cells} {p.mse[-1]:10.4f} {w_err:8.3f}")


def bench_tagger(n: int) -> None:
    rng = np.random.default_rng(0)
    pixels, tags = [], []
    for _ in range(n):
        dr = drawing.draw_picture(rng, (96, 160), (56, 80))
        x, y, w, h = dr.box
        face = dr.image.crop((x - w // 4, y - h // 4, x + w + w // 4, y + h + h // 4)).resize((32, 32), Image.LANCZOS)
        pixels.append(np.asarray(face))
        tags.append(set(dr.tags))
    pixels = np.stack(pixels)
    labels = np.array([[t in s for t in TAGS] for s in tags], np.float32)
    held = tagger.heldout_mask([str(i) for i in range(n)], 0.2)
    t0 = time.perf_counter()
    T = tagger.train(pixels[~held], labels[~held], TAGS)
    trained = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = T.scores(np.concatenate([pixels] * 4))
    rate = len(scores) / (time.perf_counter() - t0)
    print(f"tagger: {int((~held).sum())} drawings x {T.info['settings']['epochs']} epochs in {trained:.1f} s; "
          f"scores {rate:.0f} images/s")
    for tag, (p, r) in zip(TAGS, tagger.precision_recall(T.scores(pixels[held]), labels[held])):
        print(f"  {tag:>12}: held-out precision {p}, recall {r} ({int(labels[held, TAGS.index(tag)].sum())} "
              f"of {int(held.sum())} have it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a training run's export directory (default: the demo's)")
    parser.add_argument("--models", default="demo,64")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=4)
    parser.add_argument("--mse", default="0.1,0.05,0.035", help="pixel mean squared errors to reach, comma-separated")
    parser.add_argument("--encoder-steps", type=int, default=1000)
    parser.add_argument("--drawings", type=int, default=300)
    args = parser.parse_args()
    for name, G, D in models(args.models.split(","), args.run):
        bench_projection(name, G, D, args)
    bench_tagger(args.drawings)


if __name__ == "__main__":
    main()
