# The two commands: `make run` (local emulator) and `make test` (lint, types, tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench provision clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# exec: the recipe's shell becomes python, so the SIGTERM make passes on to its child reaches the emulator.
run: $(STAMP)
	exec $(PY) -m local

provision: $(STAMP)
	$(PY) -m boothbridge.platform.provision

test: $(STAMP) chromium lint typecheck pytest

# The browser tests drive Debian's Chromium through Playwright (Playwright cannot download its own browser here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium package for the browser tests"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n auto; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: $(STAMP)
	$(PY) -m bench.bridge_tax
	$(PY) -m bench.big_photo
	$(PY) -m bench.image_ops
	$(PY) -m bench.vision_ops
	$(PY) -m bench.cold_import
	$(PY) -m bench.queue_throughput
	$(PY) -m bench.big_waiters

clean:
	rm -rf $(VENV) .data
