# Selected ids -> face crops (lbpcascade_animeface) + a manifest per shard.


# The download runs where Snakemake runs, not on a compute node (often without internet).
localrules:
    faces_cascade,


rule faces_cascade:
    output:
        DOWNLOADED_CASCADE,
    log:
        f"{LOGS}/faces_cascade.log",
    benchmark:
        f"{LOGS}/faces_cascade.bench.tsv"
    conda:
        CONDA_ENV
    params:
        sha256=config["faces"]["cascade_sha256"],
        code=code_digest("faces_cascade"),
    script:
        adapter("faces_cascade")


FACES_INPUT = made(
    ids=f"{R}/ids/{{shard}}.tsv",
    cascade=CASCADE if config["faces"]["enabled"] else [],
)


checkpoint faces:
    input:
        unpack(FACES_INPUT),
    output:
        crops=directory(f"{R}/faces/{{shard}}"),
        manifest=f"{R}/faces/{{shard}}.tsv",
    log:
        f"{LOGS}/faces/{{shard}}.log",
    benchmark:
        f"{LOGS}/faces/{{shard}}.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=FACES_INPUT.digest,
        faces=section("faces"),
        sources=shard_content,
        code=code_digest("faces"),
    script:
        adapter("faces")
