# The embedded demo: a generated Danbooru-style mirror, so `make demo` needs no download.

if config["source"]["root"] == DEMO_ROOT:

    rule demo_mirror:
        output:
            metadata=[f"{DEMO_ROOT}/{m}" for m in config["source"]["metadata"]],
            truth=f"{DEMO_ROOT}/truth.tsv",
            original=directory(f"{DEMO_ROOT}/original"),
        params:
            demo=config.get("demo", {}),
            code=code_digest("demo"),
        log:
            f"{LOGS}/demo_mirror.log",
        benchmark:
            f"{LOGS}/demo_mirror.bench.tsv"
        script:
            f"{SCRIPTS}/demo_mirror.py"
