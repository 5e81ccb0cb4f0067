# A round's packed dataset -> a StyleGAN2 run. Snapshots live in train/run/, outside the
# declared outputs, so Snakemake never deletes them and a rerun after a crash, kill -9 or
# preemption resumes from the newest one. Round r+1 starts from round r's weights.


TRAIN = dict(config["train"])
TRAIN_INIT = TRAIN.pop("init_from", None)


def init_from(wildcards):
    """Round 1 may start from another run (train.init_from); later rounds from the last."""
    r = int(wildcards.r)
    return f"{R}/round-{r - 1}/train" if r > 1 else (TRAIN_INIT or "")


def init_inputs(wildcards):
    r = int(wildcards.r)
    return [f"{R}/round-{r - 1}/train/generator"] if r > 1 else [TRAIN_INIT] if TRAIN_INIT else []


rule train:
    input:
        dataset=f"{R}/round-{{r}}/dataset/dataset.json",
        init=init_inputs,
    output:
        generator=directory(f"{R}/round-{{r}}/train/generator"),
        discriminator=directory(f"{R}/round-{{r}}/train/discriminator"),
        log=f"{R}/round-{{r}}/train/log.csv",
        frames=f"{R}/round-{{r}}/train/frames.tsv",
    params:
        train=TRAIN,
        run_dir=f"{R}/round-{{r}}/train/run",
        init_from=init_from,
        code=code_digest("training", "networks", "augment", "swd", "dataset"),
    resources:
        gpu=1,
    log:
        f"{LOGS}/round-{{r}}/train.log",
    benchmark:
        f"{LOGS}/round-{{r}}/train.bench.tsv"
    script:
        f"{SCRIPTS}/train.py"
