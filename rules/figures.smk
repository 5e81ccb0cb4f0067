# The paper's five figures from the last round's EMA generator, one job each.


FIGURES_INPUT = made(
    export=FINAL_EXPORT,
)


checkpoint figures:
    input:
        unpack(FIGURES_INPUT),
    output:
        report(
            f"{R}/figures/{{figure}}.png",
            caption="../report/figures.rst",
            category="5. Figures",
        ),
    log:
        f"{LOGS}/figures/{{figure}}.log",
    benchmark:
        f"{LOGS}/figures/{{figure}}.bench.tsv"
    wildcard_constraints:
        figure="|".join(FIGURE_NAMES),
    conda:
        CONDA_GPU_ENV
    threads: 4
    resources:
        gpu=1,
    params:
        made=FIGURES_INPUT.digest,
        figures=section("figures"),
        psi=config["psi"],
        code=code_digest("figures"),
    script:
        adapter("figures")
