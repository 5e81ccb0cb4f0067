# The showcase videos: training progress over all rounds, and three latent walks made
# from the last round's generator.

WALK_VIDEOS = ["interpolation-grid", "style-mixing-coarse", "style-mixing-fine"]
VIDEOS = ["training-progress"] + WALK_VIDEOS


rule progress_video:
    input:
        [f"{R}/round-{r}/train/frames.tsv" for r in range(1, config["rounds"] + 1)],
    output:
        f"{R}/videos/training-progress.mp4",
    params:
        video=config["videos"]["progress"],
        code=code_digest("videos"),
    log:
        f"{LOGS}/videos/training-progress.log",
    benchmark:
        f"{LOGS}/videos/training-progress.bench.tsv"
    script:
        f"{SCRIPTS}/progress_video.py"


rule walk_video:
    input:
        generator=f"{FINAL}/generator",
        discriminator=f"{FINAL}/discriminator",
    output:
        f"{R}/videos/{{video}}.mp4",
    wildcard_constraints:
        video="|".join(WALK_VIDEOS),
    params:
        videos=config["videos"],
        code=code_digest("videos", "samples", "networks", "training"),
    resources:
        gpu=1,
    log:
        f"{LOGS}/videos/{{video}}.log",
    benchmark:
        f"{LOGS}/videos/{{video}}.bench.tsv"
    script:
        f"{SCRIPTS}/walk_video.py"
