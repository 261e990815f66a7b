# Every target bootstraps .venv on first use, so a fresh clone needs nothing installed by hand.
# TARGET=local (default) runs against the local SageMaker; TARGET=sagemaker against AWS.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# zizmor and checkov: a virtualenv of their own (checkov's pins clash with the project's).
LINT_VENV := .venv-lint
LINT_REQUIREMENTS := infra/lint-requirements.txt
LINT_STAMP := $(LINT_VENV)/.installed
# The local Lambda runs the deploy function on its declared runtime's Python, holding only boto3.
LAMBDA_RUNTIME := python3.12
LAMBDA_REQUIREMENTS := pipelines/local/lambdas/python-runtime-requirements.txt
LAMBDA_STAMP := .venv-lambda/$(LAMBDA_RUNTIME)/.installed
READY := $(STAMP) $(LAMBDA_STAMP)
TARGET ?= local
CLI := $(PY) -m pipelines --target $(TARGET)
TEXT ?= great value, works perfectly
INFRA_ARGS ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install install-lint test test-fast lint bench definition graph upload-data upsert-pipeline run-pipeline \
        status executions invoke models endpoints monitor monitor-show monitor-history demo-drift monitor-setup local-up \
        local-down clean infra-validate infra-deploy infra-destroy

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip >/dev/null
	@echo "installing the project and its tools into $(VENV) (first run takes a few minutes)" >&2
	@$(PY) -m pip install --quiet -e '.[dev]' >&2
	@touch $(STAMP)

$(LAMBDA_STAMP): $(LAMBDA_REQUIREMENTS) | $(STAMP)
	@echo "building the local Lambda's $(LAMBDA_RUNTIME) runtime in .venv-lambda" >&2
	@$(PY) -m pipelines.local.lambdas.python_runtimes $(LAMBDA_RUNTIME)
	@touch $(LAMBDA_STAMP)

install: $(READY) ## create .venv with pinned dependencies, and the local Lambda's runtime

$(LINT_STAMP): $(LINT_REQUIREMENTS)
	@test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv $(LINT_VENV)
	@$(LINT_VENV)/bin/python -m pip install --quiet --upgrade pip >/dev/null
	@echo "installing zizmor and checkov into $(LINT_VENV)" >&2
	@$(LINT_VENV)/bin/python -m pip install --quiet -r $(LINT_REQUIREMENTS) >&2
	@touch $(LINT_STAMP)

install-lint: $(LINT_STAMP) ## create .venv-lint with the pinned security linters (zizmor, checkov)

test: $(READY) ## run every test, in random order (PYTEST_ARGS=--randomly-seed=N replays an order)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(READY) ## the tests that need no local SageMaker server
	$(PY) -m pytest -m "not e2e"

# Offline: zizmor asks GitHub nothing, checkov downloads no policies and sends nothing.
lint: $(READY) $(LINT_STAMP) infra-validate ## ruff, mypy, import layers, dead code, cfn-lint, action pins, zizmor, checkov
	$(PY) -m ruff check pipelines steps tests infra benchmarks
	$(PY) -m mypy pipelines steps infra benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m vulture
	$(PY) infra/check_action_pins.py .github
	$(LINT_VENV)/bin/zizmor --offline --persona=pedantic --no-progress .github/workflows
	$(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		--directory infra

definition: $(READY) ## print the pipeline definition JSON (make -s definition: only the JSON)
	@$(CLI) definition

bench: $(READY) ## run the benchmarks (BENCH_ARGS=--quick: ~5 min); see docs/benchmarks.md
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

graph: $(READY) ## draw the pipeline (coloured by the latest run) to out/pipeline.svg
	$(CLI) graph --execution latest

upload-data: $(READY) ## upload data/train.csv and data/test.csv (versioned)
	$(CLI) data upload data

upsert-pipeline: $(READY) ## upload code, create or update the pipeline
	$(CLI) upsert

run-pipeline: $(READY) ## upload data, upsert, run and follow an execution (one process)
	$(CLI) run

status: $(READY) ## the latest execution's step table
	$(CLI) status

executions: $(READY) ## list executions
	$(CLI) executions

invoke: $(READY) ## send TEXT="..." to the endpoint
	$(CLI) invoke "$(TEXT)"

models: $(READY) ## list model versions
	$(CLI) models list

endpoints: $(READY) ## list endpoints
	$(CLI) endpoints

monitor: $(READY) ## drift check of the endpoint's captured traffic; exits 1 on drift
	$(CLI) monitor run

demo-drift: $(READY) ## send familiar then shifted traffic and show drift being caught
	PIPELINE_TARGET=$(TARGET) $(PY) -m pipelines.demo_drift

monitor-show: $(READY) ## the latest monitoring run's findings (a scheduled one's too) and its report
	$(CLI) monitor show

monitor-history: $(READY) ## the latest monitoring runs' drift as a table and a picture (out/monitoring/history.svg)
	$(CLI) monitor history

monitor-setup: $(READY) ## hourly drift check on a schedule (on AWS also drift alarms and an SNS topic)
	$(CLI) monitor setup

infra-validate: $(READY) ## cfn-lint the CloudFormation templates in infra/
	$(PY) infra/deploy.py validate

infra-deploy: $(READY) ## create or update the AWS stack: INFRA_ARGS="--parameter GitHubRepository=owner/repo"
	$(PY) infra/deploy.py deploy $(INFRA_ARGS)

infra-destroy: $(READY) ## delete the endpoint, empty the bucket, delete the AWS stack
	$(PY) infra/deploy.py destroy

local-up: $(READY) ## start the local SageMaker server
	$(CLI) local up

local-down: $(READY) ## stop the local SageMaker server (state is kept)
	$(CLI) local down

clean: ## stop the local server and delete local state and caches
	-@test -x $(PY) && $(PY) -m pipelines local down
	test ! -d .local-sagemaker || chmod -R u+w .local-sagemaker  # Lambda code folders are read-only
	rm -rf .local-sagemaker .mypy_cache .ruff_cache
