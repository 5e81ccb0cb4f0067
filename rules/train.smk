# A round's packed dataset -> a StyleGAN2 run. Snapshots live in train/run/, outside the
# declared outputs, so Snakemake never deletes them and a rerun after a crash, kill -9 or
# preemption resumes from the newest one. Round r+1 starts from round r's weights
# (later_rounds.start: previous) or from random ones (scratch).


TRAIN_INPUT = made(
    dataset=f"{R}/round-{{r}}/dataset/dataset.json",
    init=init_inputs,
)


checkpoint train:
    input:
        unpack(TRAIN_INPUT),
        metric_nets=train_metric_files(),
    output:
        generator=directory(f"{R}/round-{{r}}/train/generator"),
        discriminator=directory(f"{R}/round-{{r}}/train/discriminator"),
        log=f"{R}/round-{{r}}/train/log.csv",
        frames=f"{R}/round-{{r}}/train/frames.tsv",
        # the sha256 of every exported file: what later stages declare as their input
        export=f"{R}/round-{{r}}/train/export.json",
    log:
        f"{LOGS}/round-{{r}}/train.log",
    benchmark:
        f"{LOGS}/round-{{r}}/train.bench.tsv"
    conda:
        CONDA_GPU_ENV
    threads: 8
    resources:
        **TRAIN_RESOURCES,
        gpu=1,
    params:
        made=TRAIN_INPUT.digest,
        train=train_params,
        run_dir=f"{R}/round-{{r}}/train/run",
        init_from=init_from,
        metrics=train_metrics(),
        code=code_digest("train"),
    script:
        adapter("train")
