# One entry point per job. Every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
MPKG   := $(VENV)/bin/mpkg
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench fuzz clean

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

# Coverage-guided fuzzing (atheris) of every target in tests/fuzz/targets.py, FUZZ_SECONDS each;
# exits 1 on a new crash, left in tests/fuzz/crashes/ (see tests/fuzz/run.py).
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(PY) -m pip install --quiet -e '.[fuzz]' || echo "atheris did not install: random runs instead"
	$(PY) tests/fuzz/run.py --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) build *.egg-info out
