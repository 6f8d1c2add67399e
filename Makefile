# tether: `make run` serves on the embedded SQLite store; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test install lint typecheck unit web-test asyncapi-deps e2e browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/tether migrate
	$(BIN)/tether serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src

typecheck: install
	$(BIN)/mypy src

web-test:
	@if command -v node >/dev/null 2>&1; then node --test tests/web/; \
	else echo "node not found: skipping the page's state tests"; fi

# Debian's chromium for tests/e2e (installed with apt-get when missing and root; never
# downloaded by Playwright). Without it the browser tests skip, or fail under CI=true.
browser:
	@scripts/ensure-chromium

e2e: install browser
	$(BIN)/pytest tests/e2e

# The official AsyncAPI JSON schemas (npm @asyncapi/specs) for tests/integration/test_asyncapi.py
asyncapi-deps: tests/asyncapi/node_modules/.package-lock.json

tests/asyncapi/node_modules/.package-lock.json: tests/asyncapi/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/asyncapi && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the AsyncAPI schema test will skip (fail under CI=true)"; fi

test: install lint typecheck web-test asyncapi-deps browser
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.noisy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build artifacts tests/asyncapi/node_modules
