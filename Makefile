# The two quick-start commands: `make run` and `make test`. Each creates the
# virtualenv and installs what it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: run test chaos lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(RUN_STAMP)

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@ $(DEV_STAMP) $(RUN_STAMP)

## Install and start dcibridge on its embedded defaults (SQLite, built-in simulator).
run: $(RUN_STAMP)
	$(BIN)/dcibridge serve

## Install and run the whole test suite (PostgreSQL too when DCIBRIDGE_TEST_DATABASE_URL is set).
test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The chaos suite (PostgreSQL; starts a private cluster it may restart).
chaos: $(DEV_STAMP)
	$(BIN)/python -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

## Run the benchmarks against the simulator; results in bench/results/.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
