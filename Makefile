# Rota: `make run` serves the API on the embedded database; `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast test-embedded lint fuzz loadtest faults bench bench-import bench-tracks clean help

help:
	@echo "make run        serve the API on http://127.0.0.1:8000 (embedded SecantusDB under var/db)"
	@echo "make test       the whole suite: mongomock, then again against a throwaway SecantusDB"
	@echo "make test-fast  mongomock only (seconds)"
	@echo "make lint       ruff"
	@echo "make fuzz       a longer schemathesis run against the live service"
	@echo "make loadtest   60 s of mixed load on 4 workers, then the invariant checker"
	@echo "make faults     the load test twice: database stopped mid-run, a worker killed"
	@echo "make bench      the performance report (round trips, import ratio, throughput)"

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,embedded]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/rota serve

test: test-fast test-embedded

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not integration"

test-embedded: $(STAMP)
	$(PY) -m pytest -q --backend=embedded --check-shard-key

lint: $(STAMP)
	$(VENV)/bin/ruff check api service documents scripts tests

fuzz: $(STAMP)
	$(PY) -m scripts.fuzz --max-examples 300

loadtest: $(STAMP)
	$(PY) -m scripts.loadtest --seconds 60

faults: $(STAMP)
	$(PY) -m scripts.loadtest --seconds 30 --fault db-stop
	$(PY) -m scripts.loadtest --seconds 30 --fault kill-worker

bench: $(STAMP)
	$(PY) -m scripts.bench

bench-import: $(STAMP)
	$(PY) -m scripts.bench_import

bench-tracks: $(STAMP)
	$(PY) -m scripts.bench_tracks

clean:
	rm -rf $(VENV) var .pytest_cache
