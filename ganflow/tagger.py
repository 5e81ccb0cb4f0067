"""A small multi-label tagger: which of the chosen tags a face image shows.

Trained on the final images and the tags their posts carry (Danbooru metadata, or a folder
source's sidecar .txt files, both already in the ids manifests), at the generator's
resolution, so that it can label the generator's samples for edit.py's tag directions.
A fixed share of images, picked by a hash of the image id (so the split does not move
when other images come or go), is held out and gives each tag's precision and recall.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from .config import defaults
from .convnets import Tagger, save_tagger, tagger_net
from .imaging import ImageRejected, fit_square, load_srgb, to_array
from .runlog import SetupError, progress
from .tables import read_tsv, write_tsv

log = logging.getLogger(__name__)

TAGGER_COLUMNS = ["tag", "images", "train", "heldout", "heldout_positive", "precision", "recall"]
THRESHOLD = 0.5


_DEFAULTS = defaults("edit.tagger")  # config/schema.yaml's edit.tagger: section


@dataclass(frozen=True)
class TaggerSettings:
    epochs: int = _DEFAULTS["epochs"]
    batch: int = _DEFAULTS["batch"]
    channels: int = _DEFAULTS["channels"]       # of the first level; doubled per halving, up to 4x
    lr: float = _DEFAULTS["lr"]
    heldout: float = _DEFAULTS["heldout"]     # share of images held out for precision and recall
    seed: int = _DEFAULTS["seed"]

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1 or self.channels < 1 or self.lr <= 0 or not 0 < self.heldout < 1:
            raise SetupError(f"tagger settings {asdict(self)} are out of range: epochs, batch and channels "
                             "must be >= 1, lr > 0, heldout between 0 and 1")


def read_tagged(images_tsvs: Sequence[str | os.PathLike], ids_tsvs: Sequence[str | os.PathLike]
                ) -> list[tuple[str, str, frozenset[str]]]:
    """(image id, file, tags) of every final image, tags from its post's row in the ids
    manifests, sorted by image id."""
    tags = {row["id"]: frozenset(row["tags"].split()) for t in ids_tsvs for row in read_tsv(t)}
    rows = [(row["image"], row["path"], tags.get(row["id"], frozenset())) for t in images_tsvs for row in read_tsv(t)]
    return sorted(rows)


def choose_tags(tag_sets: Sequence[frozenset[str]], wanted: Sequence[str], min_count: int) -> list[str]:
    """The tags to learn: `wanted`, or (empty) every tag that at least `min_count` images have
    and at least `min_count` lack; a tag without that many of both cannot be learned."""
    counts = Counter(t for tags in tag_sets for t in tags)
    n = len(tag_sets)
    if wanted:
        short = [t for t in wanted if not min_count <= counts[t] <= n - min_count]
        if short:
            raise SetupError(f"tag {short[0]!r} is on {counts[short[0]]} of {n} images; a tag needs at least "
                             f"edit.min_count ({min_count}) images with it and as many without: drop it from "
                             "edit.tags or lower edit.min_count")
        return list(wanted)
    chosen = sorted(t for t, c in counts.items() if min_count <= c <= n - min_count)
    if not counts:
        raise SetupError(f"none of the {n} images has a tag, so no tag direction can be learned; set "
                         "edit.methods: [sefa, ganspace], or give the images tags (metadata or .txt files)")
    if not chosen:
        raise SetupError(f"no tag is on at least edit.min_count ({min_count}) of the {n} images and missing from "
                         "as many; lower edit.min_count, list edit.tags, or set edit.methods: [sefa, ganspace]")
    return chosen


def heldout_mask(names: Sequence[str], share: float) -> np.ndarray:
    """True for the held-out images: a hash of the id, so membership never depends on
    which other images exist."""
    return np.array([int(hashlib.sha256(n.encode()).hexdigest()[:8], 16) / 16 ** 8 < share for n in names])


def train(pixels: np.ndarray, labels: np.ndarray, tags: Sequence[str],
          settings: TaggerSettings = TaggerSettings()) -> Tagger:
    """Train on uint8 images [N, res, res, 3] with 0/1 labels [N, tags] (mirrored at random:
    tags of faces do not depend on left and right)."""
    s = settings
    net = tagger_net(pixels.shape[1], len(tags), s.channels, s.seed)
    opt = keras.optimizers.Adam(s.lr)
    rng = np.random.default_rng(s.seed)
    # Rare tags would be learned as "never": weigh positives by how rare they are.
    pos = np.clip(labels.mean(0), 1e-3, 1 - 1e-3)
    weight = tf.constant((1 - pos) / pos, tf.float32)

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(y, net(x), weight))
        opt.apply_gradients(zip(tape.gradient(loss, net.trainable_weights), net.trainable_weights))
        return loss

    x_all = pixels.astype(np.float32) / 127.5 - 1.0
    losses = []
    for _ in progress(range(s.epochs), desc="tagger", unit="epoch"):
        order = rng.permutation(len(x_all))
        for i in range(0, len(order), s.batch):
            idx = order[i:i + s.batch]
            flip = rng.random(len(idx)) < 0.5
            x = np.where(flip[:, None, None, None], x_all[idx][:, :, ::-1], x_all[idx])
            losses.append(float(step(tf.constant(x), tf.constant(labels[idx], tf.float32))))
    return Tagger(net, tags, {"settings": asdict(s), "resolution": int(pixels.shape[1]),
                              "final_loss": float(np.mean(losses[-10:]))})


def precision_recall(scores: np.ndarray, labels: np.ndarray) -> list[tuple[float | None, float | None]]:
    """Per tag (precision, recall) at THRESHOLD; None where undefined (nothing predicted or
    nothing to find)."""
    out = []
    for s, y in zip(scores.T, labels.T.astype(bool)):
        hit = s >= THRESHOLD
        tp = int(np.sum(hit & y))
        out.append((tp / hit.sum() if hit.sum() else None, tp / y.sum() if y.sum() else None))
    return out


def _load_pixels(rows: Sequence[tuple[str, str, frozenset[str]]], resolution: int
                 ) -> tuple[list[tuple[str, str, frozenset[str]]], np.ndarray]:
    kept, pixels = [], []
    for row in rows:
        try:
            pixels.append(to_array(fit_square(load_srgb(row[1]), resolution)))
            kept.append(row)
        except ImageRejected as exc:
            log.warning("tagger leaves out %s: %s", row[1], exc)
    return kept, np.stack(pixels) if pixels else np.zeros((0, resolution, resolution, 3), np.uint8)


def make_tagger(images_tsvs: Sequence[str | os.PathLike], ids_tsvs: Sequence[str | os.PathLike],
                out_npz: str | os.PathLike, out_tsv: str | os.PathLike, *, resolution: int,
                tags: Sequence[str] = (), min_count: int = 10,
                settings: TaggerSettings = TaggerSettings()) -> Tagger:
    """The edit_tagger rule: train on the non-held-out images, score the held-out ones, write
    the tagger (npz) and per tag its counts, precision and recall (TSV)."""
    rows, pixels = _load_pixels(read_tagged(images_tsvs, ids_tsvs), resolution)
    chosen = choose_tags([r[2] for r in rows], tags, min_count)
    labels = np.array([[t in r[2] for t in chosen] for r in rows], np.float32)
    held = heldout_mask([r[0] for r in rows], settings.heldout)
    if held.all() or not held.any():
        raise SetupError(f"{len(rows)} images leave no images to train or to test the tagger on; "
                         "add images or change edit.tagger.heldout")
    T = train(pixels[~held], labels[~held], chosen, settings)
    metrics = precision_recall(T.scores(pixels[held]), labels[held])
    T.info["metrics"] = {t: {"precision": p, "recall": r} for t, (p, r) in zip(chosen, metrics)}
    save_tagger(T, out_npz)
    write_tsv(out_tsv, [{"tag": t, "images": int(labels[:, k].sum()), "train": int(labels[~held, k].sum()),
                         "heldout": int(held.sum()), "heldout_positive": int(labels[held, k].sum()),
                         "precision": "" if p is None else round(p, 4), "recall": "" if r is None else round(r, 4)}
                        for k, (t, (p, r)) in enumerate(zip(chosen, metrics))], TAGGER_COLUMNS)
    for t, (p, r) in zip(chosen, metrics):
        log.info("tagger %s: held-out precision %s, recall %s", t, p, r)
    return T
