# Every target bootstraps what it needs: the virtualenv, its packages and the embedded stack.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt | cksum | cut -d' ' -f1)

.PHONY: install run migrate test lint stop status clean

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

status: install
	$(PY) -m service stack status

stop: install  ## stop the embedded PostgreSQL and Redis (also the test stack)
	$(PY) -m service stack down
	DATA_DIR=.data/test STACK_PG_PORT=55442 STACK_REDIS_PORT=56389 $(PY) -m service stack down

clean: stop
	rm -rf .data
