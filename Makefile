# Kaizen: the two set-up commands are `make demo` and `make test`; each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export KAIZEN_HOME ?= $(CURDIR)
# The project the demo, data, repro and kaizen-eval targets run: a folder under projects/.
PROJECT ?= credit_risk
export GX_ANALYTICS_ENABLED := false
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install lock demo data repro up down status feature-server serve test test-fast faults lint format bench all services browser clean loadtest kaizen-eval gate-calibration

help: ## list the targets
	@grep -E '^[a-z][a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## build .venv from the lock (does nothing when it is up to date)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q -U pip uv
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install --quiet --compile-bytecode -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

lock: ## re-resolve constraints.txt after changing pyproject.toml
	@test -x $(BIN)/uv || $(MAKE) install
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --no-annotate --no-header -o constraints.txt

services: ## make sure PostgreSQL and Redis answer on loopback (installs them if missing)
	@scripts/ensure-services.sh

browser: ## Debian's chromium for the browser tests (installs it if missing; never a download)
	@scripts/ensure-browser.sh

demo: install ## a project's main job end to end (PROJECT=credit_risk): generate, DataOps DAG, train, promote
	$(BIN)/kaizen -p $(PROJECT) demo

data: install ## the project's lake only (generate + the DataOps DAG): what `make repro` trains on
	$(BIN)/kaizen -p $(PROJECT) demo --no-train

repro: install ## the project's DVC training pipeline, projects/$(PROJECT)/dvc.yaml (training_set -> train -> evaluate -> register)
	$(BIN)/kaizen -p $(PROJECT) dvc-remote
	cd projects/$(PROJECT) && PATH="$(CURDIR)/$(BIN):$$PATH" $(CURDIR)/$(BIN)/dvc repro

up: install ## start Airflow, MLflow, the feature server (PROJECT's repo) and the prediction API (every project) on 127.0.0.1, all behind a login
	$(BIN)/kaizen -p $(PROJECT) up

down: install ## stop everything `make up` started
	$(BIN)/kaizen down

status: install ## each platform component's process and health (exit 0 when all healthy)
	$(BIN)/kaizen -p $(PROJECT) status

feature-server: install ## Feast's feature server alone, in the foreground (bearer token from .env)
	$(BIN)/kaizen -p $(PROJECT) feature-server

serve: install ## the prediction API alone, in the foreground (bearer token from .env; WORKERS=1)
	$(BIN)/kaizen serve --workers $(or $(WORKERS),1)

test: install services browser ## the whole test suite, every tier (CI runs this)
	$(BIN)/pytest -q

test-fast: install ## the unit tier and the projects' fast tests: no services, Spark or Airflow (< 2 min)
	$(BIN)/pytest -q -m "not slow and not spark" tests/unit projects

faults: install ## the fault-injection tests only
	$(BIN)/pytest -q -m faults

lint: install ## ruff, including Airflow's AIR rules
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

kaizen-eval: install ## the KaizenML loop on a simulated half year with a shock, scored against an oracle (< 30 min)
	$(BIN)/kaizen -p $(PROJECT) scoreboard

gate-calibration: install ## plant null, worse and better challengers; how often do the gates promote each? (reports/, dated)
	$(BIN)/python -m kaizen.promotion.calibration --params projects/$(PROJECT)/params.yaml --out reports

bench: install ## every benchmark as a ratio to a raw baseline measured in the same run
	$(BIN)/python -m bench $(if $(BENCH),--rows $(BENCH))

all: install lint test ## install, lint, test

clean: ## remove every project's demo data and dvc.lock, the Airflow home and local Feast/MLflow stores (never the lock or the venv)
	rm -rf projects/*/data projects/*/dvc.lock data/lake data/raw data/feast data/training data/model data/eval data/registered.json data/kaizen-eval .airflow .kaizen/mlflow dvc.lock

loadtest: install ## locust against the running prediction API (make serve); USERS=n DURATION=s override params
	$(BIN)/kaizen -p $(PROJECT) loadtest $(if $(USERS),--users $(USERS)) $(if $(DURATION),--duration $(DURATION))
