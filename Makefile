# lookalike: `make demo` sets up and runs the main job, `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SAMPLES ?= data/samples

.PHONY: setup browser demo serve test fast check lint bench

setup: $(VENV)/.installed

# torch first, pinned: on this kind of machine torch==2.13.0 is a local CPU build,
# while a bare `torch` pulled in by another package would fetch a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[web,elasticsearch,heif,dev]'
	touch $@

# Debian's chromium for the real-browser test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing: sudo apt-get install chromium (the browser test needs it)"; fi; }

demo: setup
	VENV=$(VENV) SAMPLES=$(SAMPLES) bash scripts/demo.sh

serve: setup
	@[ -f data/demo.env ] || { echo "run make demo first (it indexes the samples)"; exit 1; }
	set -a && . ./data/demo.env && set +a && $(VENV)/bin/lookalike serve

test: setup browser
	$(PY) -m pytest

# the everyday lane: no subprocess, kill or browser tests (the full suite runs in CI)
fast: setup
	$(PY) -m pytest -n 2 -m "not slow and not browser"

# lint, format and types (mypy --strict on src/); CI runs it before the tests
check: setup
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy

lint: check

bench: setup
	$(PY) bench/ingest.py
