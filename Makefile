# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo clean

install: $(STAMP)

# CPU PyTorch pinned first: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# pytest exits 5 when it collects no test; make treats that as a failure, as it should.
test: $(STAMP)
	$(PY) -m pytest -q

# The whole product offline: synthesize spoken banking intents, train, evaluate on unseen voices.
demo: $(STAMP)
	$(VENV)/bin/audioclf demo --output runs/demo

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
