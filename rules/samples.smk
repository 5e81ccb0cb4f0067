# Samples from the last round's EMA generator: a PNG per seed and a grid.


SAMPLES_INPUT = made(
    export=FINAL_EXPORT,
)


checkpoint samples:
    input:
        unpack(SAMPLES_INPUT),
    output:
        seeds=directory(f"{R}/samples/seeds"),
        settings=f"{R}/samples/settings.json",
        grid=report(
            f"{R}/samples/grid.png",
            caption="../report/samples.rst",
            category="4. Samples",
        ),
    log:
        f"{LOGS}/samples.log",
    benchmark:
        f"{LOGS}/samples.bench.tsv"
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=SAMPLES_INPUT.digest,
        samples=section("samples"),
        psi=config["psi"],
        code=code_digest("samples"),
    script:
        adapter("samples")
