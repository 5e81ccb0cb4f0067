"""Adapter for rule train: a round's dataset -> a resumable StyleGAN2 run and its exports."""
from pathlib import Path

from ganflow import train
from ganflow.runlog import limit_threads, logged
from ganflow.train_config import TrainConfig

with logged(snakemake.log[0]):
    limit_threads(snakemake.threads)
    cfg = TrainConfig.from_dict(snakemake.params.train)
    data_dir = Path(snakemake.input.dataset).parent
    init = Path(snakemake.params.init_from) if snakemake.params.init_from else None
    train.train(cfg, train.dataset_stream(data_dir, cfg), train.dataset_fingerprint(data_dir),
                Path(snakemake.params.run_dir), Path(snakemake.output.log).parent, init_from=init)
