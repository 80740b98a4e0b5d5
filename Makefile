# The few commands everyone runs. Each target creates the virtualenv and installs what it
# needs, so they work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo serve test lint check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,server]'
	touch $(STAMP)

## demo: set up and run the demo (a cached provider: miss, hit, coalescing, stats)
demo: $(STAMP)
	$(BIN)/python -m vex_llm demo

## serve: the caching proxy on http://127.0.0.1:8080/v1 with the embedded defaults (the real
## local model, installed on first use, and a SQLite cache); SERVE_ARGS="--port 9000" etc.
serve: $(STAMP)
	$(BIN)/vex-llm serve $(SERVE_ARGS)

## test: set up and run the whole test suite (installs the local LLM for integration tests,
## redis-server and chromium for the store and dashboard tests)
test: $(STAMP)
	sh scripts/install-redis.sh
	sh scripts/install-chromium.sh
	$(BIN)/python -m vex_llm.local.install
	$(BIN)/python -m pytest -n 2

## lint: ruff (check + format) and mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy --strict src

## check: what CI runs
check: lint test

## bench: the benchmark tables
bench: $(STAMP)
	$(BIN)/python benchmarks/cache_hit.py
	$(BIN)/python benchmarks/hit_ratio.py
	$(BIN)/python benchmarks/proxy.py
	$(BIN)/python benchmarks/resilience.py
	$(BIN)/python benchmarks/workers.py
	sh scripts/install-redis.sh
	$(BIN)/python benchmarks/stores.py
	$(BIN)/python -m vex_llm.local.install
	$(BIN)/python benchmarks/stream_fanout.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
