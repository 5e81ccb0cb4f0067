# Kept, unique crops -> final NxN sRGB images (waifu2x-upscaled where small).


IMAGES_INPUT = made(
    clean=f"{R}/clean/{{shard}}.tsv",
    dedupe=f"{R}/dedupe/{{shard}}.tsv",
)


checkpoint images:
    input:
        unpack(IMAGES_INPUT),
    output:
        images=directory(f"{R}/images/{{shard}}"),
        manifest=f"{R}/images/{{shard}}.tsv",
        rejected=f"{R}/images-rejected/{{shard}}.tsv",
    log:
        f"{LOGS}/images/{{shard}}.log",
    benchmark:
        f"{LOGS}/images/{{shard}}.bench.tsv"
    conda:
        CONDA_ENV
    threads: config["images"]["threads"]
    params:
        made=IMAGES_INPUT.digest,
        images=section("images"),
        code=code_digest("images"),
    script:
        adapter("images")
