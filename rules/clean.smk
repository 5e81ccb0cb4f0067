# Face crops -> a verdict per crop (kept, or why not), then global deduplication.

rule clean:
    input:
        faces=f"{R}/faces/{{shard}}.tsv",
    output:
        f"{R}/clean/{{shard}}.tsv",
    params:
        clean=config["clean"],
        code=code_digest("clean", "imaging"),
    log:
        f"{LOGS}/clean/{{shard}}.log",
    benchmark:
        f"{LOGS}/clean/{{shard}}.bench.tsv"
    script:
        f"{SCRIPTS}/clean.py"


# A checkpoint: once it has run, each images job is re-checked against its own slice.
checkpoint dedupe:
    input:
        expand(f"{R}/clean/{{shard}}.tsv", shard=SHARDS),
    output:
        clusters=f"{R}/dedupe.tsv",
        shards=expand(f"{R}/dedupe/{{shard}}.tsv", shard=SHARDS),
    params:
        threshold=config["dedupe"]["threshold"],
        code=code_digest("dedupe"),
    log:
        f"{LOGS}/dedupe.log",
    benchmark:
        f"{LOGS}/dedupe.bench.tsv"
    script:
        f"{SCRIPTS}/dedupe.py"
