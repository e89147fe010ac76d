# The README's two commands: `make run` (the main job) and `make test` (the tests).
# Each builds the virtual environment it needs on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/step7bench run --suite quick --threads 1 --jobs 2 --adaptive

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

benchmark: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-only -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .benchmarks
