# Selected ids -> face crops (lbpcascade_animeface) + a manifest per shard.

from ganflow.tables import read_tsv

# A user's own cascade file is only ever an input: Snakemake deletes a rule's outputs before
# running it, so no rule may claim a file the user owns. The download rule owns resources/.
DOWNLOADED_CASCADE = "resources/lbpcascade_animeface.xml"
CASCADE = config["faces"]["cascade"] or DOWNLOADED_CASCADE


# The download runs where Snakemake runs, not on a compute node (often without internet).
localrules:
    cascade,


rule cascade:
    output:
        DOWNLOADED_CASCADE,
    params:
        sha256=config["faces"]["cascade_sha256"],
    log:
        f"{LOGS}/cascade.log",
    benchmark:
        f"{LOGS}/cascade.bench.tsv"
    script:
        f"{SCRIPTS}/cascade.py"


def shard_sources(wildcards):
    """The shard's source images, as inputs: editing one reruns exactly this shard."""
    ids = checkpoints.select.get().output.ids[SHARDS.index(wildcards.shard)]
    return [row["path"] for row in read_tsv(ids)]


rule faces:
    input:
        ids=f"{R}/ids/{{shard}}.tsv",
        sources=shard_sources,
        cascade=CASCADE if config["faces"]["enabled"] else [],
    output:
        crops=directory(f"{R}/faces/{{shard}}"),
        manifest=f"{R}/faces/{{shard}}.tsv",
    params:
        faces=config["faces"],
        code=code_digest("faces", "imaging"),
    log:
        f"{LOGS}/faces/{{shard}}.log",
    benchmark:
        f"{LOGS}/faces/{{shard}}.bench.tsv"
    script:
        f"{SCRIPTS}/faces.py"
