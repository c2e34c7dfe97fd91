# The two commands a newcomer needs are `make demo` and `make test`; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv browser demo demo-active-learning test acceptance lint airflow emulator stack stack-down lock clean

help:
	@echo "make demo     run labeling_experiment_birds end to end on the local AWS stand-in"
	@echo "make demo-active-learning  run active_learning_news (the second seed's loop) end to end on the stand-in"
	@echo "make test     run the whole test suite"
	@echo "make lint     ruff"
	@echo "make airflow  Airflow UI (standalone) against a running emulator (EMULATOR_URL=...)"
	@echo "make emulator start the emulator in the foreground (PORT=4566)"
	@echo "make stack    the compose topology as local processes (Postgres, Redis, Celery, emulator) under .stack/"
	@echo "make stack-down  stop what \`make stack\` started (data and logs stay in .stack/)"
	@echo "make lock     regenerate requirements.txt from requirements.in"

# Install only when requirements.txt changed since the last install (the stamp carries its hash).
$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-input -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

# Headless Chromium renders the report in the screenshot test: Debian's package, installed once when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$${GT_CHROMIUM:-}" ] || { \
	  echo "installing Debian's chromium (for the report screenshot test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	  || { echo "could not install chromium: apt-get install chromium, or set GT_CHROMIUM=/path/to/chrome" >&2; exit 1; }; }

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

demo-active-learning: $(STAMP)
	$(BIN)/python scripts/demo_active_learning.py

# The seed experiment test replays fixed random streams (tests/emulator/seed.py). On x86-64 the numerics take the
# paths its figures were measured on (AVX2; OpenBLAS's Haswell kernels), so a host with AVX-512 computes the same
# floats instead of drawing another experiment.
ifeq ($(shell uname -m),x86_64)
NUMERICS := OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
endif

# Two pytest-xdist workers, one test file each at a time, the long files first (tests/conftest.py's LONG_FILES):
# most of the suite waits on jobs, schedulers and a browser, so two files share the 2 cores well. TEST_WORKERS=0
# runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP) browser
	$(NUMERICS) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The seed's three-job experiment against the emulator alone, with its figures printed (also part of `make test`).
acceptance: $(STAMP)
	$(NUMERICS) $(BIN)/python -m pytest tests/emulator/test_seed_experiment.py -p no:randomly -s

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

airflow: $(STAMP)
	$(BIN)/python scripts/airflow_ui.py

emulator: $(STAMP)
	$(BIN)/python -m emulator serve --host 127.0.0.1 --port $${PORT:-4566}

# docker-compose.yaml's topology without a container engine: scripts/stack.py (GT_STACK_DIR, GT_STACK_IMAGES).
stack: $(STAMP)
	$(BIN)/python scripts/stack.py up

# Only the standard library: works without the venv too.
stack-down:
	$(PYTHON) scripts/stack.py down

lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv==0.13.8
	$(BIN)/uv pip compile requirements.in -o requirements.txt --python-version 3.11 --quiet \
	  --custom-compile-command "make lock"

clean:
	rm -rf $(VENV) .airflow reports .pytest_cache .ruff_cache
