# Round r's discriminator scores every image of round r.


RANK_INPUT = made(
    export=f"{R}/round-{{r}}/train/export.json",
    dataset=f"{R}/round-{{r}}/dataset/dataset.json",
    manifests=expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
)


checkpoint rank:
    input:
        unpack(RANK_INPUT),
    output:
        f"{R}/round-{{r}}/rank.tsv",
    log:
        f"{LOGS}/round-{{r}}/rank.log",
    benchmark:
        f"{LOGS}/round-{{r}}/rank.bench.tsv"
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=RANK_INPUT.digest,
        batch_size=config["rank"]["batch_size"],
        code=code_digest("rank"),
    script:
        adapter("rank")
