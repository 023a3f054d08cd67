# make run: the service on SQLite with .env (copied from .env.example if missing)
# make test: the whole test suite on SQLite and, where PostgreSQL is installed, on PostgreSQL
#            (what .ci/run runs, after installing PostgreSQL)
PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python

.PHONY: run test bench clean

run: $(VENV)/installed .env
	$(VENV_PYTHON) sms_responder.py

test: $(VENV)/installed $(VENV)/installed-postgres $(VENV)/wheelhouse
	$(VENV_PYTHON) -m pytest

$(VENV)/installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/installed-postgres: requirements-postgres.txt $(VENV)/installed
	$(VENV_PYTHON) -m pip install --quiet -r requirements-postgres.txt
	touch $@

# What `pip install .` needs, fetched once, so that the packaging test installs offline.
$(VENV)/wheelhouse: pyproject.toml requirements.txt requirements-postgres.txt $(VENV)/installed
	$(VENV_PYTHON) -m pip wheel --quiet --wheel-dir $@ setuptools "plivo==4.63.0" "tzdata==2026.6" \
		"Jinja2==3.1.6" "argon2-cffi==25.1.0" "prometheus-client==0.26.0" -r requirements-postgres.txt
	touch $@

.env:
	cp .env.example .env

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# make bench: the README's "Performance" figures: in-process cost, the outbox worker, rules, the operating
# commands, every host, then each cost goal with its figure (growth, PostgreSQL, the peers beside us)
bench: $(VENV)/installed $(VENV)/installed-postgres $(VENV)/installed-bench
	@command -v wrk >/dev/null || echo "wrk is not installed (apt-get install wrk): using the slower Python client"
	$(VENV_PYTHON) bench_sms_responder.py inprocess
	$(VENV_PYTHON) bench_sms_responder.py outbox
	$(VENV_PYTHON) bench_sms_responder.py rules
	$(VENV_PYTHON) bench_sms_responder.py operations
	$(VENV_PYTHON) bench_sms_responder.py inbox
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV_PYTHON) bench_sms_responder.py matrix
	@[ -x ../shared/peers/.venv/bin/python ] || echo "no ../shared/peers set up: goal 1 is not measured (../shared/peers/setup.sh)"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV_PYTHON) bench_sms_responder.py goals

$(VENV)/installed-bench: requirements-bench.txt $(VENV)/installed
	$(VENV_PYTHON) -m pip install --quiet -r requirements-bench.txt
	touch $@
