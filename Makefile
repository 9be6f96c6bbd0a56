# The entry points of the README: `make demo` (main job), `make test` (full suite) and
# `make test-fast` (the suite without the tests marked slow: real conversions and training runs).
# Each creates its own virtual environment from the pinned constraints on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_out

.PHONY: demo test test-fast lint install clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all]'
	touch $@

install: $(VENV)/.installed

lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: $(VENV)/.installed lint
	$(BIN)/python -m pytest -q --timeout=900

test-fast: $(VENV)/.installed lint
	$(BIN)/python -m pytest -q --timeout=900 -m "not slow"

demo: $(VENV)/.installed
	$(BIN)/vosx demo -o $(DEMO_OUT)

clean:
	rm -rf $(VENV) $(DEMO_OUT)
