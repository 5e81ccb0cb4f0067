"""Adapter for rule train: a round's dataset -> a resumable StyleGAN2 run and its exports
(one process, or train.nodes x train.tasks_per_node workers started with srun)."""
from pathlib import Path

from ganflow import train
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    train.launch(snakemake.params.train, Path(snakemake.input.dataset).parent, Path(snakemake.params.run_dir),
                 Path(snakemake.output.log).parent, init_from=snakemake.params.init_from or None,
                 threads=snakemake.threads, launcher=snakemake.resources.get("mpi", "srun"),
                 metrics=snakemake.params.metrics or None)
