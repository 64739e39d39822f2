# Electricity Optimizer: `make demo` and `make test` do their own set-up from a clean clone.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

DEMO_BUDGET ?= smoke
TEST_WORKERS ?= 2

.PHONY: install lint docs docs-serve docs-figures docs-screenshots test demo airflow-init up down services lock bench-storage bench-ingestion bench-training bench-serving bench-drift bench-accuracy bench-retention bench-scale clean help

help:
	@echo "make demo          load the real history, run the four DAGs (airflow dags test, budget DEMO_BUDGET=smoke), summarize"
	@echo "make up            start Airflow (8080, admin password printed), MLflow (5000) and the sandbox (8765)"
	@echo "make up EXECUTOR=celery  the same with a scheduler, dag-processor, API server and two Celery workers"
	@echo "make down          stop exactly what make up started"
	@echo "make airflow-init  bootstrap the Airflow home .eopt/airflow: pools, variables, connections (idempotent)"
	@echo "make lint          the gates CI runs before the tests: ruff check, ruff format --check, mypy, import contracts"
	@echo "make docs          build the documentation site into site/ (mkdocs build --strict: fails on a broken link or a stale reference)"
	@echo "make docs-serve    serve the documentation site on http://127.0.0.1:8000, rebuilt on every change"
	@echo "make docs-figures  remake docs/assets/forecast-vs-realised.png: a 14-day NP walk-forward backtest (smoke budget) on the bundled data"
	@echo "make docs-screenshots remake docs/assets/{airflow-dags,mlflow-models,mlflow-production-version}.png with the headless-Chromium UI test"
	@echo "make test          run the whole test suite, TEST_WORKERS=2 processes (PostgreSQL + Redis on 127.0.0.1)"
	@echo "make install       create .venv and install the locked dependency set"
	@echo "make bench-storage record upsert vs COPY throughput in benchmarks/results/"
	@echo "make bench-training record one tuned retraining per region: time, memory, accuracy"
	@echo "make bench-serving  record mlflow models serve vs in-process latency and one forecast DAG run"
	@echo "make bench-accuracy backtest the four EPF markets against the published LEAR/DNN forecasts (~2.5-3.5 h on 2 cores, host-dependent; ARGS=--quick: NP, 8 weeks)"
	@echo "make bench-drift   record the drift rules' detection of injected changes and false alarms on every real week, and the performance CUSUM's on real champions' errors (~10 min)"
	@echo "make bench-ingestion record one ingestion cycle and a two-year load against the sandbox"
	@echo "make bench-retention record how the embedded home grows per simulated month, before and after maintenance"
	@echo "make bench-scale   record ingestion, forecast, data quality, store size and memory at 4/16/46/200 zones (ARGS=--zones 4,16)"
	@echo "make lock          re-resolve requirements.lock from the pins in pyproject.toml"

install: $(INSTALLED)

$(INSTALLED): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]}"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

airflow-init: install
	$(BIN)/eopt airflow-init

up: install
	$(BIN)/eopt up $(if $(EXECUTOR),--executor $(EXECUTOR))

down:
	@if [ -x $(BIN)/eopt ]; then $(BIN)/eopt down; else echo "nothing to stop (no .venv)"; fi

services:
	@bash scripts/ensure-services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

docs: install
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: install
	$(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000

# The forecast picture of the docs and the README, from the bundled history in its own home (.eopt/docs-figures):
# the production training walked forward over NP's last 14 days, day-ahead forecasts with their 90% interval.
FIGURES_HOME := $(CURDIR)/.eopt/docs-figures
docs-figures: install
	rm -rf $(FIGURES_HOME)
	EOPT_HOME=$(FIGURES_HOME) $(BIN)/eopt db upgrade
	EOPT_HOME=$(FIGURES_HOME) $(BIN)/eopt load-history --region NP --start 2016-06-01
	EOPT_HOME=$(FIGURES_HOME) $(BIN)/eopt backtest --region NP --days 14 --budget smoke
	cp $(FIGURES_HOME)/backtests/NP-*-14d-smoke/forecast_vs_actual.png docs/assets/forecast-vs-realised.png

# The UI pictures of the docs: tests/eopt/test_ui.py retrains NP on the bundled data, promotes it, starts
# `eopt up` and screenshots the Airflow Dags page and the MLflow registry into .eopt/screenshots/.
docs-screenshots: install services
	$(BIN)/python -m pytest -p no:cacheprovider tests/eopt/test_ui.py
	cp .eopt/screenshots/airflow-dags.png .eopt/screenshots/mlflow-models.png .eopt/screenshots/mlflow-production-version.png docs/assets/

# One OpenMP thread (torch, XGBoost, LightGBM) per process: the TEST_WORKERS workers already fill
# the cores, and a fit whose threads wait on each other across cores that other work holds runs
# many times slower (the backtest test's fit: 22 s with one thread, over 600 s with two beside a
# busy core).
test: install services
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

demo: install
	$(BIN)/eopt db upgrade
	$(BIN)/eopt load-history
	$(BIN)/eopt demo --budget $(DEMO_BUDGET)
	$(BIN)/eopt registry status
	@echo "MLflow UI: $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.eopt/mlflow.db  (then http://127.0.0.1:5000)"

bench-storage: install services
	$(BIN)/python -m benchmarks.storage_upsert

bench-ingestion: install
	$(BIN)/python -m benchmarks.ingestion

bench-training: install
	$(BIN)/python -m benchmarks.training

bench-serving: install
	$(BIN)/python -m benchmarks.serving

bench-drift: install
	$(BIN)/python -m benchmarks.drift_power
	$(BIN)/python -m benchmarks.drift_performance

bench-retention: install
	$(BIN)/python -m benchmarks.retention

bench-scale: install
	$(BIN)/python -m benchmarks.scale $(ARGS)

bench-accuracy: install
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.accuracy --jobs 2 --threads 1 --segments 2 $(ARGS)

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade "pip>=24"
	.lock-venv/bin/python -m pip install --quiet -e ".[test,docs]"
	{ echo "# Full resolved dependency set of electricity-optimizer for Python 3.11 (pip freeze)."; \
	  echo "# Regenerate with: make lock   (after changing pins in pyproject.toml)"; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^electricity-optimizer'; } > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .eopt *.egg-info
