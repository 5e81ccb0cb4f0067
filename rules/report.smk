# The report's own artifacts: training curves, score histograms, the funnel page and
# playable video pages. `snakemake --report report.html` gathers them with the other
# outputs marked report(...) in the rule files, each with its caption from report/.


report: "../report/workflow.rst"


REPORT_CURVES_INPUT = made(
    log=f"{R}/round-{{r}}/train/log.csv",
)


checkpoint report_curves:
    input:
        unpack(REPORT_CURVES_INPUT),
    output:
        losses=report(
            f"{R}/report/round-{{r}}/losses.png",
            caption="../report/losses.rst",
            category="2. Training",
            subcategory="Round {r}",
        ),
        swd=report(
            f"{R}/report/round-{{r}}/swd.png",
            caption="../report/swd.rst",
            category="2. Training",
            subcategory="Round {r}",
        ),
    log:
        f"{LOGS}/report/round-{{r}}/curves.log",
    benchmark:
        f"{LOGS}/report/round-{{r}}/curves.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=REPORT_CURVES_INPUT.digest,
        code=code_digest("report"),
    script:
        adapter("report")


REPORT_SCORES_INPUT = made(
    rank=f"{R}/round-{{r}}/rank.tsv",
    keep=next_keep,
)


checkpoint report_scores:
    input:
        unpack(REPORT_SCORES_INPUT),
    output:
        report(
            f"{R}/report/round-{{r}}/scores.png",
            caption="../report/scores.rst",
            category="3. Ranking",
            subcategory="Round {r}",
        ),
    log:
        f"{LOGS}/report/round-{{r}}/scores.log",
    benchmark:
        f"{LOGS}/report/round-{{r}}/scores.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=REPORT_SCORES_INPUT.digest,
        rank=section("rank"),  # the caption quotes the shares
        code=code_digest("report"),
    script:
        adapter("report")


REPORT_FUNNEL_INPUT = made(
    funnel=f"{R}/report/funnel.tsv",
)


rule report_funnel:
    input:
        unpack(REPORT_FUNNEL_INPUT),
    output:
        report(
            f"{R}/report/funnel.html",
            caption="../report/funnel.rst",
            category="1. Data",
            subcategory="Funnel",
        ),
    log:
        f"{LOGS}/report/funnel.log",
    benchmark:
        f"{LOGS}/report/funnel.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=REPORT_FUNNEL_INPUT.digest,
        code=code_digest("report"),
    script:
        adapter("report")


REPORT_VIDEO_INPUT = made(
    video=f"{R}/videos/{{video}}.mp4",
)


rule report_video:
    input:
        unpack(REPORT_VIDEO_INPUT),
    output:
        report(
            f"{R}/report/videos/{{video}}.html",
            caption="../report/videos.rst",
            category="6. Videos",
        ),
    log:
        f"{LOGS}/report/videos/{{video}}.log",
    benchmark:
        f"{LOGS}/report/videos/{{video}}.bench.tsv"
    wildcard_constraints:
        video="|".join(VIDEOS),
    conda:
        CONDA_ENV
    params:
        made=REPORT_VIDEO_INPUT.digest,
        code=code_digest("report"),
    script:
        adapter("report")


REPORT_OVERVIEW_INPUT = made(
    funnel=f"{R}/report/funnel.tsv",
    logs=expand(f"{R}/round-{{r}}/train/log.csv", r=ROUNDS),
    metrics=metrics_targets(),
    contact=expand(f"{R}/report/contact-{{stage}}.png", stage=CONTACT_STAGES),
    curves=expand(
        f"{R}/report/round-{{r}}/{{plot}}.png", r=ROUNDS, plot=["losses", "swd"]
    ),
    scores=expand(f"{R}/report/round-{{r}}/scores.png", r=ROUNDS[:-1]),
    keep=expand(
        f"{R}/round-{{r}}/keep-sheets/{{end}}.png",
        r=ROUNDS[1:],
        end=["lowest", "highest"],
    ),
    samples=f"{R}/samples/grid.png",
    figures=expand(f"{R}/figures/{{figure}}.png", figure=FIGURE_NAMES),
    videos=expand(f"{R}/videos/{{video}}.mp4", video=VIDEOS),
    projections=pngs(project_targets()),
    edits=pngs(edit_targets()),
)


rule report_overview:
    input:
        unpack(REPORT_OVERVIEW_INPUT),
    output:
        report(
            f"{R}/overview.html",
            caption="../report/overview.rst",
            category="0. Overview",
        ),
    log:
        f"{LOGS}/report/overview.log",
    benchmark:
        f"{LOGS}/report/overview.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=REPORT_OVERVIEW_INPUT.digest,
        run=config["run"],
        code=code_digest("report"),
    script:
        adapter("report")
