"""How varied a run's samples are against its data (issue 27's floor for a faster demo).

For each round of a run: --seeds samples at psi 1 (seed i's own noise, as the metrics rule
draws them) and every image of that round's dataset, read at the model's resolution, are
scored by the run's tagger (results/<run>/edits/tagger.npz, trained on the final images)
and summarised side by side:
- the share of images the tagger calls positive (score > 0.5) for each of its tags;
- the colour spread of the top third of the image (where the demo's hair is): the mean RGB
  of those rows per image, then the root of the summed per-channel variance over images
  (0-255 units); a generator that draws one hair colour scores low.
A sample share far from the data's, or a spread well under it, is mode dropping the
kimg count alone does not show.

    .venv/bin/python benchmarks/bench_diversity.py results/demo [--seeds 512]

--tagger scores with another run's tagger: a transfer run on a one-tag subset
(config/transfer-blonde.yaml) has no tagger of its own worth the name, so it is scored by
the demo's, like the base model it started from.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from ganflow.convnets import load_tagger  # noqa: E402
from ganflow.latents import seed_images  # noqa: E402
from ganflow.records import iterate_images  # noqa: E402
from ganflow.weights import load_export  # noqa: E402


def colour_spread(pixels: np.ndarray) -> float:
    """Root of the summed variance over images of each image's mean top-third colour."""
    top = pixels[:, : pixels.shape[1] // 3].reshape(len(pixels), -1, 3).astype(np.float64).mean(axis=1)
    return float(np.sqrt(top.var(axis=0).sum()))


def summary(pixels: np.ndarray, tagger) -> dict:
    shares = (tagger.scores(pixels) > 0.5).mean(axis=0)
    return {"images": len(pixels), "spread": colour_spread(pixels),
            **{tag: float(s) for tag, s in zip(tagger.tags, shares)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="results/<run>")
    ap.add_argument("--seeds", type=int, default=512)
    ap.add_argument("--tagger", type=Path, help="a tagger.npz (default: the run's edits/tagger.npz)")
    args = ap.parse_args()
    tagger = load_tagger(args.tagger or args.run / "edits" / "tagger.npz")
    rounds = sorted(args.run.glob("round-*/train/export.json"), key=lambda p: int(p.parent.parent.name[6:]))
    print("| round | kimg | images | colour spread | " + " | ".join(tagger.tags) + " |")
    print("|---" * (4 + len(tagger.tags)) + "|")
    for export in rounds:
        G, _, info = load_export(export.parent)
        data = np.concatenate([p for _, p in iterate_images(export.parent.parent / "dataset", 64, G.resolution)])
        fake = np.concatenate([p for _, p in seed_images(G, range(args.seeds), 1.0, noise_mode="random",
                                                         batch_size=64)])
        kimg = info.get("kimg", "?")
        for name, s in (("data", summary(data, tagger)), ("samples", summary(fake, tagger))):
            cells = [f"{s['spread']:.1f}"] + [f"{s[t]:.2f}" for t in tagger.tags]
            print(f"| {export.parent.parent.name} {name} | {kimg if name == 'samples' else ''} | {s['images']} | "
                  + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
