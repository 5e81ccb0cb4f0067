# Face crops -> a verdict per crop: kept, or why not.


rule clean:
    input:
        faces=f"{R}/faces/{{shard}}.tsv",
    output:
        f"{R}/clean/{{shard}}.tsv",
    log:
        f"{LOGS}/clean/{{shard}}.log",
    benchmark:
        f"{LOGS}/clean/{{shard}}.bench.tsv"
    conda:
        CONDA_ENV
    params:
        clean=section("clean"),
        code=code_digest("clean"),
    script:
        adapter("clean")
