# regfit — the two commands: `make run` (set up and serve) and `make test` (set up and test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SOURCES := $(wildcard service tests benchmarks migrations clients/python/regfit)
CLIENT  := clients/python

.PHONY: run test lint format pytest migrate worker bench clean

# The client distribution (clients/python) owns the `regfit` command; the server adds its
# commands to it. Both go into the venv: `.venv/bin/regfit`, or `source .venv/bin/activate`.
$(STAMP): pyproject.toml $(CLIENT)/pyproject.toml VERSION
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e ./$(CLIENT)
	touch $(STAMP)

run: $(STAMP)
	@echo "regfit is at $(BIN)/regfit (or: source $(BIN)/activate); try: $(BIN)/regfit --help"
	$(BIN)/regfit serve

migrate: $(STAMP)
	$(BIN)/regfit migrate

worker: $(STAMP)
	$(BIN)/regfit worker

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint pytest

# The benchmarks in quick mode (a few minutes; they print, they assert nothing). Full runs and
# their figures: benchmarks/README.md. wrk is the Debian package `wrk`.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/serving.py --quick
	$(BIN)/python benchmarks/ingest.py --quick
	$(BIN)/python benchmarks/fit_overhead.py --quick
	$(BIN)/python benchmarks/scaling.py --quick
	$(BIN)/python benchmarks/tuning.py --quick
	$(BIN)/python benchmarks/cli_overhead.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
