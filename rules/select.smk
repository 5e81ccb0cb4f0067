# Metadata (or a plain folder) -> selected ids, one list per shard.

rule select:
    input:
        metadata_files() if config["source"]["kind"] == "danbooru" else config["source"]["root"],
    output:
        ids=expand(f"{R}/ids/{{shard}}.tsv", shard=SHARDS),
        rejected=f"{R}/ids/rejected.tsv",
        summary=f"{R}/ids/summary.json",
    params:
        source=config["source"],
        filters=config["select"],
        shards=config["shards"],
        content=content(),
        code=code_digest("ids"),
    log:
        f"{LOGS}/select.log",
    benchmark:
        f"{LOGS}/select.bench.tsv"
    script:
        f"{SCRIPTS}/select.py"
