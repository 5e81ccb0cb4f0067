"""The project rules: real images into the final generator's W, each with its w.npz,
reconstruction, side-by-side sheet and a video of the optimisation.

The optimisation itself (the StyleGAN2 paper's projector) lives in inversion.py, which
the explorer shares; the encoder that gives it a starting point, in convnets.py.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from . import networks
from .annotate import caption, labelled_grid
from .config import defaults
from .convnets import load_encoder
from .imaging import ImageRejected, load_srgb, to_array
from .inversion import (DISTANCES, MODES, Features, Projection, Settings, check_vgg16, load_target, make_features,
                        project, reconstruct)
from .media import encode_batches, even_frame, save_png
from .runlog import SetupError, logged
from .tables import read_tsv, save_npz
from .weights import load_export

log = logging.getLogger(__name__)

# Defaults of the config sections this module serves (config/schema.yaml).
_VIDEO = defaults("project.video")


def projection_video(target: np.ndarray, frames: Sequence[tuple[int, np.ndarray]], steps: int,
                     out_mp4: str | os.PathLike, *, fps: float = _VIDEO["fps"], crf: float = _VIDEO["crf"]) -> None:
    """target | current image at each kept step, enlarged and captioned with the step."""
    res = target.shape[0]
    shown = [even_frame(caption(labelled_grid(np.concatenate([target, img], 1), res, res,
                                               col_labels=["target", "projection"]), f"step {i + 1}/{steps}"))
             for i, img in frames]
    encode_batches(lambda idx: np.stack([shown[i] for i in idx]), 1, len(shown), fps, out_mp4,
                    crf=crf, preset="medium", tune="animation")


def project_file(G: networks.Generator, features: Features, target_path: str | os.PathLike, out_dir: str | os.PathLike,
                 settings: Settings = Settings(), *, start: np.ndarray | None = None, frames: int = _VIDEO["frames"],
                 fps: float = _VIDEO["fps"], crf: float = _VIDEO["crf"], distance_name: str = "") -> Projection:
    """The project rule: out_dir/w.npz, reconstruction.png, sheet.png (target |
    reconstruction) and optimisation.mp4 for one image file."""
    out_dir = Path(out_dir)
    target = load_target(target_path, G.resolution)
    p = project(G, target, features, settings, start=start, frames=max(frames, 2))
    recon = reconstruct(G, p.ws, p.noise)
    res = G.resolution
    save_npz(out_dir / "w.npz", {"w": p.ws[None], "start": p.start, "distance": p.distance, "mse": p.mse,
                                 "mode": np.array(settings.mode), "metric": np.array(distance_name),
                                 **{f"noise_{i}": n for i, n in enumerate(p.noise)}})
    save_png(recon, out_dir / "reconstruction.png")
    save_png(labelled_grid(np.concatenate([target, recon], 1), res, res, col_labels=["target", "reconstruction"]),
             out_dir / "sheet.png")
    projection_video(target, p.frames, settings.steps, out_dir / "optimisation.mp4", fps=fps, crf=crf)
    mse = float(np.mean((recon.astype(np.float64) - target) ** 2))
    log.info("projected %s (%s, %s, %d steps): distance %.4f -> %.4f, PSNR %.2f dB; settings %s", target_path,
             settings.mode, distance_name, settings.steps, p.distance[0], p.distance[-1],
             10 * math.log10(255.0 ** 2 / max(mse, 1e-12)), asdict(settings))
    return p


def pick_dataset_image(manifests: Sequence[str | os.PathLike], k: int, count: int, out_png: str | os.PathLike) -> Path:
    """The project_target rule: final image k of `count` spread evenly over all of them (in
    image id order), saved as PNG for projection target dataset-k."""
    rows = sorted((row["image"], row["path"]) for m in manifests for row in read_tsv(m))
    if not 0 <= k < count or not rows:
        raise SetupError(f"dataset image {k} of {count} does not exist ({len(rows)} final images); "
                         "raise project.dataset_images or pick a smaller k")
    image, path = rows[k * len(rows) // count]
    try:
        pixels = to_array(load_srgb(path))
    except ImageRejected as exc:
        raise SetupError(f"final image {path} cannot be read ({exc}); rebuild the images stage") from None
    log.info("projection target dataset-%d is final image %s (%s)", k, image, path)
    return save_png(pixels, out_png)


def make_projection(export_dir: str | os.PathLike, target: str | os.PathLike, out_dir: str | os.PathLike, *,
                    settings: dict, distance_name: str, vgg16: str | os.PathLike | None = None,
                    vgg16_sha256: str | None = None, encoder_npz: str | os.PathLike | None = None,
                    video: dict | None = None) -> Projection:
    """The project rule: one image file into the final generator's W, started at the
    encoder's guess when there is an encoder."""
    G, D, _ = load_export(export_dir)
    if distance_name == "vgg16":
        check_vgg16(vgg16, vgg16_sha256)
    features = make_features(distance_name, D=D, vgg16=vgg16, resolution=G.resolution)
    start = None
    if encoder_npz:
        start = load_encoder(encoder_npz, G).guess(load_target(target, G.resolution))
    return project_file(G, features, target, out_dir, Settings(**settings), start=start, distance_name=distance_name,
                        **(video or {}))


def main(argv: Sequence[str] | None = None, prog: str = "python -m ganflow.project") -> int:
    """ganflow project --run <export dir> --out DIR IMAGE: one image file into a run's W, as
    the project rule does (same settings and defaults: config/schema.yaml's project:)."""
    d = defaults("project")
    parser = argparse.ArgumentParser(prog=prog, description="Project one image into a run's W: DIR/w.npz, "
                                     "reconstruction.png, sheet.png and optimisation.mp4.")
    parser.add_argument("image", help="the image file to project (its centred square is used)")
    parser.add_argument("--run", required=True, help="a run's export directory (holding export.json)")
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--distance", choices=DISTANCES, default="discriminator",
                        help="perceptual distance: the run's discriminator (nothing to download, the default "
                             "here) or vgg16 (needs --vgg16)")
    parser.add_argument("--vgg16", help="a local vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    parser.add_argument("--encoder", help="an encoder.npz trained for this run: the projection starts at its guess")
    parser.add_argument("--mode", choices=MODES, default=d["mode"], help=f"w or w+ (default {d['mode']})")
    parser.add_argument("--steps", type=int, default=d["steps"], help=f"optimisation steps (default {d['steps']})")
    parser.add_argument("--log", help="also log to this file")
    args = parser.parse_args(argv)
    if args.distance == "vgg16" and not args.vgg16:
        parser.error("--distance vgg16 needs --vgg16 FILE (the weights are a download; see README Projection)")
    settings = asdict(Settings(mode=args.mode, steps=args.steps))
    with logged(args.log):
        p = make_projection(args.run, args.image, args.out, settings=settings, distance_name=args.distance,
                            vgg16=args.vgg16, encoder_npz=args.encoder)
    print(f"{Path(args.out) / 'w.npz'}: distance {p.distance[-1]:.4f} after {args.steps} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
