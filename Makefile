# advlab: `make book` builds the book, `make test` runs the tests; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= quick
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_static/mathjax/tex-mml-chtml.js

# Data and model cache: ADVLAB_DATA and ADVLAB_CACHE if set, else ../shared/data and .cache.
# Those defaults live in one place, advlab.execution.repository_defaults, used by the CLI and the tests.

.PHONY: env test book references benchmark gpu-prepare gpu-check clean help

help:
	@echo "make test        tests: ruff, pytest + nbval regression of the notebooks (creates .venv if missing)"
	@echo "make book        execute changed chapters (PROFILE=$(PROFILE)) and render _build/html"
	@echo "make references  re-execute the smoke profile into tests/notebooks (nbval references)"
	@echo "make benchmark   attack and adversarial-training overhead against bare passes; one-pixel against"
	@echo "                 torchattacks; fast adversarial training on MNIST within its time budget; the adaptive"
	@echo "                 evaluation against the former cascade, on masked models, and FAB-T after it"
	@echo "make env         create .venv with the pinned packages (make test and make book do it first)"
	@echo "make gpu-prepare fill .gpu/ (data, CIFAR-10 checkpoints) for a lent GPU machine; carry it there"
	@echo "make gpu-check   on a GPU machine: cuda tests, benchmarks on CUDA, throughput table (one log)"
	@echo "make clean       remove _build and executed pages (keeps .venv and the model cache)"

$(VENV)/.installed: requirements.txt requirements-lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -c requirements-lock.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

env: $(VENV)/.installed

# MathJax from the npm registry, served from the book's _static so maths renders offline.
$(MATHJAX):
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz) \
	  && mkdir -p book/_static/mathjax && cp -r $$tmp/package/es5/. book/_static/mathjax/ && rm -rf $$tmp

test: env
	$(BIN)/ruff check .
	$(BIN)/python -m pytest --nbval --nbval-sanitize-with tests/notebooks/sanitize.cfg

book: env $(MATHJAX)
	$(BIN)/advlab book --profile $(PROFILE)

references: env
	$(BIN)/advlab references

benchmark: env
	$(BIN)/pip install -q -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/attack_overhead.py
	$(BIN)/python benchmarks/blackbox_overhead.py
	$(BIN)/python benchmarks/blackbox_overhead.py --model cifar --batch 128
	$(BIN)/python benchmarks/onepixel_speed.py --n 50 --pixels 1 3
	$(BIN)/python benchmarks/training_overhead.py
	$(BIN)/python benchmarks/eot_overhead.py
	$(BIN)/python benchmarks/smoothing_throughput.py
	$(BIN)/python benchmarks/bound_cost.py
	$(BIN)/python benchmarks/alpha_crown_milp.py
	$(BIN)/python benchmarks/bounds_graph.py
	$(BIN)/python benchmarks/sharded_evaluation.py
	$(BIN)/python benchmarks/fast_at_mnist.py
	$(BIN)/python benchmarks/adaptive_overhead.py
	$(BIN)/python benchmarks/masked_models.py
	$(BIN)/python benchmarks/fab_after_cascade.py
	$(BIN)/python benchmarks/early_errors.py

gpu-prepare: env
	bash benchmarks/gpu_prepare.sh

# Runs on the GPU machine with its own python3 (no .venv there); see benchmarks/gpu_check.sh.
gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf _build book/*.ipynb
