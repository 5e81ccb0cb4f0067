# Shared names and helpers for every rule file.
import glob as _glob
from pathlib import Path as _Path

from ganflow.digest import code_digest, digest

R = f"results/{config['dataset']}"
LOGS = f"logs/{config['dataset']}"
SHARDS = [f"{i:04d}" for i in range(config["shards"])]
SCRIPTS = "../workflow_scripts"
DEMO_ROOT = f"{R}/mirror"


def metadata_files():
    """The configured metadata files (globs allowed) under source.root."""
    root = config["source"]["root"]
    files = []
    for pattern in config["source"].get("metadata", []):
        full = f"{root}/{pattern}"
        files.extend(sorted(_glob.glob(full)) if _glob.has_magic(full) else [full])
    return files


def content(*, listed=None):
    """A params entry whose value changes exactly when the job's inputs' content does."""
    return lambda wildcards, input: digest(input, listed=listed)
