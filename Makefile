# One entry point per job. Every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
MPKG   := $(VENV)/bin/mpkg
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

setup: $(STAMP)

# Build the bundled example, verify it, inspect it, serve it and send one inference.
demo: $(STAMP)
	$(PY) examples/demo.py

# Lint gates, system packages for the real-component tests (registry, skopeo, container engine), then the suite.
test: lint
	bash .ci/system-deps.sh
	$(PY) -m pytest -n 2 -p no:cacheprovider

# The gates CI runs before the tests: lint, formatting and strict types.
lint: $(STAMP)
	$(VENV)/bin/ruff check runtime builder tests bench examples
	$(VENV)/bin/ruff format --check runtime builder tests bench examples
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info out
