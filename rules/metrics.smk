# FID and KID of round r's generator against round r's dataset, when metrics.inception
# names the Inception graph (ganflow/metrics.py; README Metrics).


METRICS_INPUT = made(
    export=f"{R}/round-{{r}}/train/export.json",
    dataset=f"{R}/round-{{r}}/dataset/dataset.json",
)


rule metrics:
    input:
        unpack(METRICS_INPUT),
        inception=config["metrics"]["inception"] or [],
    output:
        f"{R}/round-{{r}}/metrics.json",
    log:
        f"{LOGS}/round-{{r}}/metrics.log",
    benchmark:
        f"{LOGS}/round-{{r}}/metrics.bench.tsv"
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=METRICS_INPUT.digest,
        images=config["metrics"]["images"],
        kid=[config["metrics"]["kid_subsets"], config["metrics"]["kid_subset_size"]],
        sha256=config["metrics"]["inception_sha256"],
        code=code_digest("metrics"),
    script:
        adapter("metrics")
