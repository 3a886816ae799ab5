# Two commands a newcomer needs:  `make demo`  and  `make test`.
# Both create (or refresh) a virtual environment in $(VENV) first.
#
# torch: if the environment already has torch (e.g. a CUDA build you installed yourself), it is kept.
# Otherwise `pip install torch==$(TORCH_VERSION)` is used, which on a CPU-only machine with a local
# wheel takes that wheel.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
DEMO_DIR ?= output/demo

.PHONY: venv test test-fast lint demo demo-mdm bench clean-demo help

help:
	@echo "make demo   - build the synthetic dataset, train both stages, evaluate; evaluate the shipped demo model; GIFs (CPU, minutes)"
	@echo "make demo-mdm - the same for MDM: train (past- and action-conditioned), evaluate, GIFs, an edit (CPU, minutes)"
	@echo "make test   - run the test suite"
	@echo "make lint   - import-layer contracts (lint-imports) and ruff"
	@echo "make bench  - run the benchmark scripts"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null && echo "keeping installed torch $$($(PY) -c 'import torch; print(torch.__version__)')" \
		|| $(PIP) install -q "torch==$(TORCH_VERSION)"
	@# pin the installed torch so no dependency (e.g. a newer torchvision) can pull another torch build
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/torch-constraint.txt
	$(PIP) install -q -e ".[dev]" --constraint $(VENV)/torch-constraint.txt
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check src tests benchmarks scripts *.py

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not e2e" $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m skeleton_diffusion.apps.demo --out $(DEMO_DIR)

demo-mdm: $(STAMP)
	$(PY) -m skeleton_diffusion.apps.demo_mdm

bench: $(STAMP)
	$(PY) benchmarks/bench_autoencoder.py
	$(PY) benchmarks/bench_diffusion.py
	$(PY) benchmarks/bench_inference.py --threads 1 --clock cpu
	$(PY) benchmarks/bench_mdm.py

clean-demo:
	rm -rf $(DEMO_DIR)
