# The two commands a fresh machine needs: `make demo` and `make test`.
# Both bootstrap the project's virtual environment on their own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/steelyard demo

test: $(STAMP)
	bash scripts/os-deps.sh
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/compare.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
