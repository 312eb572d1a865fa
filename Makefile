# Every target sets up its own virtual environment first, so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo test lint format unit integration clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED)

demo: install
	$(BIN)/mlstack demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/core mlstack tests
	@# each function has its own app.py, so each directory is checked on its own
	for function in functions/*/; do $(BIN)/mypy "$$function" || exit 1; done
	$(BIN)/cfn-lint template.yaml

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest -m unit

integration: install
	$(BIN)/pytest -m integration

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
