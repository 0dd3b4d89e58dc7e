# The two commands a fresh machine needs: `make demo` and `make test`.
# Both bootstrap the project's virtual environment on their own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LINTED := src tests bench scripts examples

.PHONY: demo test lint install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lint]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/steelyard demo

test: $(STAMP)
	bash scripts/os-deps.sh
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy --strict src/steelyard/core src/steelyard/proxy

bench: $(STAMP)
	$(BIN)/python bench/compare.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
