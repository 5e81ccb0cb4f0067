# Selected ids -> face crops (lbpcascade_animeface) + a manifest per shard.

rule cascade:
    output:
        config["faces"]["cascade"],
    params:
        sha256=config["faces"]["cascade_sha256"],
    log:
        f"{LOGS}/cascade.log",
    benchmark:
        f"{LOGS}/cascade.bench.tsv"
    script:
        f"{SCRIPTS}/cascade.py"


rule faces:
    input:
        ids=f"{R}/ids/{{shard}}.tsv",
        cascade=config["faces"]["cascade"] if config["faces"]["enabled"] else [],
    output:
        crops=directory(f"{R}/faces/{{shard}}"),
        manifest=f"{R}/faces/{{shard}}.tsv",
    params:
        faces=config["faces"],
        content=content(listed="path"),
        code=code_digest("faces", "imaging"),
    log:
        f"{LOGS}/faces/{{shard}}.log",
    benchmark:
        f"{LOGS}/faces/{{shard}}.bench.tsv"
    script:
        f"{SCRIPTS}/faces.py"
