# ganctl developer tasks. `make` alone lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install train test test-fast parity bench killtest lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install ganctl (editable) with the dev tools

train: $(STAMP)  ## train on the default config (MNIST, DCGAN, non-saturating loss)
	$(VENV)/bin/ganctl train

# worksteal: an idle worker takes queued tests from a busy one, so a few minute-long end-to-end
# tests queued late on one worker do not leave the other idle at the end. --durations: the
# slowest tests, printed in every CI log, so the ~10-minute budget shows where it goes.
test: $(STAMP) lint  ## ruff, then the whole test suite (what CI runs)
	$(PY) -m pytest -q -n auto --dist worksteal --durations=15

test-fast: $(STAMP)  ## the suite without the slow end-to-end tests
	$(PY) -m pytest -q -n auto --dist worksteal -m "not slow"

parity: $(STAMP)  ## metrics vs prdc, pytorch-fid, clean-fid, torch-fidelity (their numpy code; no torch)
	$(PY) -m pip install -q --no-deps -r tests/parity-requirements.txt
	$(PY) -m pytest -q -p no:xdist -rs tests/test_parity.py

bench: $(STAMP)  ## speed and memory figures as JSON lines (ratios measured side by side)
	$(PY) -m ganctl.bench

killtest: $(STAMP)  ## SIGKILL a real training run 24 times and resume each time; prints figures
	$(PY) -m tests.test_reliability --kills 24

lint: $(STAMP)  ## ruff
	$(PY) -m ruff check ganctl tests

clean:  ## remove build and test leftovers (never outputs/)
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
