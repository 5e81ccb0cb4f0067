"""Adapter for rule videos_progress: every round's fakes grids -> training-progress.mp4."""
from ganflow import videos
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    videos.progress_video(snakemake.input, snakemake.output[0], **snakemake.params.progress)
