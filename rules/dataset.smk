# Final images (or, from round 2 on, the kept ones) -> TFRecord shards + dataset.json.


rule dataset:
    input:
        manifests=expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
        keep=keep_list,
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
        tfrecords=section("tfrecords"),
        resolution=config["images"]["resolution"],
        code=code_digest("dataset"),
    script:
        adapter("dataset")
