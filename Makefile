# Every target sets up its own virtual environment first, so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

SAM_VENV ?= .venv-sam
SAM := $(SAM_VENV)/bin/sam
# Where sam build finds python3.12, the functions' runtime (mlstack.checks.build.runtime_python:
# on PATH, or pyenv's newest 3.12). Expanded when used, after the install.
RUNTIME_PYTHON = $(shell $(BIN)/python -c 'from mlstack.checks.build import runtime_python; print(runtime_python() or "")')
RUNTIME_PYTHON_DIR = $(patsubst %/,%,$(dir $(RUNTIME_PYTHON)))

.PHONY: install demo test lint format fast slow unit integration shape-search build lock bench bench-gate bench-kinds bench-large clean

# Each target installs the extras it needs (pyproject.toml): the demo the local cloud and its
# dataset, everything else the development tools too.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

$(VENV)/.installed-demo: pyproject.toml $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e ".[demo]"
	touch $@

install: $(INSTALLED)

demo: $(VENV)/.installed-demo
	$(BIN)/mlstack demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/core/mlstack_core functions/*/mlstack_* containers/training/mlstack_task mlstack tests examples
	$(BIN)/cfn-lint template.yaml

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The whole suite, fast feedback first: the fast tests, then the slow ones (model fitting,
# ONNX export, the pipeline's handlers end to end, the local cloud). The tiers are pytest markers
# (pyproject.toml); `-m "not slow"` and `-m slow` together select every test.
test: lint
	$(BIN)/pytest -m "not slow" --durations=10
	$(BIN)/pytest -m slow --durations=25

fast: install
	$(BIN)/pytest -m "not slow"

slow: install
	$(BIN)/pytest -m slow

unit: install
	$(BIN)/pytest -m unit

integration: install
	$(BIN)/pytest -m integration

# A longer, random search over generated tables (tests/unit/test_table_shapes.py) than the fixed
# 25 `make test` runs: `make shape-search SHAPE_EXAMPLES=2000` for more.
SHAPE_EXAMPLES ?= 500
shape-search: install
	MLSTACK_SHAPE_EXAMPLES=$(SHAPE_EXAMPLES) $(BIN)/pytest tests/unit/test_table_shapes.py -k space

# The SAM CLI from its hash-locked closure (.github/sam-cli.txt, `make lock`), as CI deploys with it.
$(SAM): .github/sam-cli.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r .github/sam-cli.txt

# sam build for real (Lambda wheels for the runtime), then each function's size with its layers.
build: install $(SAM)
	@test -n "$(RUNTIME_PYTHON)" || { echo "sam build needs python3.12 (the functions' runtime)"; exit 1; }
	PATH="$(RUNTIME_PYTHON_DIR):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM) build
	$(BIN)/python -m mlstack.checks.build .aws-sam/build --runtime-python "$(RUNTIME_PYTHON)" \
		--write docs/sizes.md

# Re-lock the layers' and functions' requirements (requirements.in -> hash-locked requirements.txt)
# after changing a requirements.in; sam build installs only what the locks list.
lock: install
	UV=$(BIN)/uv layers/lock.sh

# Serving benchmarks: figures and plot into docs/performance.md. Cold start and bundle
# size are measured on the `make build` output when it exists. Batch scoring: docs/batch-scoring.md.
# What a datetime or text column costs a served row: docs/performance.md, its own section.
bench: install
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/kinds.py --write docs/performance.md
	$(BIN)/python benchmarks/batch_scoring.py --write docs/batch-scoring.md
	$(BIN)/python benchmarks/capture.py --write docs/capture.md
	$(BIN)/python benchmarks/explanations.py

# The gate's statistics (about two hours on two cores): which measure sees a rare class, the
# error rates on generated tables (docs/gate-error-rates.md), and where cross-validation beats one
# holdout (docs/small-tables.md).
bench-gate: install
	$(BIN)/python benchmarks/evidence_measures.py
	$(BIN)/python benchmarks/gate.py --write docs/gate-error-rates.md
	$(BIN)/python benchmarks/small_tables.py --write docs/small-tables.md

# Tables with timestamps, dates, notes and keys through the whole local loop, against the plain
# scikit-learn script for each (docs/column-kinds.md; about ten minutes).
bench-kinds: install
	$(BIN)/python benchmarks/column_kinds.py --write docs/column-kinds.md

# The large training path (Preprocess and Train as ECS tasks) through the local cloud against the
# plain scikit-learn script, on one generated table of ROWS rows: time, peak memory, per state
# (docs/large-path.md; about ten minutes at a million rows).
ROWS ?= 1000000
bench-large: install
	$(BIN)/python benchmarks/large_path.py --rows $(ROWS) --write docs/large-path.md

clean:
	rm -rf $(VENV) $(SAM_VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
