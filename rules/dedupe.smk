# Kept crops of every shard -> global near-duplicate clusters, and each shard's slice.
# A checkpoint: once it has run, each images job is re-checked against its own slice (a
# static input: an input function calling checkpoints.dedupe.get() would expand every
# slice for every images job, quadratic in the shard count).


DEDUPE_INPUT = made(
    clean=expand(f"{R}/clean/{{shard}}.tsv", shard=SHARDS),
)


checkpoint dedupe:
    input:
        unpack(DEDUPE_INPUT),
    output:
        clusters=f"{R}/dedupe.tsv",
        shards=expand(f"{R}/dedupe/{{shard}}.tsv", shard=SHARDS),
    log:
        f"{LOGS}/dedupe.log",
    benchmark:
        f"{LOGS}/dedupe.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=DEDUPE_INPUT.digest,
        threshold=config["dedupe"]["threshold"],
        code=code_digest("dedupe"),
    script:
        adapter("dedupe")
