# make run: install and serve on 127.0.0.1:8000 (embedded SQLite unless DATABASE_URL is set).
# make test: install with the dev extra and run the whole suite, with a coverage report.
# make drill: the failover drill of deploy/drill.py (root; installs Debian packages if missing).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install install-dev run test drill lint format clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# Coverage (setup.cfg) is reported; its floor holds on PostgreSQL only (SQLite skips paths).
test: install-dev
	$(BIN)/pytest --cov $(if $(TEST_DATABASE_URL),,--cov-fail-under=0)

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
