# The report's own artifacts: training curves, score histograms, the funnel page and
# playable video pages. `snakemake --report report.html` gathers them with the other
# outputs marked report(...) in the rule files, each with its caption from report/.


report: "../report/workflow.rst"


rule report_curves:
    input:
        f"{R}/round-{{r}}/train/log.csv",
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
        code=code_digest("report"),
    script:
        adapter("report")


rule report_scores:
    input:
        rank=f"{R}/round-{{r}}/rank.tsv",
        keep=next_keep,
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
        rank=section("rank"),  # the caption quotes the shares
        code=code_digest("report"),
    script:
        adapter("report")


rule report_funnel:
    input:
        f"{R}/report/funnel.tsv",
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
        code=code_digest("report"),
    script:
        adapter("report")


rule report_video:
    input:
        f"{R}/videos/{{video}}.mp4",
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
        code=code_digest("report"),
    script:
        adapter("report")


rule report_overview:
    input:
        funnel=f"{R}/report/funnel.tsv",
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
        dataset=config["dataset"],
        code=code_digest("report"),
    script:
        adapter("report")
