# Linli: every-day commands. `make run` serves the demo, `make test` runs the tests.
# Both create .venv with a Python >= 3.12 found on this machine and install from pyproject.toml.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

# First interpreter that is Python >= 3.12 with venv support: $LINLI_PYTHON if set, versioned
# names on PATH, pyenv installs, then plain python3.
FIND_PYTHON = for p in "$$LINLI_PYTHON" python3.14 python3.13 python3.12 \
	$$(ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV) \
	python3; do \
	[ -n "$$p" ] || continue; \
	if command -v "$$p" >/dev/null 2>&1 && \
	   "$$p" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; \
	then command -v "$$p"; exit 0; fi; \
	done; exit 1

.PHONY: help install e2e-deps run test lint format check messages worker beat bench clean

help:
	@echo "make run       set up, migrate, seed the demo and serve it at http://127.0.0.1:8000"
	@echo "make test      run the test suite (SQLite + eager Celery unless DATABASE_URL / CELERY_BROKER_URL are set)"
	@echo "               with the browser tests in /usr/bin/chromium (skipped without it)"
	@echo "make lint      ruff check and format check"
	@echo "make check     migrations up to date, and check --deploy with production settings"
	@echo "make messages  refresh and compile the zh-hans translation catalogue"
	@echo "make worker / make beat   a Celery worker / beat against CELERY_BROKER_URL"
	@echo "make bench     the benchmark suite on PostgreSQL + Redis (docs/performance.md)"

$(PY):
	@python_bin="$$($(FIND_PYTHON))" || { \
	  echo "Linli needs Python 3.12 or newer (Django 6.1), with venv and ensurepip."; \
	  echo "Install one, e.g. 'apt-get install python3.13 python3.13-venv', or 'pyenv install 3.13',"; \
	  echo "or point LINLI_PYTHON at an interpreter: make LINLI_PYTHON=/path/to/python3.13 ..."; \
	  exit 1; }; \
	echo "Creating $(VENV) with $$python_bin"; \
	"$$python_bin" -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The embedded default: SQLite under var/, tasks run in-process, DEBUG on, nothing else needed.
run: install
	DEBUG=true $(PY) manage.py migrate --noinput
	DEBUG=true $(PY) manage.py seed_demo
	DEBUG=true $(PY) manage.py runserver 127.0.0.1:8000

# The browser tests' JavaScript (axe-core), pinned by tests/e2e/package-lock.json. Installed
# again only when the lock file changes. Without npm this fails only where the browser tests
# would run (Chromium installed); elsewhere they are skipped anyway.
E2E_MODULES := tests/e2e/node_modules/.package-lock.json

$(E2E_MODULES): tests/e2e/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd tests/e2e && npm ci --no-audit --no-fund; \
	elif [ -x /usr/bin/chromium ]; then \
	  echo "The browser tests need npm for axe-core: apt-get install nodejs npm"; exit 1; \
	else echo "npm and Chromium not found: the browser tests will be skipped"; exit 0; fi

e2e-deps: $(E2E_MODULES)

test: install e2e-deps
	$(PY) -m pytest $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Production-like variables: check --deploy must report nothing at all.
check: install
	DEBUG=true DATABASE_URL=sqlite:///:memory: $(PY) manage.py makemigrations --check --dry-run
	DEBUG=false SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
	ALLOWED_HOSTS=linli.example.org DATABASE_URL=sqlite:///:memory: \
	CELERY_BROKER_URL=redis://127.0.0.1:6379/0 CACHE_URL=rediscache://127.0.0.1:6379/1 \
	EMAIL_URL=smtp+tls://linli:secret@smtp.example.org:587 SANDBOX_GATEWAY_SECRET=check-only \
	$(PY) manage.py check --deploy --fail-level WARNING

messages: install
	DEBUG=true $(PY) manage.py makemessages -l zh_Hans --no-obsolete --ignore='$(VENV)' --ignore=staticfiles --ignore=node_modules
	DEBUG=true $(PY) manage.py compilemessages --ignore='$(VENV)'

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=INFO --schedule var/celerybeat-schedule

# The benchmark suite (docs/performance.md): a throw-away database on the PostgreSQL server that
# DATABASE_URL names, a Redis broker (CELERY_BROKER_URL), gunicorn and a Celery worker it starts
# itself. Writes docs/performance.md and bench/results.json. BENCH_ARGS, e.g.
# BENCH_ARGS="--only bill_run --households 1000000". Its tiny-scale runs are in `make test`.
BENCH_ARGS ?=
bench: install
	@test -n "$$DATABASE_URL" || { echo "make bench needs DATABASE_URL=postgres://..."; exit 1; }
	$(PY) -m bench.run --households 100000 --communities 200 $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache *.egg-info
