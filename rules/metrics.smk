# The field's metrics of round r's generator against round r's dataset: FID and KID when
# metrics.inception names the Inception graph, precision and recall when metrics.vgg16
# names VGG16's weights (ganflow/metrics.py; README Metrics).


METRICS_INPUT = made(
    export=f"{R}/round-{{r}}/train/export.json",
    dataset=f"{R}/round-{{r}}/dataset/dataset.json",
)


rule metrics:
    input:
        unpack(METRICS_INPUT),
        inception=config["metrics"]["inception"] or [],
        vgg16=config["metrics"]["vgg16"] or [],
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
        settings={
            k: config["metrics"][k]
            for k in ("images", "kid_subsets", "kid_subset_size", "neighbours")
        },
        sha256=[
            config["metrics"]["inception_sha256"],
            config["metrics"]["vgg16_sha256"],
        ],
        code=code_digest("metrics"),
    script:
        adapter("metrics")
