# Round r's discriminator scores round r's images; round r+1 keeps all but the extremes.


rule rank:
    input:
        generator=f"{R}/round-{{r}}/train/generator",
        discriminator=f"{R}/round-{{r}}/train/discriminator",
        dataset=f"{R}/round-{{r}}/dataset/dataset.json",
        manifests=expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
    output:
        f"{R}/round-{{r}}/rank.tsv",
    params:
        batch_size=config["rank"]["batch_size"],
        code=code_digest("rank", "networks", "training", "dataset"),
    resources:
        gpu=1,
    log:
        f"{LOGS}/round-{{r}}/rank.log",
    benchmark:
        f"{LOGS}/round-{{r}}/rank.bench.tsv"
    script:
        f"{SCRIPTS}/rank.py"


rule keep:
    input:
        lambda wc: f"{R}/round-{int(wc.r) - 1}/rank.tsv",
    output:
        keep=f"{R}/round-{{r}}/keep.tsv",
        lowest=report(f"{R}/round-{{r}}/keep-sheets/lowest.png", caption="../report/keep-sheets.rst",
                      category="3. Ranking", subcategory=lambda wc: f"Round {int(wc.r) - 1}"),
        highest=report(f"{R}/round-{{r}}/keep-sheets/highest.png", caption="../report/keep-sheets.rst",
                       category="3. Ranking", subcategory=lambda wc: f"Round {int(wc.r) - 1}"),
    params:
        rank=config["rank"],
        code=code_digest("rank", "contact"),
    log:
        f"{LOGS}/round-{{r}}/keep.log",
    benchmark:
        f"{LOGS}/round-{{r}}/keep.bench.tsv"
    script:
        f"{SCRIPTS}/keep.py"
