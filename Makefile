# fsd — `make demo` brings up the whole demo, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | md5sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: test lint imports pytest demo bench fuzz clean sysdeps-test sysdeps-demo sysdeps-bench prompts check-conf

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

sysdeps-test:
	@bash scripts/ensure-system-deps test
sysdeps-demo:
	@bash scripts/ensure-system-deps demo
sysdeps-bench:
	@bash scripts/ensure-system-deps bench

lint: $(STAMP)
	$(BIN)/ruff check fsd tests scripts/check-freeswitch-conf

imports: $(STAMP)
	$(BIN)/lint-imports --config setup.cfg

pytest: $(STAMP) sysdeps-test
	$(BIN)/pytest $(PYTEST_ARGS)

test: sysdeps-test $(STAMP)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory imports
	$(MAKE) --no-print-directory pytest

demo: sysdeps-demo $(STAMP)
	$(BIN)/python -m fsd.demo

bench: sysdeps-bench $(STAMP)
	$(BIN)/python -m fsd.bench

fuzz: $(STAMP)
	FSD_FUZZ_EXAMPLES=20000 $(BIN)/pytest tests -k fuzz -p no:timeout

prompts:
	@bash scripts/ensure-system-deps prompts
	scripts/make-prompts

check-conf: $(STAMP)
	$(BIN)/python scripts/check-freeswitch-conf

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
