"""Exported networks on disk: what a finished training run writes and what ranking,
samples, figures and videos load.

Apart from the training loop (train.py), which it does not import, so that the stages
which only need trained weights do not depend on, and rerun with, how training works.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from . import networks
from .imaging import sha256_file
from .runlog import SetupError
from .tables import atomic_open

MANIFEST = "export.json"


def read_json(path: Path) -> dict:
    """A JSON file that training wrote; anything unreadable is a broken setup."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SetupError(f"cannot read {path} ({e}); it is not a ganflow training artifact") from e


def fsync_tree(path: Path) -> None:
    """Flush every file of a directory to disk before it is renamed into place."""
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def write_network(directory: Path, key: str, net: keras.layers.Layer, info: dict[str, Any]) -> None:
    """Export one network as a tf.train.Checkpoint plus JSON, swapped in as a whole."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.train.Checkpoint(**{key: net}).write(str(tmp / "weights"))
    (tmp / f"{key}.json").write_text(json.dumps(info, indent=1))
    fsync_tree(tmp)
    if directory.exists():
        shutil.rmtree(directory)
    os.rename(tmp, directory)


def write_export(out_dir: Path, G: networks.Generator, D: networks.Discriminator, info: dict[str, Any]) -> None:
    """The generator (the EMA one, for sampling) and the discriminator, each with `info`,
    its architecture and, for the generator, the layout of its styles."""
    write_network(out_dir / "generator", "generator", G,
                  {**info, "architecture": G.architecture, "num_ws": G.num_ws,
                   "ws_resolutions": networks.ws_resolutions(G.resolution),
                   "style_groups": networks.style_groups(G.resolution)})
    write_network(out_dir / "discriminator", "discriminator", D, {**info, "architecture": D.architecture})
    write_manifest(out_dir)


def write_manifest(out_dir: Path) -> None:
    """export.json, written last: the sha256 of every exported file. Later stages declare it
    as their input instead of the two directories, which Snakemake cannot checksum (it would
    judge them by the newest mtime inside, so a touch or a copy would rerun everything)."""
    files = {f"{key}/{f.name}": sha256_file(f) for key in ("generator", "discriminator")
             for f in sorted((out_dir / key).iterdir())}
    with atomic_open(out_dir / MANIFEST) as fh:
        json.dump({"files": files}, fh, indent=1, sort_keys=True)


def read_network(out_dir: Path, key: str, net: keras.layers.Layer) -> None:
    """Load one exported network's weights into `net`, which must have its architecture."""
    tf.train.Checkpoint(**{key: net}).read(str(out_dir / key / "weights")).assert_consumed()


def load_export(out_dir: str | os.PathLike, conv_dtype: str = "float32"
                ) -> tuple[networks.Generator, networks.Discriminator, dict]:
    """The exported EMA generator, the discriminator, and the generator's info JSON."""
    out_dir = Path(out_dir)
    nets = []
    for key, cls in (("generator", networks.Generator), ("discriminator", networks.Discriminator)):
        info_path = out_dir / key / f"{key}.json"
        if not info_path.is_file():
            raise SetupError(f"no exported {key} in {out_dir} ({info_path} is missing); run training first")
        info = read_json(info_path)
        net = cls(**info["architecture"], conv_dtype=conv_dtype)
        read_network(out_dir, key, net)
        nets.append((net, info))
    (G, info), (D, _) = nets
    return G, D, info
