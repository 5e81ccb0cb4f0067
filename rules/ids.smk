# Metadata (or a plain folder) -> selected ids, one list per shard.
# A checkpoint: once it has run, each faces job is re-checked against its own shard list.
# It also writes each shard's listing of file hashes under ids/sources/, on purpose no
# declared output (Snakemake would delete it before a rerun, which then rehashes all).


IDS_INPUT = made(
    metadata=metadata_files(),
)


checkpoint ids:
    input:
        unpack(IDS_INPUT),
    output:
        ids=expand(f"{R}/ids/{{shard}}.tsv", shard=SHARDS),
        rejected=f"{R}/ids/rejected.tsv",
        summary=f"{R}/ids/summary.json",
    log:
        f"{LOGS}/ids.log",
    benchmark:
        f"{LOGS}/ids.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=IDS_INPUT.digest,
        source=section("source"),
        filters=section("ids"),
        shards=config["shards"],
        listing=source_listing(),
        listings=SOURCE_LISTINGS,
        code=code_digest("ids"),
    script:
        adapter("ids")
