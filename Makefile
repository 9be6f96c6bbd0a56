# The entry points of the README: `make demo` (main job), `make test` (full suite) and
# `make test-fast` (the suite without the tests marked slow: real conversions and training runs).
# Each creates its own virtual environment from the pinned constraints on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_out

.PHONY: demo test test-fast lint install clean web

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all]'
	touch $@

# The browser app (web/, TypeScript + LiteRT.js) built into the package: vosx/web_app/ (needs Node
# 18+ and npm; versions from web/package-lock.json). A wheel built here ships it to users without Node.
WEB_APP := vosx/web_app/app.js
$(WEB_APP): web/package.json web/package-lock.json web/build.mjs web/index.html web/style.css $(wildcard web/src/*.ts)
	cd web && npm ci --no-audit --no-fund && npm run typecheck && npm run build

web: $(WEB_APP)

install: $(VENV)/.installed $(WEB_APP)

lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: $(VENV)/.installed $(WEB_APP) lint
	$(BIN)/python -m pytest -q --timeout=900

test-fast: $(VENV)/.installed $(WEB_APP) lint
	$(BIN)/python -m pytest -q --timeout=900 -m "not slow"

demo: $(VENV)/.installed
	$(BIN)/vosx demo -o $(DEMO_OUT)

clean:
	rm -rf $(VENV) $(DEMO_OUT) vosx/web_app web/node_modules
