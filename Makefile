# One-command entry points. Each target creates .venv and installs the pinned set when missing.
PY      ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test test-slow lint bench docs clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev,demo]'
	touch $(STAMP)

## Simulated US-1 + controller + TUI on embedded defaults.
demo: $(STAMP)
	$(BIN)/sessionconsole demo

## The test suite (what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow"

## Long real-time scenarios.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

## ruff, mypy --strict and the import contracts.
lint: $(STAMP)
	$(BIN)/ruff check src device_sims tests bench
	$(BIN)/ruff format --check src device_sims tests bench
	$(BIN)/mypy src device_sims
	$(BIN)/lint-imports

## Loop lateness while the TUI runs (60 s).
bench: $(STAMP)
	$(BIN)/python bench/run.py

## Regenerate docs/INTERLOCKS.md from the rule catalogue.
docs: $(STAMP)
	$(BIN)/python -c "from sessionconsole.safety.catalogue_doc import render; open('docs/INTERLOCKS.md', 'w').write(render())"

clean:
	rm -rf $(VENV) build *.egg-info
