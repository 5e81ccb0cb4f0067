# ganflow: from a raw illustration archive to a trained StyleGAN2 and its media.
# `snakemake --cores N` builds everything in config/config.yaml; `snakemake <path>`
# builds one artifact. Stages live in rules/, logic in the ganflow package.

from ganflow.config import ConfigError, validate as _validate

# The demo config unless the user gives their own (--configfile), which then stands alone:
# nothing of the demo leaks into it. --config key=value overrides work either way.
if not workflow.config_settings.configfiles:

    configfile: f"{workflow.basedir}/config/config.yaml"


try:
    config.update(_validate(config, f"{workflow.basedir}/config/schema.yaml"))
except ConfigError as _err:
    raise WorkflowError(str(_err)) from None


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/select.smk"
include: "rules/faces.smk"
include: "rules/clean.smk"
include: "rules/images.smk"
include: "rules/dataset.smk"
include: "rules/train.smk"
include: "rules/rank.smk"
include: "rules/sample.smk"
include: "rules/video.smk"
include: "rules/report.smk"
include: "rules/plots.smk"


wildcard_constraints:
    r=r"\d+",
    shard=r"\d+",


rule all:
    input:
        f"{R}/report/funnel.tsv",
        expand(f"{R}/report/contact-{{stage}}.png", stage=CONTACT_STAGES),
        # every round trains; each round but the last is ranked for the next one
        expand(f"{R}/round-{{r}}/train/generator", r=range(1, config["rounds"] + 1)),
        expand(f"{R}/round-{{r}}/keep.tsv", r=range(2, config["rounds"] + 1)),
        f"{R}/samples/grid.png",
        expand(f"{R}/figures/{{figure}}.png", figure=FIGURE_NAMES),
        expand(f"{R}/videos/{{video}}.mp4", video=VIDEOS),
        REPORT_PAGES,


rule data:
    """Only the data stages: final images, the funnel and contact sheets."""
    input:
        expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
        f"{R}/report/funnel.tsv",
        expand(f"{R}/report/contact-{{stage}}.png", stage=CONTACT_STAGES),
