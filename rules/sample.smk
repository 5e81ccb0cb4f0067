# Samples and the paper's five figures, from the last round's EMA generator.

FIGURE_NAMES = ["uncurated", "style_mixing", "noise_detail", "noise_components", "truncation"]
FINAL = f"{R}/round-{config['rounds']}/train"


rule samples:
    input:
        generator=f"{FINAL}/generator",
        discriminator=f"{FINAL}/discriminator",
    output:
        seeds=directory(f"{R}/samples/seeds"),
        grid=report(f"{R}/samples/grid.png", caption="../report/samples.rst", category="4. Samples"),
    params:
        samples=config["samples"],
        code=code_digest("samples", "networks", "training"),
    resources:
        gpu=1,
    log:
        f"{LOGS}/samples.log",
    benchmark:
        f"{LOGS}/samples.bench.tsv"
    script:
        f"{SCRIPTS}/samples.py"


rule figure:
    input:
        generator=f"{FINAL}/generator",
        discriminator=f"{FINAL}/discriminator",
    output:
        report(f"{R}/figures/{{figure}}.png", caption="../report/figures.rst", category="5. Figures"),
    wildcard_constraints:
        figure="|".join(FIGURE_NAMES),
    params:
        figures=config["figures"],
        code=code_digest("figures", "samples", "networks", "training"),
    resources:
        gpu=1,
    log:
        f"{LOGS}/figures/{{figure}}.log",
    benchmark:
        f"{LOGS}/figures/{{figure}}.bench.tsv"
    script:
        f"{SCRIPTS}/figure.py"
