# The funnel (how many images survive each stage, and why the rest did not) and
# contact sheets to eyeball each stage.


FUNNEL_INPUT = made(
    summary=f"{R}/ids/summary.json",
    faces=expand(f"{R}/faces/{{shard}}.tsv", shard=SHARDS),
    clean=expand(f"{R}/clean/{{shard}}.tsv", shard=SHARDS),
    dedupe=f"{R}/dedupe.tsv",
    images=expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
    image_rejects=expand(f"{R}/images-rejected/{{shard}}.tsv", shard=SHARDS),
)


checkpoint funnel:
    input:
        unpack(FUNNEL_INPUT),
    output:
        table=f"{R}/report/funnel.tsv",
        sheets=[
            report(
                f"{R}/report/contact-{stage}.png",
                caption=f"../report/contact-{stage}.rst",
                category="1. Data",
                subcategory="Contact sheets",
            )
            for stage in CONTACT_STAGES
        ],
    log:
        f"{LOGS}/funnel.log",
    benchmark:
        f"{LOGS}/funnel.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=FUNNEL_INPUT.digest,
        report=section("report"),
        code=code_digest("funnel"),
    script:
        adapter("funnel")
