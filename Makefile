# Two commands on a fresh machine: `make run` serves, `make test` tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PORT ?= 3000

.PHONY: install test-deps migrate run test lint bench bench-chart bench-deps clean

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

# The suite in TEST_WORKERS processes (pytest-xdist): each starts its own servers (MariaDB,
# SeaweedFS, gunicorn) once, and a module sharing a server of its own runs in one of them.
# Most tests wait on processes and sockets, so a worker more than the cores pays (on 2
# cores, 3 ran the suite in 6:44 where 4 took 6:58).
# TEST_WORKERS=0 runs everything in one process (docs/testing.md: one file, one backend).
TEST_WORKERS ?= 3
# Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE): the
# suite starts some hundred Python processes, and each would compile the package again.
test: install test-deps bench-deps
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

# ruff for style; import-linter for the layers (setup.cfg [importlinter]): http and cli
# import services, services import storage and core, never the other way.
lint: install
	$(BIN)/ruff check uploadsvc tests bench wsgi.py gunicorn.conf.py
	$(BIN)/lint-imports setup.cfg

# Throughput, latency and memory against dd, md5sum, a loopback sink and @tus/server, and on
# an object store against @tus/s3-store and boto3, with the store's requests per chunk
# (docs/performance.md). BENCH_SCALE=small takes a few minutes. The figures go
# to BENCH_JSON, and the chart drawn from them to BENCH_CHART; `make bench-chart` draws it
# again from a saved BENCH_JSON.
BENCH_SCALE ?= full
BENCH_JSON ?= bench/results/latest.json
BENCH_CHART ?= $(BENCH_JSON:.json=.png)
bench: install test-deps bench-deps
	$(BIN)/python -m bench --scale $(BENCH_SCALE) --json $(BENCH_JSON)
	$(BIN)/python -m bench.chart $(BENCH_JSON) $(BENCH_CHART)

bench-chart: bench-deps
	$(BIN)/python -m bench.chart $(BENCH_JSON) $(BENCH_CHART)

# Packages only the bench needs (matplotlib for the chart), into the same .venv.
bench-deps: $(VENV)/.bench-installed

$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info web/node_modules
