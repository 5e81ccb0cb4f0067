# Real images into the final generator's W: an encoder trained on its own samples gives
# the starting guess, and the paper's projector optimises from there. Every name under
# project/ is one image: dataset-<k> (final image k of project.dataset_images) or a file
# of project.folder.


# The download runs where Snakemake runs, not on a compute node (often without internet).
localrules:
    project_vgg16,


rule project_vgg16:
    output:
        DOWNLOADED_VGG16,
    log:
        f"{LOGS}/project_vgg16.log",
    benchmark:
        f"{LOGS}/project_vgg16.bench.tsv"
    conda:
        CONDA_ENV
    params:
        sha256=config["project"]["vgg16_sha256"],
        code=code_digest("project_vgg16"),
    script:
        adapter("project_vgg16")


PROJECT_ENCODER_INPUT = made(
    export=FINAL_EXPORT,
)


checkpoint project_encoder:
    input:
        unpack(PROJECT_ENCODER_INPUT),
    output:
        f"{R}/project/encoder.npz",
    log:
        f"{LOGS}/project/encoder.log",
    benchmark:
        f"{LOGS}/project/encoder.bench.tsv"
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=PROJECT_ENCODER_INPUT.digest,
        encoder=canonical(config["project"]["encoder"]),
        code=code_digest("project_encoder"),
    script:
        adapter("project_encoder")


PROJECT_TARGET_INPUT = made(
    images=expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
)


checkpoint project_target:
    input:
        unpack(PROJECT_TARGET_INPUT),
    output:
        f"{R}/project/dataset-{{k}}/target.png",
    log:
        f"{LOGS}/project/dataset-{{k}}/target.log",
    benchmark:
        f"{LOGS}/project/dataset-{{k}}/target.bench.tsv"
    wildcard_constraints:
        k=r"\d+",
    conda:
        CONDA_ENV
    params:
        made=PROJECT_TARGET_INPUT.digest,
        images=config["project"]["dataset_images"],
        code=code_digest("project_target"),
    script:
        adapter("project_target")


PROJECT_INPUT = made(
    export=FINAL_EXPORT,
    target=project_target,
    encoder=(
        f"{R}/project/encoder.npz" if config["project"]["encoder"]["enabled"] else []
    ),
    vgg16=VGG16 if PROJECT_DISTANCE == "vgg16" else [],
)


checkpoint project:
    input:
        unpack(PROJECT_INPUT),
    output:
        w=f"{R}/project/{{name}}/w.npz",
        reconstruction=f"{R}/project/{{name}}/reconstruction.png",
        sheet=report(
            f"{R}/project/{{name}}/sheet.png",
            caption="../report/project.rst",
            category="7. Projection",
        ),
        video=f"{R}/project/{{name}}/optimisation.mp4",
    log:
        f"{LOGS}/project/{{name}}/project.log",
    benchmark:
        f"{LOGS}/project/{{name}}/project.bench.tsv"
    wildcard_constraints:
        name=r"[^/]+",
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=PROJECT_INPUT.digest,
        settings=canonical(
            {k: v for k, v in config["project"].items() if k in PROJECT_SETTINGS}
        ),
        distance=PROJECT_DISTANCE,
        vgg16_sha256=config["project"]["vgg16_sha256"],
        video=canonical(config["project"]["video"]),
        code=code_digest("project"),
    script:
        adapter("project")
