# make run: the service on SQLite with .env (copied from .env.example if missing)
# make test: the whole test suite on SQLite and, where PostgreSQL is installed, on PostgreSQL
#            (what .ci/run runs, after installing PostgreSQL)
PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python

.PHONY: run test bench clean

run: $(VENV)/installed .env
	$(VENV_PYTHON) sms_responder.py

test: $(VENV)/installed $(VENV)/installed-postgres
	$(VENV_PYTHON) -m pytest

$(VENV)/installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/installed-postgres: requirements-postgres.txt $(VENV)/installed
	$(VENV_PYTHON) -m pip install --quiet -r requirements-postgres.txt
	touch $@

.env:
	cp .env.example .env

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# make bench: the in-process and outbox benchmarks (README, "Performance")
bench: $(VENV)/installed
	$(VENV_PYTHON) bench_sms_responder.py inprocess
	$(VENV_PYTHON) bench_sms_responder.py outbox
