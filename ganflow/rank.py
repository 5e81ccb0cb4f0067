"""Discriminator ranking of real images (keep.py turns the ranking into the next round's list).

A trained D scores how "real" each training image looks; the lowest scores are mostly
bad crops, text, collages and the like, so dropping a small share and retraining cleans
the data. Images reach D exactly as training fed them: NHWC, RGB in that order, float32
x / 127.5 - 1 (a known port of the classic ranker fed CHW-reshaped, channel-scrambled
arrays and ranked noise; tests pin the layout). Scores come from batched calls, with the
minibatch-stddev group set to one image, so an image's score never depends on which
images share its batch (the classic ranker, one image per run, did the same).

rank.tsv: image, path, score, rank, reason, detail; sorted by score ascending (rank 1 =
lowest = most suspect), ties by image id; files that could not be scored follow, with an
empty score and rank and their reason.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from . import networks
from .config import defaults
from .contact import ranking_sheets
from .imaging import ImageRejected, fit_square, load_srgb, to_array
from .names import IMAGE_EXTS
from .records import iterate_images, read_meta
from .runlog import SetupError, logged, progress
from .tables import read_tsv, write_tsv
from .weights import load_export

log = logging.getLogger(__name__)

# Defaults of the config sections this module serves (config/schema.yaml).
_DEFAULTS = defaults("rank")

RANK_COLUMNS = ["image", "path", "score", "rank", "reason", "detail"]

Scorer = Callable[[tf.Tensor], tf.Tensor]


def per_image(D: Scorer) -> Scorer:
    """D with a minibatch-stddev group of one (same weights), so scores are per image;
    any other callable (images -> logits) is returned as it is."""
    if not isinstance(D, networks.Discriminator) or D.mbstd_group == 1:
        return D
    twin = networks.Discriminator(**{**D.architecture, "mbstd_group": 1})
    for mine, theirs in zip(twin.weights, D.weights):
        mine.assign(theirs)
    return twin


def _score(D: Scorer, batches: Iterable[tuple[list[str], np.ndarray]],
           total: int | None) -> Iterator[tuple[str, float]]:
    """(id, score) for uint8 NHWC batches, converted as training converts its reals."""
    for ids, pixels in progress(batches, desc="rank", unit="batch", total=total):
        logits = D(tf.cast(tf.constant(pixels), tf.float32) / 127.5 - 1.0)
        yield from zip(ids, np.asarray(logits, np.float64).reshape(len(ids)).tolist())


def score_dataset(D: Scorer, dataset_dir: str | os.PathLike, *, paths: Mapping[str, str] | None = None,
                  batch_size: int = _DEFAULTS["batch_size"]) -> list[dict]:
    """A row per record of a packed dataset, read at D's resolution (as training read it)."""
    paths = paths or {}
    count = read_meta(dataset_dir)["count"]
    batches = iterate_images(dataset_dir, batch_size, getattr(D, "resolution", None))
    return [{"image": image, "path": paths.get(image, ""), "score": score}
            for image, score in _score(per_image(D), batches, math.ceil(count / batch_size))]


def _folder_files(folder: Path) -> list[Path]:
    """The image files under `folder` (by extension; hidden files and e.g. manifests aside)."""
    if not folder.is_dir():
        raise SetupError(f"image folder {folder} does not exist or is not a directory; give a folder of images")
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def score_folder(D: Scorer, folder: str | os.PathLike, *, resolution: int | None = None,
                 batch_size: int = _DEFAULTS["batch_size"]) -> list[dict]:
    """A row per image file under `folder` (hidden files aside): each is decoded to sRGB, cut
    to its centred square and resized to D's resolution as the images stage would; a
    file that cannot be decoded gets a row with its reason instead of a score. The
    image id is the file's path relative to the folder."""
    folder = Path(folder)
    resolution = resolution or getattr(D, "resolution", None)
    if not resolution:
        raise SetupError("score_folder needs the discriminator's resolution; pass resolution=")
    files = _folder_files(folder)
    rejected: list[dict] = []

    def batches() -> Iterator[tuple[list[str], np.ndarray]]:
        ids: list[str] = []
        pixels: list[np.ndarray] = []
        for path in files:
            image = path.relative_to(folder).as_posix()
            try:
                pixels.append(to_array(fit_square(load_srgb(path), resolution)))
                ids.append(image)
            except ImageRejected as exc:
                log.warning("cannot rank %s: %s (%s)", path, exc.reason, exc.detail)
                rejected.append({"image": image, "path": str(path), "score": None, "reason": exc.reason,
                                 "detail": exc.detail})
            if len(ids) == batch_size:
                yield ids, np.stack(pixels)
                ids, pixels = [], []
        if ids:
            yield ids, np.stack(pixels)

    scored = [{"image": image, "path": str(folder / image), "score": score}
              for image, score in _score(per_image(D), batches(), math.ceil(len(files) / batch_size))]
    return scored + rejected


def write_rank(rows: Iterable[Mapping], out_tsv: str | os.PathLike) -> int:
    """Sort scored rows ascending, number them from 1, append unscored rows (a NaN or
    infinite score becomes one, reason non_finite_score); write rank.tsv.

    Scores are written with 9 significant digits, enough to read a float32 logit back
    exactly, so the order in the file is the order of the values read from it.
    """
    rows = [r if r.get("score") is None or math.isfinite(r["score"]) else
            {**r, "score": None, "reason": "non_finite_score", "detail": f"D returned {r['score']}"} for r in rows]
    scored = sorted((r for r in rows if r["score"] is not None), key=lambda r: (r["score"], r["image"]))
    unscored = sorted((r for r in rows if r["score"] is None), key=lambda r: r["image"])
    out = [{**r, "score": f"{r['score']:.9g}", "rank": k} for k, r in enumerate(scored, 1)]
    return write_tsv(out_tsv, out + unscored, RANK_COLUMNS)


def image_paths(manifests: Sequence[str | os.PathLike]) -> dict[str, str]:
    """image id -> final image file, from the images manifests (for rank.tsv and sheets)."""
    return {row["image"]: row["path"] for m in manifests for row in read_tsv(m)}


def rank_dataset(export_dir: str | os.PathLike, dataset_dir: str | os.PathLike,
                 manifests: Sequence[str | os.PathLike], out_tsv: str | os.PathLike, *,
                 batch_size: int = _DEFAULTS["batch_size"]) -> int:
    """The rank rule: the exported D of a round scores that round's dataset."""
    _, D, _ = load_export(export_dir)
    rows = score_dataset(D, dataset_dir, paths=image_paths(manifests), batch_size=batch_size)
    return write_rank(rows, out_tsv)


def rank_folder(export_dir: str | os.PathLike, folder: str | os.PathLike, out_tsv: str | os.PathLike, *,
                batch_size: int = _DEFAULTS["batch_size"]) -> int:
    """Any folder of images scored by any exported run."""
    _, D, _ = load_export(export_dir)
    return write_rank(score_folder(D, folder, batch_size=batch_size), out_tsv)


def main(argv: Sequence[str] | None = None, prog: str = "python -m ganflow.rank") -> int:
    """python -m ganflow.rank --run <export dir> (--images <folder> | --dataset <dir>) --out rank.tsv"""
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Rank images by a trained discriminator, lowest score first.")
    parser.add_argument("--run", required=True,
                        help="a training run's export directory (holding generator/ and discriminator/)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="a folder of images (any sizes; centre-cropped and resized)")
    source.add_argument("--dataset", help="a packed dataset directory (dataset.json)")
    parser.add_argument("--manifest", action="append", default=[],
                        help="images manifest(s) giving the file paths of --dataset images (repeatable)")
    parser.add_argument("--out", required=True, help="rank.tsv to write")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--log", help="also log to this file")
    args = parser.parse_args(argv)
    with logged(args.log):
        if args.images:
            n = rank_folder(args.run, args.images, args.out, batch_size=args.batch_size)
        else:
            n = rank_dataset(args.run, args.dataset, args.manifest, args.out, batch_size=args.batch_size)
        out = Path(args.out)
        sheets = out.with_name(f"{out.stem}-lowest.png"), out.with_name(f"{out.stem}-highest.png")
        ranking_sheets(out, *sheets)
        log.info("wrote %d rows to %s, and the lowest and highest to %s and %s", n, out, *sheets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
