# The two entry points of the README: `make demo` (main job) and `make test` (full suite).
# Each creates its own virtual environment from the pinned constraints on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_out

.PHONY: demo test lint install clean

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

demo: $(VENV)/.installed
	$(BIN)/vosx demo -o $(DEMO_OUT)

clean:
	rm -rf $(VENV) $(DEMO_OUT)
