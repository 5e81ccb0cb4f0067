"""Edits along directions in W, found three ways, applied to seeds or to projected images.

- SeFa (Shen & Zhou 2021, closed-form factorisation): a step n in W changes layer l's
  styles by A_l n, A_l being its affine (modulation) weights; the directions that change
  the styles most are the top eigenvectors of sum_l A_l^T A_l. From the weights alone.
- GANSpace (Harkonen et al. 2020): principal components of sampled w; the directions
  along which the mapping network spreads its outputs most.
- Tag directions (InterFaceGAN, Shen et al. 2020): a tagger trained on the dataset's own
  tags (tagger.py) labels generated samples; a linear boundary per tag in W separates
  the most and least tagged, and its normal is the edit. A conditional direction is
  made orthogonal to other tags' normals, so that it moves its tag but not theirs.

Every direction is a unit vector with a scale, the standard deviation of sampled w along
it, so a strength of 2 means two standard deviations whatever the method. Images start
from seeds exactly as the samples stage makes them (latents.py: truncation psi, constant noise), or from a
projection's w.npz with its own noise, so strength 0 is the sample or the reconstruction.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from . import networks
from .annotate import caption, labelled_grid
from .config import defaults
from .convnets import Tagger
from .latents import (DEFAULT_PSI, Directions, load_directions, load_w, map_latents, parse_seeds, render,
                      save_directions, seed_ws, w_samples)
from .media import encode_batches, even_frame, save_png, tile
from .runlog import SetupError, logged, progress
from .tables import write_tsv
from .weights import load_export

log = logging.getLogger(__name__)

# Defaults of the config sections this module serves (config/schema.yaml).
_DEFAULTS = defaults("edit")
_BOUNDARY = defaults("edit.boundary")
_VIDEO = defaults("edit.video")
STRENGTHS = tuple(_DEFAULTS["strengths"])  # figure columns, in standard deviations of w

TAG_COLUMNS = ["direction", "tag", "precision", "recall", "boundary_accuracy", "score_minus", "score_zero",
               "score_plus"]
SCORE_COLUMNS = ["seed", "strength", "score"]


def _oriented(vectors: np.ndarray) -> np.ndarray:
    """Unit rows, each signed so that its largest component is positive: eigenvectors have
    no sign of their own, and a rerun on another LAPACK must not flip an edit."""
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    signs = np.sign(vectors[np.arange(len(vectors)), np.argmax(np.abs(vectors), axis=1)])
    return vectors * signs[:, None]


def layer_range(G: networks.Generator, layers: str) -> tuple[int, int]:
    """[start, stop) w indices of 'all' or a style group (coarse, middle, fine)."""
    if layers == "all":
        return 0, G.num_ws
    groups = networks.style_groups(G.resolution)
    if layers not in groups:
        raise SetupError(f"edit layers {layers!r} is not known; use all or one of {', '.join(groups)}")
    return groups[layers]


def _check_k(G: networks.Generator, k: int) -> None:
    if not 1 <= k <= G.w_dim:
        raise SetupError(f"edit.k is {k}; it must lie in 1..{G.w_dim} (this generator's w_dim)")


def _directions(prefix: str, vectors: np.ndarray, w: np.ndarray, layers: tuple[int, int]) -> Directions:
    vectors = _oriented(vectors)
    return Directions([f"{prefix}-{i}" for i in range(len(vectors))], vectors, (w @ vectors.T).std(0),
                      np.tile(np.array(layers, np.int64), (len(vectors), 1)))


def sefa(G: networks.Generator, k: int, *, layers: str = _DEFAULTS["sefa_layers"],
         samples: int = _DEFAULTS["samples"]) -> Directions:
    """The k directions that change the styles of `layers` most (each style channel's weight
    column normalised first, so no channel dominates by its scale)."""
    _check_k(G, k)
    start, stop = layer_range(G, layers)
    # Synthesis conv i is driven by w index i.
    mats = [conv.conv.affine.weight.numpy() for i, conv in enumerate(G.synthesis.convs) if start <= i < stop]
    if not mats:
        raise SetupError(f"edit layers {layers!r} hold no modulated convolution in this generator; use all")
    a = np.concatenate(mats, axis=1).astype(np.float64)
    a /= np.linalg.norm(a, axis=0, keepdims=True) + 1e-12
    values, vectors = np.linalg.eigh(a @ a.T)
    top = vectors[:, np.argsort(values)[::-1][:k]].T
    return _directions("sefa", top, w_samples(G, samples), (start, stop))


def ganspace(G: networks.Generator, k: int, *, samples: int = _DEFAULTS["samples"]) -> Directions:
    """The top k principal components of sampled w."""
    _check_k(G, k)
    w = w_samples(G, samples)
    _, _, vt = np.linalg.svd(w - w.mean(0), full_matrices=False)
    return _directions("ganspace", vt[:k], w, (0, G.num_ws))


def make_directions(G: networks.Generator, method: str, out_npz: str | os.PathLike, *, k: int = _DEFAULTS["k"],
                    layers: str = "all", samples: int = _DEFAULTS["samples"]) -> Directions:
    """The edit_sefa and edit_ganspace rules."""
    if method == "sefa":
        d = sefa(G, k, layers=layers, samples=samples)
    elif method == "ganspace":
        d = ganspace(G, k, samples=samples)
    else:
        raise SetupError(f"unsupervised method {method!r} is not known; use sefa or ganspace")
    save_directions(d, out_npz)
    log.info("%s: %d directions, scales %s", method, len(d.names), np.round(d.scales, 3).tolist())
    return d


# ----- figures and videos ------------------------------------------------------------------


def direction_figure(G: networks.Generator, d: Directions, out_png: str | os.PathLike, *, seed: int = _DEFAULTS["seed"],
                     strengths: Sequence[float] = STRENGTHS, psi: float = DEFAULT_PSI,
                     names: Sequence[str] | None = None) -> Path:
    """Rows: directions; columns: strengths; every cell the seed's image moved that far."""
    names = list(names or d.names)
    base = seed_ws(G, [seed], psi)[0]
    images = render(G, np.stack([d.shift(base, n, s) for n in names for s in strengths]))
    res = G.resolution
    return save_png(labelled_grid(tile(images, len(strengths)), res, res, col_labels=[f"{s:+g}" for s in strengths],
                                  row_labels=names), out_png)


def direction_video(G: networks.Generator, d: Directions, out_mp4: str | os.PathLike, *,
                    seeds: Sequence[int] | str = _DEFAULTS["seeds"], strength: float = _VIDEO["strength"], seconds: float = _VIDEO["seconds"],
                    fps: float = _VIDEO["fps"], psi: float = DEFAULT_PSI, batch: int = 16, crf: float = _VIDEO["crf"]) -> dict:
    """Each direction in turn, the seeds side by side swinging from 0 to +strength, to
    -strength and back (one sine period per direction), captioned with the name."""
    seeds = parse_seeds(seeds)
    per = max(2, int(round(seconds * fps)))
    count = per * len(d.names)
    base = seed_ws(G, seeds, psi)
    res = G.resolution

    def frames(idx: np.ndarray) -> np.ndarray:
        out = []
        for j in idx:
            name, s = d.names[j // per], strength * math.sin(2 * math.pi * (j % per) / per)
            images = render(G, d.shift(base, name, s))
            big = labelled_grid(tile(images, len(seeds)), res, res)
            out.append(even_frame(caption(big, f"{name} {s:+.1f}")))
        return np.stack(out)

    encode_batches(frames, max(1, batch // len(seeds)), count, fps, out_mp4, crf=crf, preset="medium",
                    tune="animation")
    return {"frames": count, "directions": len(d.names)}


# ----- tag directions ----------------------------------------------------------------------


def label_samples(G: networks.Generator, T: Tagger, n: int, *, seed: int = _BOUNDARY["seed"], psi: float = 1.0,
                  batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """w [n, w_dim] of n fresh samples and the tagger's scores [n, tags] of their images."""
    z = np.random.RandomState(seed).randn(n, G.z_dim).astype(np.float32)
    ws, scores = [], []
    for i in progress(range(0, n, batch), desc="label samples", unit="batch"):
        w = map_latents(G, z[i:i + batch], psi, batch_size=batch)
        scores.append(T.scores(render(G, w, batch_size=batch)))
        ws.append(w[:, 0])
    return np.concatenate(ws).astype(np.float64), np.concatenate(scores)


def fit_boundary(x: np.ndarray, y: np.ndarray, *, ridge: float = 1e-3, iterations: int = 30
                 ) -> tuple[np.ndarray, float]:
    """Logistic regression (Newton's method, on standardised x for conditioning): weights and
    bias in x's own units, logit = x @ weights + bias, positive for y = 1."""
    mu, sd = x.mean(0), x.std(0) + 1e-12
    xs = np.concatenate([(x - mu) / sd, np.ones((len(x), 1))], 1)
    beta = np.zeros(xs.shape[1])
    penalty = ridge * len(x) * np.eye(xs.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(xs @ beta, -30, 30)))
        hess = (xs * (p * (1 - p))[:, None]).T @ xs + penalty
        beta -= np.linalg.solve(hess, xs.T @ (p - y) + penalty @ beta)
    weights = beta[:-1] / sd
    return weights, float(beta[-1] - mu @ weights)


def boundary(w: np.ndarray, score: np.ndarray, quantile: float, heldout: float = 0.2
             ) -> tuple[np.ndarray, float]:
    """(unit normal, held-out accuracy) of a boundary between the `quantile` most and least
    tagged samples (InterFaceGAN trains on the confident ends only: the middle is where the
    tagger itself is unsure). Every round(1/heldout)-th of those samples is held out for the
    accuracy; the normal is then fitted on all of them."""
    if not 0 < quantile <= 0.5:
        raise SetupError(f"edit.boundary.quantile is {quantile}; it must lie in (0, 0.5]")
    order = np.argsort(score, kind="stable")
    m = max(2, int(len(score) * quantile))
    x = w[np.concatenate([order[:m], order[-m:]])]
    y = np.concatenate([np.zeros(m), np.ones(m)])
    test = np.arange(2 * m) % max(2, round(1 / heldout)) == 0
    weights, bias = fit_boundary(x[~test], y[~test])
    accuracy = float(np.mean((x[test] @ weights + bias > 0) == (y[test] > 0.5)))
    weights, _ = fit_boundary(x, y)
    return weights / np.linalg.norm(weights), accuracy


def conditional(normal: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    """`normal` with its component in the span of `others` removed, renormalised."""
    if not others:
        return normal
    basis = np.stack(others, 1)
    rest = normal - basis @ np.linalg.lstsq(basis, normal, rcond=None)[0]
    size = np.linalg.norm(rest)
    if size < 1e-6:
        raise SetupError("a conditional tag direction lies in the span of the tags it is conditioned on; "
                         "remove that condition from edit.conditional")
    return rest / size


def tag_directions(G: networks.Generator, T: Tagger, *, samples: int = _BOUNDARY["samples"], seed: int = _BOUNDARY["seed"],
                   quantile: float = _BOUNDARY["quantile"], conditions: Mapping[str, Sequence[str]] | None = None
                   ) -> tuple[Directions, dict[str, float]]:
    """A direction tag-<tag> per tagger tag, and tag-<tag>-cond for each tag of `conditions`
    (orthogonal to the listed tags' directions); and each boundary's held-out accuracy."""
    conditions = dict(conditions or {})
    unknown = sorted({t for k, v in conditions.items() for t in [k, *v]} - set(T.tags))
    if unknown:
        raise SetupError(f"edit.conditional names tag {unknown[0]!r}, which the tagger does not know; "
                         f"its tags are {', '.join(T.tags)}")
    w, scores = label_samples(G, T, samples, seed=seed)
    normals, accuracy = {}, {}
    for k, tag in enumerate(T.tags):
        normals[tag], accuracy[f"tag-{tag}"] = boundary(w, scores[:, k], quantile)
    names = [f"tag-{t}" for t in T.tags]
    vectors = [normals[t] for t in T.tags]
    for tag, others in sorted(conditions.items()):
        names.append(f"tag-{tag}-cond")
        vectors.append(conditional(normals[tag], [normals[o] for o in others]))
        accuracy[names[-1]] = accuracy[f"tag-{tag}"]
    vectors = np.stack(vectors)  # already oriented: towards the tag
    d = Directions(names, vectors, (w @ vectors.T).std(0), np.tile(np.array([0, G.num_ws]), (len(names), 1)))
    return d, accuracy


def tag_of(name: str) -> str:
    """The tagger tag a tag direction moves: tag-blonde_hair(-cond) -> blonde_hair."""
    return name[len("tag-"):].removesuffix("-cond")


def tag_scores(G: networks.Generator, T: Tagger, d: Directions, name: str, seeds: Sequence[int],
               strengths: Sequence[float], psi: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [seeds, strengths, res, res, 3] of the seeds moved along `name`, and the
    tagger's score of its tag for each [seeds, strengths]."""
    base = seed_ws(G, seeds, psi)
    ws = np.stack([d.shift(base, name, s) for s in strengths], 1).reshape(-1, G.num_ws, G.w_dim)
    images = render(G, ws)
    scores = T.scores(images)[:, T.tags.index(tag_of(name))]
    res = G.resolution
    return images.reshape(len(seeds), len(strengths), res, res, 3), scores.reshape(len(seeds), len(strengths))


def make_tag_directions(G: networks.Generator, T: Tagger, out_npz: str | os.PathLike,
                        out_tsv: str | os.PathLike, *, samples: int = _DEFAULTS["samples"], seed: int = _DEFAULTS["seed"], quantile: float = _BOUNDARY["quantile"],
                        conditions: Mapping[str, Sequence[str]] | None = None, seeds: Sequence[int] | str = "0-15",
                        strength: float = _VIDEO["strength"], psi: float = DEFAULT_PSI) -> Directions:
    """The edit_boundaries rule: the tag directions, and per direction the tagger's held-out
    precision and recall, the boundary's held-out accuracy and the tagger's mean score of
    `seeds` moved by -strength, 0 and +strength (the edit works if it rises)."""
    seeds = parse_seeds(seeds)
    d, accuracy = tag_directions(G, T, samples=samples, seed=seed, quantile=quantile, conditions=conditions)
    save_directions(d, out_npz)
    metrics = T.info.get("metrics", {})
    rows = []
    for name in d.names:
        _, scores = tag_scores(G, T, d, name, seeds, (-strength, 0.0, strength), psi)
        tag = tag_of(name)
        rows.append({"direction": name, "tag": tag, **{k: "" if v is None else round(v, 4)
                                                        for k, v in metrics.get(tag, {}).items()},
                     "boundary_accuracy": round(accuracy[name], 4), "score_minus": round(float(scores[:, 0].mean()), 4),
                     "score_zero": round(float(scores[:, 1].mean()), 4),
                     "score_plus": round(float(scores[:, 2].mean()), 4)})
        log.info("%s: boundary accuracy %.3f; mean tagger score %.3f at %+g, %.3f at 0, %.3f at %+g", name,
                 accuracy[name], rows[-1]["score_minus"], -strength, rows[-1]["score_zero"],
                 rows[-1]["score_plus"], strength)
    write_tsv(out_tsv, rows, TAG_COLUMNS)
    return d


def tag_figure(G: networks.Generator, T: Tagger, d: Directions, name: str, out_png: str | os.PathLike,
               out_tsv: str | os.PathLike, *, seeds: Sequence[int] | str = _DEFAULTS["seeds"],
               strengths: Sequence[float] = STRENGTHS, psi: float = DEFAULT_PSI) -> Path:
    """One tag direction: rows seeds, columns strengths, each column labelled with the
    tagger's mean score there; every cell's score in the TSV."""
    seeds = parse_seeds(seeds)
    images, scores = tag_scores(G, T, d, name, seeds, strengths, psi)
    write_tsv(out_tsv, [{"seed": s, "strength": st, "score": round(float(scores[i, j]), 4)}
                        for i, s in enumerate(seeds) for j, st in enumerate(strengths)], SCORE_COLUMNS)
    res = G.resolution
    labels = [f"{s:+g}: {m:.2f}" for s, m in zip(strengths, scores.mean(0))]
    canvas = tile(images.reshape(-1, res, res, 3), len(strengths))
    return save_png(labelled_grid(canvas, res, res, col_labels=labels, row_labels=[f"seed {s}" for s in seeds]),
                    out_png)


# ----- applying one edit ------------------------------------------------------------------------


def apply_edit(G: networks.Generator, d: Directions, name: str, strengths: Sequence[float],
               out_png: str | os.PathLike, *, seeds: Sequence[int] | str | int | None = None,
               projection: str | os.PathLike | None = None, psi: float = DEFAULT_PSI) -> Path:
    """Seeds' images (or a projection's reconstruction) moved along `name` by each strength:
    the image itself for one source and one strength, else a labelled grid (rows sources,
    columns strengths)."""
    if (seeds is None) == (projection is None):
        raise SetupError("an edit needs either seeds or a projection's w.npz, not both")
    strengths = [float(s) for s in strengths]
    if projection is not None:
        ws, noise = load_w(projection, G)
        base, rows = ws[None], [Path(projection).parent.name]
    else:
        seeds, noise = parse_seeds(seeds), None
        base, rows = seed_ws(G, seeds, psi), [f"seed {s}" for s in seeds]
    ws = np.stack([d.shift(base, name, s) for s in strengths], 1).reshape(-1, G.num_ws, G.w_dim)
    if noise is not None:
        layers = [np.repeat(n[None], len(ws), 0) for n in noise]
        images = networks.to_uint8(G.synthesis(tf.constant(ws), noise=[tf.constant(n) for n in layers]))
    else:
        images = render(G, ws)
    if len(images) == 1:
        return save_png(images[0], out_png)
    res = G.resolution
    return save_png(labelled_grid(tile(images, len(strengths)), res, res, col_labels=[f"{s:+g}" for s in strengths],
                                  row_labels=rows), out_png)


def main(argv: Sequence[str] | None = None, prog: str = "python -m ganflow.edit") -> int:
    """python -m ganflow.edit --run <export dir> --directions <npz> --direction <name> --strength S
    (--seeds SPEC | --projection w.npz) --out out.png"""
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Move generated or projected images along a named direction.")
    parser.add_argument("--run", required=True, help="a training run's export directory (holding generator/)")
    parser.add_argument("--directions", required=True,
                        help="a directions file: results/<run>/edits/{sefa,ganspace,tags}.npz")
    parser.add_argument("--direction", required=True, help="its name, e.g. sefa-0 or tag-blonde_hair")
    parser.add_argument("--strength", type=float, action="append", required=True,
                        help="in standard deviations of w along the direction (repeatable)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--seeds", help='seeds, e.g. 7 or "0-3"')
    source.add_argument("--projection", help="a projection's w.npz")
    parser.add_argument("--psi", type=float, default=DEFAULT_PSI, help="truncation of seeds' images")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--log", help="also log to this file")
    args = parser.parse_args(argv)
    with logged(args.log):
        G, _, _ = load_export(args.run)
        apply_edit(G, load_directions(args.directions), args.direction, args.strength, args.out, seeds=args.seeds,
                   projection=args.projection, psi=args.psi)
    return 0


if __name__ == "__main__":
    sys.exit(main())
