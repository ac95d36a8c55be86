# Every target bootstraps what it needs: the virtualenv, its packages and the embedded stack.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt | cksum | cut -d' ' -f1)

# The stacks each command uses: run (.data), test, bench and chaos (.data/<name>; their ports are
# in ops/stack.py, NAMED_STACKS).

.PHONY: help all install run cluster migrate test lint stop status reset clean locust loadtest bench bench-quick \
	bench-check bench-baseline bench-history bench-detect bench-inject bench-scale bench-instances bench-target bench-curves bench-network soak fuzz chaos docs
.DEFAULT_GOAL := help

help:  ## this list
	@echo "Simple Twitter: make <target>   (README.md explains each)"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1|\2/' | column -t -s '|'

$(STAMP):
	@echo "==> creating $(VENV) and installing packages (first run only: 2-4 minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt 2> $(VENV)/pip.log \
		|| { cat $(VENV)/pip.log; exit 1; }
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)  ## the virtualenv .venv with every package (every target does this first)

run: install  ## the service on http://127.0.0.1:2080 (Swagger UI at /swagger); Ctrl-C stops it
	$(PY) -m ops run

INSTANCES ?= 2
POOLER ?= 0
REPLICA ?= 0
REDIS_CLUSTER ?= 0
cluster: install  ## INSTANCES instances behind HAProxy on :2080 (background); POOLER=1 REPLICA=1 REDIS_CLUSTER=1 add tiers
	$(PY) -m ops balancer up --instances $(INSTANCES) $(if $(filter 1,$(POOLER)),--pooler,) \
		$(if $(filter 1,$(REPLICA)),--replica,) $(if $(filter 1,$(REDIS_CLUSTER)),--redis-cluster,)

all: run  ## the original project's command to run the app: same as make run

migrate: install  ## apply pending sql/ migrations to the run stack's database
	$(PY) -m ops migrate

docs:  ## draw docs/architecture.svg from docs/architecture.dot (Graphviz, installed from Debian if missing)
	@command -v dot >/dev/null || apt-get install -y -qq graphviz >/dev/null
	dot -Tsvg docs/architecture.dot -o docs/architecture.svg

lint: install  ## ruff and mypy
	$(PY) -m ruff check $(wildcard service ops tests bench loadtests)
	$(PY) -m mypy

test: lint  ## ruff, mypy, then every test against real PostgreSQL and Redis
	$(PY) -m pytest tests

FUZZ_EXAMPLES ?= 100
fuzz: install  ## schemathesis from /openapi.json: every operation and check, fixed seed (FUZZ_EXAMPLES=100: ~1,300 cases)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m tests.fuzz

CHAOS_SHORT ?= 0
chaos: install  ## faults injected under load: one server, the pooled replicated tier, partitions between instances; RESULTS.md tables
	$(PY) -m bench.chaos $(if $(filter 1,$(CHAOS_SHORT)),--short,--publish)
	$(PY) -m bench.chaos --tier pooled $(if $(filter 1,$(CHAOS_SHORT)),--short,--publish)
	$(PY) -m bench.chaos --tier partition $(if $(filter 1,$(CHAOS_SHORT)),--short,--publish)

# pytest-benchmark's own table, kept narrow (RESULTS.md has the full figures).
BENCH_COLUMNS := --benchmark-columns=median,iqr,rounds --benchmark-name=short --benchmark-sort=name

SECTION ?=
bench: install  ## every load run, ceilings, peers, capacity curves, the network runs, profiles, microbenchmarks, RESULTS.md and plots (about two hours); SECTION=<name> redoes one part alone
ifneq ($(SECTION),)
	$(PY) -m bench.redo $(SECTION)
else
	$(PY) -m bench.load
	$(PY) -m bench.instances
	$(PY) -m bench.curves
	$(PY) -m bench.network
	$(PY) -m bench.profile
	BENCH_QUICK=0 $(PY) -m pytest bench/test_micro.py -q -p no:cacheprovider $(BENCH_COLUMNS) --benchmark-json=bench/results/micro.json
	$(PY) -m bench.history --worktree
	$(PY) -m bench.report
endif

bench-quick: install  ## a shorter pass of the same (under 3 minutes): RESULTS-quick.md
	$(PY) -m bench.load --quick
	$(PY) -m bench.profile --quick
	BENCH_QUICK=1 $(PY) -m pytest bench/test_micro.py -q -p no:cacheprovider $(BENCH_COLUMNS) --benchmark-json=bench/results/micro-quick.json
	$(PY) -m bench.report --quick

SOAK_MINUTES ?= 10
soak: install  ## a long Mixed run on 2 workers sampling memory, fds and pools; plot and RESULTS.md section
	$(PY) -m bench.soak --minutes $(SOAK_MINUTES)

SLO_MS ?= 10
bench-curves: install  ## latency against offered load (open loop) for every path, ours and every peer; capacity at p99 <= SLO_MS; RESULTS.md section
	$(PY) -m bench.curves --slo-ms $(SLO_MS) --publish

RTT ?= 0.25ms,1ms
bench-network: install  ## PostgreSQL and Redis on a test host of their own, RTT away (a delaying relay): every path on ours and every peer, the network ablations; RESULTS.md section
	$(PY) -m bench.network --rtt-ms $(subst ms,,$(RTT)) --slo-ms $(SLO_MS) $(if $(filter 1,$(QUICK)),--quick,--publish)

bench-instances: install  ## 1 instance vs N behind HAProxy, HAProxy's and PgBouncer's own cost; RESULTS.md section
	$(PY) -m bench.instances

TARGET ?=
bench-target: install  ## the HTTP benchmark against any deployment: make bench-target TARGET=http://host:2080
	@test -n "$(TARGET)" || { echo 'say where: make bench-target TARGET=http://host:port'; exit 2; }
	$(PY) -m bench.target --url $(TARGET) $(if $(METRICS),--metrics $(METRICS),)

bench-scale: install  ## every path at 0.2M, 2M, 4M and 20M tweets, as far as 25 minutes go; RESULTS.md section
	$(PY) -m bench.scale

bench-check: install  ## this tree against the baseline commit (each on its own environment and database), side by side (about 2 minutes)
	$(PY) -m bench.check --confirm --output bench/results/check-last.json

# Moving the baseline is a decision, not a way to quiet a failure: say why.
REV ?= HEAD
bench-baseline: install  ## name the baseline commit: make bench-baseline REV=<commit> REASON="..."
	@test -n "$(REASON)" || { echo 'say why the baseline moves: make bench-baseline REV=$(REV) REASON="..."'; exit 2; }
	$(PY) -m bench.check --set-baseline $(REV) --reason "$(REASON)"

REVS ?= ..HEAD
HISTORY_MINUTES ?= 30
bench-history: install  ## past commits beside the baseline, as far as HISTORY_MINUTES go: make bench-history REVS=<a>..<b>|<list>
	$(PY) -m bench.history --revs "$(REVS)" --budget-minutes $(HISTORY_MINUTES)

bench-detect: install  ## calibrate a 25% slowdown per path; 10 clean and 10 slowed checks; updates RESULTS.md
	$(PY) -m bench.detect

bench-inject: install  ## a slower migration and a slower dependency, each calibrated to 25% and checked 10 times; RESULTS.md
	$(PY) -m bench.inject

# Locust: `make loadtest SCENARIO=mixed USERS=50 DURATION=60s` (scenarios: mixed, reader, cold,
# poster, registrar). Gates: MAX_FAIL_RATIO (default 0) and MAX_P95_MS (default 0 = off).
# TARGET=http://host:port aims it at any deployment (default: the local service, started if need
# be); METRICS=url,url sums those instances' /metrics for the run's cache hit ratio and pool waits.
SCENARIO ?= mixed
USERS ?= 50
DURATION ?= 60s
PROCESSES ?= 1
MAX_FAIL_RATIO ?= 0
MAX_P95_MS ?= 0
NO_SEED ?= 0

locust: install  ## Locust web UI on http://127.0.0.1:8089 against the service (started and seeded if needed) or TARGET
	$(PY) -m loadtests.run --ui --scenario $(SCENARIO) $(if $(filter 1,$(NO_SEED)),--no-seed,) $(if $(TARGET),--host $(TARGET),)

loadtest: install  ## headless Locust run with gates; CSV, HTML and JSON reports in results/loadtest/
	$(PY) -m loadtests.run --scenario $(SCENARIO) --users $(USERS) --duration $(DURATION) \
		--processes $(PROCESSES) --max-fail-ratio $(MAX_FAIL_RATIO) --max-p95-ms $(MAX_P95_MS) \
		$(if $(filter 1,$(NO_SEED)),--no-seed,) $(if $(TARGET),--host $(TARGET),) $(if $(METRICS),--metrics $(METRICS),)

status: install  ## what is running: the service, the Locust UI and the run, test, bench and chaos stacks
	@$(PY) -m ops status
	@$(PY) -m ops stack status --name all | grep -v '"stack": "run"'

stop: install  ## stop the background service, the Locust UI and the run, test, bench and chaos stacks
	$(PY) -m loadtests.run --stop
	$(PY) -m ops stop
	$(PY) -m ops balancer down
	$(PY) -m ops stack down --name all

reset: install  ## delete the run stack's data (users, tweets, cache) and start empty: asks first
	@$(PY) -m ops reset $(if $(filter 1,$(YES)),--yes,)

clean: install  ## stop everything and delete all the stacks created (.data and their /var/tmp clusters)
	-$(PY) -m loadtests.run --stop
	-$(PY) -m ops stop
	-$(PY) -m ops balancer down
	$(PY) -m ops stack destroy --name all
	rm -rf .data
