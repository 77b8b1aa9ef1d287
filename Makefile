# The course's two commands:  `make lab` opens it, `make test` proves it.
# Every target is an alias of `python course.py <target>`, which does the work on any system,
# Windows included (`python course.py --help` lists its verbs). Both create the environment on
# first use (.venv, from requirements/lock.txt) and reuse it after.
#   make lab LAB_ARGS="--no-browser --ip=127.0.0.1 --port=8888"   options for jupyter lab
#   make lesson N=02                      one lesson's notebook, solution and exercise
#   make progress                         your exercises/: passed, failed (and why), not started
#   make grade NB=path/to/notebook.ipynb  a learner's exercise notebook, run and checked
#   make grade NB=submissions/            a room: one folder per learner, sandboxed, into a CSV
#   make learner-copy DEST=../for-learners   the course without solutions/, for a hub or image
#   make env OFFLINE=1                    install from wheelhouse/ (`make wheelhouse`), no network
#   make env TORCH=cpu                    Linux without an NVIDIA GPU: PyTorch's CPU build
#   make env PYTHON=python3.12            the Python (3.11, 3.12 or 3.13) that makes .venv

PYTHON ?= python3
COURSE := $(PYTHON) course.py
OPTS   := $(if $(filter-out 0,$(OFFLINE)),--offline) $(if $(TORCH),--torch $(TORCH)) \
          $(if $(WHEELHOUSE),--wheelhouse $(WHEELHOUSE))

.PHONY: lab test env lesson progress grade learner-copy wheelhouse clean lint test-lib test-browser test-notebooks \
        test-exercises test-other-cpu test-arm-engine

lab:
	@$(COURSE) lab $(OPTS) -- $(LAB_ARGS)

test:
	@$(COURSE) test $(OPTS)

env:
	@$(COURSE) env $(OPTS)

lesson:
	@$(if $(N),,$(error say which lesson: make lesson N=02))$(COURSE) lesson $(N) $(OPTS)

progress:
	@$(COURSE) progress $(OPTS) $(NB)

grade:
	@$(if $(NB),,$(error say which notebook or room folder: make grade NB=path/to/exercise.ipynb \
	  or NB=submissions/))$(COURSE) grade $(OPTS) $(if $(CSV),--csv $(CSV)) $(NB)

learner-copy:
	@$(if $(DEST),,$(error say where: make learner-copy DEST=../course-for-learners)) \
	  $(COURSE) learner-copy $(DEST)

wheelhouse:
	@$(COURSE) wheelhouse $(OPTS)

clean:
	@$(COURSE) clean

# The steps of `make test`, one at a time.
lint:
	@$(COURSE) lint $(OPTS)

test-lib:
	@$(COURSE) test-lib $(OPTS)

test-browser:
	@$(COURSE) test-browser $(OPTS)

test-notebooks:
	@$(COURSE) test-notebooks $(OPTS)

test-exercises:
	@$(COURSE) test-exercises $(OPTS)

test-other-cpu:
	@$(COURSE) test-other-cpu $(OPTS)

test-arm-engine:
	@$(COURSE) test-arm-engine $(OPTS)
