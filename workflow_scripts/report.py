"""Adapter for the rules of report.smk: logs, rankings, the funnel, videos and everything
else (the overview) -> report pages."""
from ganflow import report
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    inp, out, rule = snakemake.input, snakemake.output, snakemake.rule
    if rule == "report_curves":
        report.training_curves(inp[0], out.losses, out.swd, title=f"Round {snakemake.wildcards.r}")
    elif rule == "report_scores":
        report.score_histogram(inp.rank, out[0], keep_tsv=inp.keep, title=f"Round {snakemake.wildcards.r}")
    elif rule == "report_funnel":
        report.funnel_page(inp[0], out[0])
    elif rule == "report_overview":
        report.overview_page(out[0], title=f"ganflow: {snakemake.params.run}", funnel_tsv=inp.funnel, sections=[
            ("Contact sheets", inp.contact), ("Training curves", inp.curves),
            ("Ranking", [*inp.scores, *inp.keep]), ("Samples", [inp.samples]), ("Figures", inp.figures),
            ("Videos", inp.videos), ("Projections: target | reconstruction", inp.projections),
            ("Edits", inp.edits)], rounds=list(zip(inp.logs, inp.metrics or [None] * len(inp.logs))))
    else:
        report.video_page(inp[0], out[0], title=snakemake.wildcards.video.replace("-", " ").capitalize())
