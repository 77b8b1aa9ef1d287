# The course's two commands:  `make lab` opens it, `make test` proves it.
# Both create the environment on first use (.venv, from requirements/lock.txt) and reuse it after.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p tests.notebook_timer

.PHONY: lab test test-lib test-notebooks test-exercises lint lesson bench env clean

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/00_start_here.ipynb

test: $(STAMP) lint test-lib test-notebooks test-exercises
	@echo "All course tests passed."

env: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "The course needs Python 3.11; run: make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements/lock.txt -e '.[all]'
	@touch $(STAMP)
	@echo "Environment ready in $(VENV) ($$(du -sh $(VENV) | cut -f1))."

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) tools/make_exercises.py --check

test-lib: $(STAMP)
	$(PY) -m pytest -q tests tutorial_lib --doctest-modules

# Lessons and solutions: strict (every stored output must match); exercises: lax (must run).
test-notebooks: $(STAMP)
	$(PY) -m pytest -q --nbval $(NBVAL) notebooks solutions

test-exercises: $(STAMP)
	$(PY) -m pytest -q --nbval-lax $(NBVAL) exercises

# One lesson:  make lesson N=02
lesson: $(STAMP)
	$(PY) -m pytest -q --nbval $(NBVAL) notebooks/$(N)_*.ipynb solutions/$(N)_*.ipynb
	$(PY) -m pytest -q --nbval-lax $(NBVAL) exercises/$(N)_*.ipynb

clean:
	rm -rf $(VENV)
