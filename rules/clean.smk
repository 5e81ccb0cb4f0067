# Face crops -> a verdict per crop: kept, or why not.


CLEAN_INPUT = made(
    faces=f"{R}/faces/{{shard}}.tsv",
)


checkpoint clean:
    input:
        unpack(CLEAN_INPUT),
    output:
        f"{R}/clean/{{shard}}.tsv",
    log:
        f"{LOGS}/clean/{{shard}}.log",
    benchmark:
        f"{LOGS}/clean/{{shard}}.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=CLEAN_INPUT.digest,
        clean=section("clean"),
        code=code_digest("clean"),
    script:
        adapter("clean")
