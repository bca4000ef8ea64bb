# The two commands of the README. Everything else is detail.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format bench drills

# pip's chatter goes to a log, shown only when the install fails.
$(VENV)/.installed: pyproject.toml
	@echo "hub: installing into $(VENV) (first run: a few minutes)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@$(PY) -m pip install -e '.[dev,embedded]' >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@touch $@

run: $(VENV)/.installed
	$(PY) -m hub.launcher run

test: $(VENV)/.installed
	$(PY) -m hub.launcher test -- $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The production-like stack under load (docs/performance.md). QUICK=1: every scenario shortened,
# under three minutes; SCENARIOS="ingest api" picks some. Results in bench/results/.
bench: $(VENV)/.installed
	$(PY) -m bench $(if $(QUICK),--quick) $(SCENARIOS)

# The fault drills at full length (docs/reliability.md); the suite runs them shortened.
drills: $(VENV)/.installed
	HUB_DRILLS_LONG=1 $(PY) -m hub.launcher test -- tests/drills -p no:cacheprovider
