# Every target bootstraps what it needs: the virtualenv, its packages and the embedded stack.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt | cksum | cut -d' ' -f1)

.PHONY: install run migrate test lint stop status clean locust loadtest bench bench-quick bench-check bench-baseline bench-detect

$(STAMP):
	@echo "==> creating $(VENV) and installing packages (first run only)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt 2> $(VENV)/pip.log \
		|| { cat $(VENV)/pip.log; exit 1; }
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

run: install  ## the service on http://$${HOST:-127.0.0.1}:$${PORT:-2080}, Swagger at /swagger
	$(PY) -m service run

migrate: install
	$(PY) -m service migrate

lint: install
	$(PY) -m ruff check $(wildcard service tests bench loadtests)
	$(PY) -m mypy

test: lint  ## ruff, mypy, then every test against real PostgreSQL and Redis
	$(PY) -m pytest tests

bench: install  ## every load run, microbenchmarks, RESULTS.md and plots (about 13 minutes)
	$(PY) -m bench.load
	BENCH_QUICK=0 $(PY) -m pytest bench/test_micro.py -q -p no:cacheprovider --benchmark-json=bench/results/micro.json
	$(PY) -m bench.report

bench-quick: install  ## a shorter pass of the same (under 3 minutes): RESULTS-quick.md
	$(PY) -m bench.load --quick
	BENCH_QUICK=1 $(PY) -m pytest bench/test_micro.py -q -p no:cacheprovider --benchmark-json=bench/results/micro-quick.json
	$(PY) -m bench.report --quick

bench-check: install  ## this tree against the baseline commit, side by side in one run (about 2 minutes)
	$(PY) -m bench.check --output bench/results/check-last.json

# Moving the baseline is a decision, not a way to quiet a failure: say why.
REV ?= HEAD
bench-baseline: install  ## name the baseline commit: make bench-baseline REV=<commit> REASON="..."
	@test -n "$(REASON)" || { echo 'say why the baseline moves: make bench-baseline REV=$(REV) REASON="..."'; exit 2; }
	$(PY) -m bench.check --set-baseline $(REV) --reason "$(REASON)"

bench-detect: install  ## calibrate a 25% slowdown per path; 10 clean and 10 slowed checks; updates RESULTS.md
	$(PY) -m bench.detect
	$(PY) -m bench.report

# Locust: `make loadtest SCENARIO=mixed USERS=50 DURATION=60s` (scenarios: mixed, reader, cold,
# poster, registrar). Gates: MAX_FAIL_RATIO (default 0) and MAX_P95_MS (default 0 = off).
SCENARIO ?= mixed
USERS ?= 50
DURATION ?= 60s
PROCESSES ?= 1
MAX_FAIL_RATIO ?= 0
MAX_P95_MS ?= 0
NO_SEED ?= 0

locust: install  ## Locust web UI on http://127.0.0.1:8089, target the service (started and seeded if needed)
	$(PY) -m loadtests.run --ui

loadtest: install  ## headless Locust run with gates; CSV, HTML and JSON reports in results/loadtest/
	$(PY) -m loadtests.run --scenario $(SCENARIO) --users $(USERS) --duration $(DURATION) \
		--processes $(PROCESSES) --max-fail-ratio $(MAX_FAIL_RATIO) --max-p95-ms $(MAX_P95_MS) \
		$(if $(filter 1,$(NO_SEED)),--no-seed,)

status: install
	$(PY) -m service stack status

stop: install  ## stop a background service (make locust) and the embedded stacks (run, test, bench)
	$(PY) -m service stop
	$(PY) -m service stack down
	DATA_DIR=.data/test STACK_PG_PORT=55442 STACK_REDIS_PORT=56389 $(PY) -m service stack down
	DATA_DIR=.data/bench STACK_PG_PORT=55452 STACK_REDIS_PORT=56399 $(PY) -m service stack down

clean: stop
	rm -rf .data
