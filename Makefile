# Two commands on a fresh machine: `make demo` and `make test` (`make test-fast`: without
# the tests marked slow, under a minute). The test install takes every extra the tests use
# (series: pandas for time stamps; baselines: statsforecast; datasets: statsmodels).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test

.PHONY: demo test test-fast lint install install-test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[train,fast]'
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[train,fast,series,baselines,datasets,test]'
	touch $@

install: $(STAMP)
install-test: $(TSTAMP)

demo: $(STAMP)
	$(BIN)/python -m lstmkit demo

test: $(TSTAMP)
	$(BIN)/python -m pytest

test-fast: $(TSTAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(TSTAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src/lstmkit
	$(BIN)/lint-imports

bench: $(TSTAMP)
	$(BIN)/python benchmarks/bench_lstm.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
