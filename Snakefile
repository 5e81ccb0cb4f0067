# ganflow: from a raw illustration archive to a trained StyleGAN2 and its media.
# `snakemake --cores N` builds everything in config/config.yaml; `snakemake <path>`
# builds one artifact. Stages live in rules/ (one file each), logic in the ganflow package.
import os
import sys

from ganflow import running as _running
from ganflow.config import ConfigError, validate as _validate

# The demo config unless the user gives their own (--configfile), which then stands alone:
# nothing of the demo leaks into it. --config key=value overrides work either way.
if not workflow.config_settings.configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


# Whether the user chose the edit methods (a default may adapt to the source; a choice may not).
EDIT_METHODS_GIVEN = "methods" in (config.get("edit") or {})
try:
    config.update(_validate(config, f"{workflow.basedir}/config/schema.yaml"))
except ConfigError as _err:
    raise WorkflowError(str(_err)) from None

# Jobs import the library from this checkout, in whatever environment runs them
# (a venv, --software-deployment-method conda, a cluster node).
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])
)


envvars:
    "PYTHONPATH",


# Who holds the lock (ganflow/running.py): a lock that a killed run left is told apart from
# a run still alive, and --unlock is refused under a live one. Cluster jobs skip it.
if workflow.is_main_process:
    _advice, _stop = _running.lock_advice(os.getcwd(), unlocking="--unlock" in sys.argv)
    if _stop:
        raise WorkflowError(_advice)
    if _advice:
        print(_advice, file=sys.stderr)


onstart:
    _running.record(os.getcwd(), sys.argv)
    for _metrics, _key in (
        ("FID and KID", "inception"),
        ("precision and recall", "vgg16"),
    ):
        if not config["metrics"][_key] and not config["generator"]:
            print(
                f"metrics: {_metrics} are skipped, metrics.{_key} names no file "
                "(README Metrics); the training log's SWD stays",
                file=sys.stderr,
            )


onsuccess:
    _running.release(os.getcwd())


onerror:
    _running.release(os.getcwd())


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/ids.smk"
include: "rules/faces.smk"
include: "rules/clean.smk"
include: "rules/dedupe.smk"
include: "rules/images.smk"
include: "rules/funnel.smk"
include: "rules/dataset.smk"
include: "rules/train.smk"
include: "rules/import_weights.smk"
include: "rules/rank.smk"
include: "rules/metrics.smk"
include: "rules/keep.smk"
include: "rules/samples.smk"
include: "rules/figures.smk"
include: "rules/videos.smk"
include: "rules/project.smk"
include: "rules/edit.smk"
include: "rules/report.smk"


wildcard_constraints:
    r=r"\d+",
    shard=r"\d+",


rule all:
    input:
        get_final_output(),


rule latent:
    """Only the projections of real images and the edits along directions in W."""
    input:
        project_targets() + edit_targets(),


rule data:
    """Only the data stages: final images, the funnel and contact sheets."""
    input:
        data_targets(),
