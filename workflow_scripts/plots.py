"""Adapter for the rules of plots.smk: logs, rankings, the funnel and videos -> report pages."""
from ganflow import plots
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    inp, out, rule = snakemake.input, snakemake.output, snakemake.rule
    if rule == "training_curves":
        plots.training_curves(inp[0], out.losses, out.swd, title=f"Round {snakemake.wildcards.r}")
    elif rule == "score_histogram":
        plots.score_histogram(inp.rank, out[0], keep_tsv=inp.keep, title=f"Round {snakemake.wildcards.r}")
    elif rule == "funnel_page":
        plots.funnel_page(inp[0], out[0])
    else:
        plots.video_page(inp[0], out[0], title=snakemake.wildcards.video.replace("-", " ").capitalize())
