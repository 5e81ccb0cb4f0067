# Round r-1's ranking -> what round r keeps: all but the lowest and highest shares.


KEEP_INPUT = made(
    rank=previous_rank,
)


checkpoint keep:
    input:
        unpack(KEEP_INPUT),
    output:
        keep=f"{R}/round-{{r}}/keep.tsv",
        lowest=report(
            f"{R}/round-{{r}}/keep-sheets/lowest.png",
            caption="../report/keep-sheets.rst",
            category="3. Ranking",
            subcategory=lambda wc: f"Round {int(wc.r) - 1}",
        ),
        highest=report(
            f"{R}/round-{{r}}/keep-sheets/highest.png",
            caption="../report/keep-sheets.rst",
            category="3. Ranking",
            subcategory=lambda wc: f"Round {int(wc.r) - 1}",
        ),
    log:
        f"{LOGS}/round-{{r}}/keep.log",
    benchmark:
        f"{LOGS}/round-{{r}}/keep.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=KEEP_INPUT.digest,
        rank=section("rank"),
        code=code_digest("keep"),
    script:
        adapter("keep")
