# The showcase videos: training progress over all rounds, and three latent walks made
# from the last round's generator.


VIDEOS_PROGRESS_INPUT = made(
    frames=expand(f"{R}/round-{{r}}/train/frames.tsv", r=ROUNDS),
)


checkpoint videos_progress:
    input:
        unpack(VIDEOS_PROGRESS_INPUT),
    output:
        f"{R}/videos/training-progress.mp4",
    log:
        f"{LOGS}/videos/training-progress.log",
    benchmark:
        f"{LOGS}/videos/training-progress.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=VIDEOS_PROGRESS_INPUT.digest,
        progress=canonical(config["videos"]["progress"]),
        code=code_digest("videos_progress"),
    script:
        adapter("videos_progress")


VIDEOS_WALK_INPUT = made(
    export=FINAL_EXPORT,
)


checkpoint videos_walk:
    input:
        unpack(VIDEOS_WALK_INPUT),
    output:
        f"{R}/videos/{{video}}.mp4",
    log:
        f"{LOGS}/videos/{{video}}.log",
    benchmark:
        f"{LOGS}/videos/{{video}}.bench.tsv"
    wildcard_constraints:
        video="|".join(WALK_VIDEOS),
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=VIDEOS_WALK_INPUT.digest,
        walks={k: v for k, v in section("videos").items() if k != "progress"},
        psi=config["psi"],
        code=code_digest("videos_walk"),
    script:
        adapter("videos_walk")
