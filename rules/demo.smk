# The embedded demo: a generated Danbooru-style mirror, so `make demo` needs no download.

if IS_DEMO:

    checkpoint demo:
        output:
            metadata=[f"{DEMO_ROOT}/{m}" for m in config["source"]["metadata"]],
            truth=f"{DEMO_ROOT}/truth.tsv",
            original=directory(f"{DEMO_ROOT}/original"),
        log:
            f"{LOGS}/demo.log",
        benchmark:
            f"{LOGS}/demo.bench.tsv"
        conda:
            CONDA_ENV
        params:
            demo=section("demo"),
            code=code_digest("demo"),
        script:
            adapter("demo")
