# Final images (or, from round 2 on, the kept ones) -> TFRecord shards + dataset.json.


DATASET_INPUT = made(
    manifests=expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
    keep=keep_list,
)


checkpoint dataset:
    input:
        unpack(DATASET_INPUT),
    output:
        # The TFRecord shards sit beside these, listed with their sha256 in dataset.json.
        meta=f"{R}/round-{{r}}/dataset/dataset.json",
        skipped=f"{R}/round-{{r}}/dataset/skipped.tsv",
    log:
        f"{LOGS}/round-{{r}}/dataset.log",
    benchmark:
        f"{LOGS}/round-{{r}}/dataset.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=DATASET_INPUT.digest,
        settings=section("dataset"),
        resolution=config["images"]["resolution"],
        code=code_digest("dataset"),
    script:
        adapter("dataset")
