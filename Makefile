# Two commands for a fresh machine: `make demo` and `make test`; both create .venv on first use.
# `make test-all` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all browser bench demo clean

install: $(STAMP)

# CPU PyTorch pinned first: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The Hub loader is also tested under datasets 3.x (with huggingface_hub 0.x), which `[hub]` allows.
DATASETS3 := .venv-datasets3/.installed
$(DATASETS3):
	$(PYTHON) -m venv .venv-datasets3
	.venv-datasets3/bin/python -m pip install -q 'datasets>=3,<4' 'huggingface_hub<1' soundfile soxr numpy pyyaml
	touch $@

# `make test`: every stage, the slow checks left out (pytest -m slow lists them); `make test-all`: everything,
# as CI runs it, with the slowest tests named. pytest exits 5 when it collects no test; make fails then, as it should.
LINT := $(VENV)/bin/ruff check src tests bench

test: $(STAMP)
	$(LINT)
	$(PY) -m pytest -q -m "not slow" --durations=10

test-all: $(STAMP) browser $(DATASETS3)
	$(LINT)
	$(PY) -m pytest -q --durations=25

# The web page's test drives Debian's chromium; install it where missing (the test skips, saying why,
# only where it cannot be installed).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium >/dev/null) || echo "make: could not install chromium"

# Benchmarks print our figure beside the reference from the same run and write bench/results/*.json.
# `make bench QUICK=1` runs each one small, to check the scripts; a full run also remakes the README's table.
BENCH_FLAGS := $(if $(QUICK),--quick,)
bench: $(STAMP)
	$(PY) bench/training.py $(BENCH_FLAGS)
	$(PY) bench/inference.py $(BENCH_FLAGS)
	$(PY) bench/cold_start.py $(BENCH_FLAGS)
	$(PY) bench/serve_load.py $(BENCH_FLAGS)
	$(PY) bench/memory.py $(BENCH_FLAGS)
	$(PY) bench/accuracy.py $(BENCH_FLAGS)
	$(PY) bench/accuracy.py $(BENCH_FLAGS) --strategies finetune --output bench/results/accuracy_lpft.json --set \
		augment_trim=10:35 probe_first=true average_weights=true wise_ft=0.5 augment_noise_snr=10:30
	$(PY) bench/accuracy_synth.py $(BENCH_FLAGS)
	$(PY) bench/fsdd_transcribe.py $(BENCH_FLAGS)
	$(if $(QUICK),,$(PY) bench/report.py --write)

# The whole product offline: synthesize spoken banking intents, train, evaluate on unseen voices.
demo: $(STAMP)
	$(VENV)/bin/audioclf demo --output runs/demo

clean:
	rm -rf $(VENV) .venv-datasets3 build src/*.egg-info .pytest_cache
