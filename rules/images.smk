# Kept, unique crops -> final NxN sRGB images (waifu2x-upscaled where small).

def dedupe_slice(wildcards):
    checkpoints.dedupe.get()
    return f"{R}/dedupe/{wildcards.shard}.tsv"


rule images:
    input:
        clean=f"{R}/clean/{{shard}}.tsv",
        dedupe=dedupe_slice,
    output:
        images=directory(f"{R}/images/{{shard}}"),
        manifest=f"{R}/images/{{shard}}.tsv",
        rejected=f"{R}/images-rejected/{{shard}}.tsv",
    params:
        images=config["images"],
        code=code_digest("images", "imaging"),
    threads: config["images"]["threads"]
    log:
        f"{LOGS}/images/{{shard}}.log",
    benchmark:
        f"{LOGS}/images/{{shard}}.bench.tsv"
    script:
        f"{SCRIPTS}/images.py"
