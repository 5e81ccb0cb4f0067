# Final images (or, from round 2 on, the kept ones) -> TFRecord shards + dataset.json.


def keep_list(wildcards):
    """Round 1 packs every final image; later rounds only what ranking kept."""
    return [f"{R}/round-{wildcards.r}/keep.tsv"] if int(wildcards.r) > 1 else []


rule dataset:
    input:
        manifests=expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
        keep=keep_list,
    output:
        # The TFRecord shards sit beside these, listed with their sha256 in dataset.json.
        meta=f"{R}/round-{{r}}/dataset/dataset.json",
        skipped=f"{R}/round-{{r}}/dataset/skipped.tsv",
    params:
        tfrecords=config["tfrecords"],
        resolution=config["images"]["resolution"],
        code=code_digest("dataset", "imaging"),
    log:
        f"{LOGS}/round-{{r}}/dataset.log",
    benchmark:
        f"{LOGS}/round-{{r}}/dataset.bench.tsv"
    script:
        f"{SCRIPTS}/dataset.py"
