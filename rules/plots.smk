# The report's own artifacts: training curves, score histograms, the funnel page and
# playable video pages. `snakemake --report report.html` gathers them with the other
# outputs marked report(...) in the rule files, each with its caption from report/.

report: "../report/workflow.rst"


RANKED_ROUNDS = range(1, config["rounds"])
REPORT_PAGES = (
    [f"{R}/report/funnel.html"]
    + expand(f"{R}/report/round-{{r}}/{{plot}}.png", r=range(1, config["rounds"] + 1), plot=["losses", "swd"])
    + expand(f"{R}/report/round-{{r}}/scores.png", r=RANKED_ROUNDS)
    + expand(f"{R}/report/videos/{{video}}.html", video=VIDEOS)
)


rule training_curves:
    input:
        f"{R}/round-{{r}}/train/log.csv",
    output:
        losses=report(f"{R}/report/round-{{r}}/losses.png", caption="../report/losses.rst",
                      category="2. Training", subcategory="Round {r}"),
        swd=report(f"{R}/report/round-{{r}}/swd.png", caption="../report/swd.rst",
                   category="2. Training", subcategory="Round {r}"),
    params:
        code=code_digest("plots"),
    log:
        f"{LOGS}/report/round-{{r}}/training-curves.log",
    benchmark:
        f"{LOGS}/report/round-{{r}}/training-curves.bench.tsv"
    script:
        f"{SCRIPTS}/plots.py"


rule score_histogram:
    input:
        rank=f"{R}/round-{{r}}/rank.tsv",
        keep=lambda wc: f"{R}/round-{int(wc.r) + 1}/keep.tsv",
    output:
        report(f"{R}/report/round-{{r}}/scores.png", caption="../report/scores.rst",
               category="3. Ranking", subcategory="Round {r}"),
    params:
        rank=config["rank"],
        code=code_digest("plots"),
    log:
        f"{LOGS}/report/round-{{r}}/score-histogram.log",
    benchmark:
        f"{LOGS}/report/round-{{r}}/score-histogram.bench.tsv"
    script:
        f"{SCRIPTS}/plots.py"


rule funnel_page:
    input:
        f"{R}/report/funnel.tsv",
    output:
        report(f"{R}/report/funnel.html", caption="../report/funnel.rst", category="1. Data", subcategory="Funnel"),
    params:
        code=code_digest("plots"),
    log:
        f"{LOGS}/report/funnel-page.log",
    benchmark:
        f"{LOGS}/report/funnel-page.bench.tsv"
    script:
        f"{SCRIPTS}/plots.py"


rule video_page:
    input:
        f"{R}/videos/{{video}}.mp4",
    output:
        report(f"{R}/report/videos/{{video}}.html", caption="../report/videos.rst", category="6. Videos"),
    wildcard_constraints:
        video="|".join(VIDEOS),
    params:
        code=code_digest("plots"),
    log:
        f"{LOGS}/report/videos/{{video}}.log",
    benchmark:
        f"{LOGS}/report/videos/{{video}}.bench.tsv"
    script:
        f"{SCRIPTS}/plots.py"
