# A released model (`generator:` or `train.init_from` in the config) -> a ganflow export,
# read by a restricted unpickler that runs nothing from the file.

if IMPORTING:

    checkpoint import_weights:
        input:
            IMPORT_SOURCE,
        output:
            generator=directory(f"{IMPORTED}/generator"),
            discriminator=directory(f"{IMPORTED}/discriminator"),
            export=f"{IMPORTED}/export.json",
        log:
            f"{LOGS}/import_weights.log",
        benchmark:
            f"{LOGS}/import_weights.bench.tsv"
        conda:
            CONDA_ENV
        params:
            code=code_digest("import_weights"),
        script:
            adapter("import_weights")
