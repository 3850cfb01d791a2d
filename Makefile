# Two commands on a fresh machine: `make run` serves, `make test` tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PORT ?= 3000

.PHONY: install test-deps migrate run test lint clean

install: $(VENV)/.installed web/node_modules/.installed

# Editable install: keeps Flask's instance folder at ./instance (see README).
$(VENV)/.installed: requirements.txt setup.cfg setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -e .
	touch $@

# Browser libraries of the upload page at /, from npm into the git-ignored web/node_modules.
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --silent --no-audit --no-fund
	touch $@

migrate: install
	$(BIN)/flask --app uploadsvc db upgrade

run: migrate
	exec $(BIN)/gunicorn -c gunicorn.conf.py

# System packages and npm clients the tests drive (installed only when missing).
test-deps:
	scripts/test-deps.sh

test: install test-deps
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check uploadsvc tests wsgi.py gunicorn.conf.py

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info web/node_modules
