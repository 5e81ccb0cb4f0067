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
include: "rules/report.smk"


rule all:
    input:
        expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
        f"{R}/report/funnel.tsv",
        expand(f"{R}/report/contact-{{stage}}.png", stage=CONTACT_STAGES),
