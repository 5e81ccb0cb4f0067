# Directions in W and edits along them: SeFa and GANSpace from the final generator alone,
# and a direction per tag, learned through a tagger trained on the final images and their
# posts' tags. `rule edit` applies one direction at one strength to a seed or a projection.


EDIT_SEFA_INPUT = made(
    export=FINAL_EXPORT,
)


checkpoint edit_sefa:
    input:
        unpack(EDIT_SEFA_INPUT),
    output:
        f"{R}/edits/sefa.npz",
    log:
        f"{LOGS}/edits/sefa.log",
    benchmark:
        f"{LOGS}/edits/sefa.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=EDIT_SEFA_INPUT.digest,
        k=config["edit"]["k"],
        layers=config["edit"]["sefa_layers"],
        samples=config["edit"]["samples"],
        code=code_digest("edit_sefa"),
    script:
        adapter("edit_sefa")


EDIT_GANSPACE_INPUT = made(
    export=FINAL_EXPORT,
)


checkpoint edit_ganspace:
    input:
        unpack(EDIT_GANSPACE_INPUT),
    output:
        f"{R}/edits/ganspace.npz",
    log:
        f"{LOGS}/edits/ganspace.log",
    benchmark:
        f"{LOGS}/edits/ganspace.bench.tsv"
    conda:
        CONDA_ENV
    params:
        made=EDIT_GANSPACE_INPUT.digest,
        k=config["edit"]["k"],
        samples=config["edit"]["samples"],
        code=code_digest("edit_ganspace"),
    script:
        adapter("edit_ganspace")


EDIT_TAGGER_INPUT = made(
    images=expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS),
    ids=expand(f"{R}/ids/{{shard}}.tsv", shard=SHARDS),
)


checkpoint edit_tagger:
    input:
        unpack(EDIT_TAGGER_INPUT),
    output:
        npz=f"{R}/edits/tagger.npz",
        tsv=f"{R}/edits/tagger.tsv",
    log:
        f"{LOGS}/edits/tagger.log",
    benchmark:
        f"{LOGS}/edits/tagger.bench.tsv"
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=EDIT_TAGGER_INPUT.digest,
        resolution=config["train"]["resolution"],
        tags=config["edit"]["tags"],
        min_count=config["edit"]["min_count"],
        tagger=canonical(config["edit"]["tagger"]),
        code=code_digest("edit_tagger"),
    script:
        adapter("edit_tagger")


EDIT_BOUNDARIES_INPUT = made(
    export=FINAL_EXPORT,
    tagger=f"{R}/edits/tagger.npz",
)


checkpoint edit_boundaries:
    input:
        unpack(EDIT_BOUNDARIES_INPUT),
    output:
        npz=f"{R}/edits/tags.npz",
        tsv=f"{R}/edits/tags.tsv",
    log:
        f"{LOGS}/edits/tags.log",
    benchmark:
        f"{LOGS}/edits/tags.bench.tsv"
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=EDIT_BOUNDARIES_INPUT.digest,
        boundary=canonical(config["edit"]["boundary"]),
        conditional=canonical(config["edit"]["conditional"]),
        strength=config["edit"]["video"]["strength"],
        psi=config["psi"],
        code=code_digest("edit_boundaries"),
    script:
        adapter("edit_boundaries")


EDIT_FIGURE_INPUT = made(
    export=FINAL_EXPORT,
    directions=f"{R}/edits/{{method}}.npz",
)


checkpoint edit_figure:
    input:
        unpack(EDIT_FIGURE_INPUT),
    output:
        report(
            f"{R}/edits/{{method}}.png",
            caption="../report/edits.rst",
            category="8. Edits",
        ),
    log:
        f"{LOGS}/edits/{{method}}-figure.log",
    benchmark:
        f"{LOGS}/edits/{{method}}-figure.bench.tsv"
    wildcard_constraints:
        method="|".join(EDIT_METHODS),
    conda:
        CONDA_ENV
    params:
        made=EDIT_FIGURE_INPUT.digest,
        seed=config["edit"]["seed"],
        strengths=config["edit"]["strengths"],
        psi=config["psi"],
        code=code_digest("edit_figure"),
    script:
        adapter("edit_figure")


EDIT_VIDEO_INPUT = made(
    export=FINAL_EXPORT,
    directions=f"{R}/edits/{{method}}.npz",
)


rule edit_video:
    input:
        unpack(EDIT_VIDEO_INPUT),
    output:
        f"{R}/edits/{{method}}.mp4",
    log:
        f"{LOGS}/edits/{{method}}-video.log",
    benchmark:
        f"{LOGS}/edits/{{method}}-video.bench.tsv"
    wildcard_constraints:
        method="|".join(EDIT_METHODS),
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=EDIT_VIDEO_INPUT.digest,
        seeds=config["edit"]["seeds"],
        video=canonical(config["edit"]["video"]),
        psi=config["psi"],
        code=code_digest("edit_video"),
    script:
        adapter("edit_video")


EDIT_TAG_FIGURE_INPUT = made(
    export=FINAL_EXPORT,
    tagger=f"{R}/edits/tagger.npz",
    directions=f"{R}/edits/tags.npz",
)


checkpoint edit_tag_figure:
    input:
        unpack(EDIT_TAG_FIGURE_INPUT),
    output:
        png=report(
            f"{R}/edits/tags/{{tag}}.png",
            caption="../report/edit-tags.rst",
            category="8. Edits",
        ),
        tsv=f"{R}/edits/tags/{{tag}}.tsv",
    log:
        f"{LOGS}/edits/tags/{{tag}}.log",
    benchmark:
        f"{LOGS}/edits/tags/{{tag}}.bench.tsv"
    wildcard_constraints:
        tag=r"[^/]+",
    conda:
        CONDA_ENV
    params:
        made=EDIT_TAG_FIGURE_INPUT.digest,
        seeds=config["edit"]["seeds"],
        strengths=config["edit"]["strengths"],
        psi=config["psi"],
        code=code_digest("edit_tag_figure"),
    script:
        adapter("edit_tag_figure")


EDIT_INPUT = made(
    export=FINAL_EXPORT,
    directions=edit_directions,
    w=edit_projection,
)


checkpoint edit:
    input:
        unpack(EDIT_INPUT),
    output:
        f"{R}/edits/apply/{{direction}}/{{strength}}/{{source}}.png",
    log:
        f"{LOGS}/edits/apply/{{direction}}/{{strength}}/{{source}}.log",
    benchmark:
        f"{LOGS}/edits/apply/{{direction}}/{{strength}}/{{source}}.bench.tsv"
    wildcard_constraints:
        direction=r"(sefa|ganspace)-\d+|tag-[^/]+",
        strength=r"-?\d+(\.\d+)?",
        source=r"[^/]+",
    conda:
        CONDA_ENV
    params:
        made=EDIT_INPUT.digest,
        psi=config["psi"],
        code=code_digest("edit"),
    script:
        adapter("edit")
