# The two commands a fresh machine needs: `make demo` and `make test`.
# Both bootstrap the project's virtual environment on their own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev
LINTED := src tests bench scripts examples

.PHONY: demo test lint install bench clean

# What serving and the demo need (the core install, no extras).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(STAMP)

# Everything: the extras (redis, plots), what the tests and the linters use.
$(DEV): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[all,test,lint]'
	touch $(DEV)

install: $(DEV)

demo: $(STAMP)
	$(BIN)/steelyard demo

test: $(DEV)
	bash scripts/os-deps.sh
	$(BIN)/python -m pytest -q

lint: $(DEV)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy --strict src/steelyard/core src/steelyard/proxy

bench: $(DEV)
	$(BIN)/python bench/compare.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
