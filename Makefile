# keyplane: `make run` to serve, `make test` to check everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
comma := ,
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed

.DEFAULT_GOAL := help
.PHONY: help run demo test test-latest test-fast lint lock format bench setup system-deps clean fuzz soak mutate screenshots

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed: installing Debian's python3-venv"; \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else echo "run: sudo apt-get install python3-venv" >&2; exit 1; fi; \
	  $(PYTHON) -m venv $(VENV); }

# What a fresh clone installs is what was tested: the exact versions, with
# their hashes, of requirements/run.lock (make run), dev.lock (make test) and
# bench.lock (make bench), written by `make lock` from pyproject.toml's ranges.
# `make test-latest` installs the newest versions the ranges allow instead
# (LOCKED= ), in .venv-latest, to see drift on purpose.
LOCKED ?= 1
ifeq ($(LOCKED),1)
install = $(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/$(1).lock \
	&& $(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
else
install = $(BIN)/pip install --quiet --upgrade --upgrade-strategy eager -e '.[$(1)]'
endif

$(RUN_STAMP): pyproject.toml requirements/run.lock | $(VENV)/bin/python
	$(call install,run)
	@touch $@

$(DEV_STAMP): pyproject.toml requirements/dev.lock | $(VENV)/bin/python
	$(call install,dev)
	@touch $@ $(RUN_STAMP)

setup: $(DEV_STAMP) ## Create .venv and install keyplane with its development tools (requirements/dev.lock)

LOCK_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--upgrade --custom-compile-command 'make lock'
# Every input of keyplane's lock: pyproject.toml's ranges and what keyplane is built with.
LOCK_PROJECT = $(LOCK_COMPILE) pyproject.toml requirements/build.in

lock: setup ## Resolve the ranges of pyproject.toml to the newest versions into requirements/*.lock
	$(LOCK_PROJECT) --extra dev --extra bench -o requirements/bench.lock
	$(LOCK_PROJECT) --extra dev -c requirements/bench.lock -o requirements/dev.lock
	$(LOCK_PROJECT) -c requirements/bench.lock -o requirements/run.lock
	$(LOCK_COMPILE) requirements/django.in -o requirements/django.lock  # make bench's F7 peer

HOST ?= 127.0.0.1
PORT ?= 8080

run: $(RUN_STAMP) ## Migrate ./data/keyplane.db, bootstrap on first start, serve on HOST:PORT (127.0.0.1:8080)
	$(BIN)/keyplane serve --host '$(HOST)' --port '$(PORT)'

# PORT= as for make run (nginx's port, the one to call); unset: a free port.
demo: $(RUN_STAMP) ## keyplane, the calls service and nginx on loopback (PORT=N: nginx's port); prints curl lines; Ctrl-C stops
	@scripts/system-deps.sh nginx
	$(BIN)/python scripts/demo.py $(if $(filter command line environment,$(origin PORT)),--port '$(PORT)')

screenshots: setup ## Photograph each /admin screen into docs/screenshots/ (Debian's Chromium)
	@scripts/system-deps.sh chromium
	$(BIN)/python scripts/screenshots.py

system-deps: ## Install the system packages the tests need (as root, with apt-get)
	@scripts/system-deps.sh postgresql redis-server nginx openssl chromium

# Independent tests run in parallel (pytest-xdist, a module per worker; each
# worker starts its own PostgreSQL and Redis) and in random order
# (pytest-randomly: the seed is printed; repeat an order with --randomly-seed=N,
# or run in file order with -p no:randomly). Files are handed out in the
# collected order (tests/conftest.py puts the ones that start servers first),
# not xdist's largest-count-first, which left a minute-long file for the end.
# A worker that crashes ends the run (--max-worker-restart 0): xdist 3.8's
# replacement worker can wait forever for work under --dist loadfile.
TEST_WORKERS ?= 2

test: setup system-deps lint ## Lint and run every test (in parallel, in random order)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --max-worker-restart 0

test-latest: ## make test against the newest versions pyproject.toml allows (in .venv-latest)
	$(MAKE) test VENV=.venv-latest LOCKED=

test-fast: setup ## Unit tests only, in-process, no services (the inner loop, under 20 s)
	$(BIN)/pytest -q -m "not e2e" tests/unit

FUZZ_EXAMPLES ?= 1000

fuzz: setup system-deps ## Long fuzzing: stateful schemathesis and the Hypothesis properties (FUZZ_EXAMPLES=1000)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -p no:cacheprovider \
	  tests/functional/test_schemathesis.py tests/integration/test_fuzz_inputs.py

MUTATE_CHILDREN ?= 2
ONLY ?=

mutate: setup ## Mutation testing of the code that decides who gets in (ONLY='keyplane.domain*'; not in make test; docs/testing.md)
	rm -rf mutants
	nice -n 19 $(BIN)/mutmut run --max-children $(MUTATE_CHILDREN) $(ONLY)
	$(BIN)/python scripts/mutation_score.py --min 90

SOAK_SECONDS ?= 600

soak: setup ## Mixed traffic at half capacity against a real server (SOAK_SECONDS=600; not in make test)
	$(BIN)/python -m benchmarks.soak --seconds $(SOAK_SECONDS)

lint: setup ## ruff, mypy (strict for src/) and the layer table (import-linter)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports .importlinter  # the layer table of docs/architecture.md
	$(BIN)/regexploit-py src/  # no regular expression with catastrophic backtracking
	$(BIN)/python scripts/check_terminal_output.py src/keyplane

format: setup ## Apply ruff's formatting and fixes
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): pyproject.toml requirements/bench.lock $(DEV_STAMP)
	$(call install,$(if $(filter 1,$(LOCKED)),bench,dev$(comma)bench))
	@touch $@

bench: $(BENCH_STAMP) ## Measure F1..F10 (docs/benchmarks.md); QUICK=1 for a run under two minutes
	@scripts/system-deps.sh wrk postgresql redis-server
	$(BIN)/python -m benchmarks --mode $(if $(QUICK),quick,full)

clean: ## Remove the virtual environment and caches (keeps ./data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
