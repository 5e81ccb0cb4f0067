# Shared names and helpers for every rule file.
#
# How reruns follow content (see README "Reruns"): every stage's outputs include a small
# manifest that carries the content hashes of what the stage made, and the next stage
# declares that manifest as input. Snakemake records input checksums, so a newer but
# byte-identical manifest (a touched file, a rerun that made the same bytes) triggers
# nothing. Fan-out points (select, dedupe) are checkpoints: after they run, Snakemake
# re-checks each downstream shard job against those checksums, so only shards whose
# slice changed rerun. Library code is part of each rule's params (code_digest).
import glob as _glob
import hashlib as _hashlib
from pathlib import Path as _Path

R = f"results/{config['dataset']}"
LOGS = f"logs/{config['dataset']}"
SHARDS = [f"{i:04d}" for i in range(config["shards"])]
SCRIPTS = "../workflow_scripts"
DEMO_ROOT = f"{R}/mirror"
LIBRARY = _Path(workflow.basedir) / "ganflow"


def metadata_files():
    """The configured metadata files (globs allowed) under source.root."""
    root = config["source"]["root"]
    files = []
    for pattern in config["source"].get("metadata", []):
        full = f"{root}/{pattern}"
        files.extend(sorted(_glob.glob(full)) if _glob.has_magic(full) else [full])
    return files


def code_digest(*modules):
    """Digest of the library modules a rule runs: editing them reruns the rule's jobs."""
    h = _hashlib.sha256()
    for name in sorted(modules):
        h.update((LIBRARY / f"{name}.py").read_bytes())
    return h.hexdigest()[:12]
