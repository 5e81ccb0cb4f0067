# Metadata (or a plain folder) -> selected ids, one list per shard.
# A checkpoint: once it has run, each faces job is re-checked against its own shard list.

from ganflow.ids import source_listing


checkpoint select:
    input:
        metadata_files() if config["source"]["kind"] == "danbooru" else [],
    output:
        ids=expand(f"{R}/ids/{{shard}}.tsv", shard=SHARDS),
        rejected=f"{R}/ids/rejected.tsv",
        summary=f"{R}/ids/summary.json",
    params:
        source=config["source"],
        filters=config["select"],
        shards=config["shards"],
        # Files added to or removed from the user's tree rerun select; the generated demo
        # mirror is tracked through its rule instead (it does not exist before the run).
        listing="" if config["source"]["root"] == DEMO_ROOT
        else source_listing(config["source"]["root"], config["source"]["kind"]),
        code=code_digest("ids"),
    log:
        f"{LOGS}/select.log",
    benchmark:
        f"{LOGS}/select.bench.tsv"
    script:
        f"{SCRIPTS}/select.py"
