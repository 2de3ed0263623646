# Every target creates the project's virtualenv (.venv) when it is missing.
# Data: MNIST_PAIRS_DATA (a folder holding MNIST/raw/) or the default ./data, where torchvision
# downloads it when there is internet. A sibling ../shared/data is used when present.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=
# pytest-xdist processes for make test (0: all in pytest's own process)
TEST_WORKERS ?= 2
OUT ?= outputs

ifeq ($(origin MNIST_PAIRS_DATA),undefined)
  ifneq ($(wildcard ../shared/data/MNIST/raw),)
    export MNIST_PAIRS_DATA := $(abspath ../shared/data)
  endif
endif

.PHONY: venv lint train test test-slow test-slurm smoke benchmark tune tune-augmented beyond bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

train: venv  ## one run: make train ARGS="model=cnn4_bn activation=tanh seed=3"
	$(PY) -m mnist_pairs.train $(ARGS)

lint: venv  ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv  ## fast tests (synthetic data; no MNIST needed)
	$(PY) -m pytest -m "not slow and not slurm" -q -n $(TEST_WORKERS) $(ARGS)

test-slow: venv  ## real MNIST and longer runs (skip when MNIST is not found)
	$(PY) -m pytest -m "slow and not slurm" -q $(ARGS)

test-slurm: venv  ## launcher=slurm on a real one-node SLURM cluster (root: installs and starts it, then stops it)
	scripts/slurm_cluster.sh start
	$(PY) -m pytest -m slurm -q $(ARGS); status=$$?; scripts/slurm_cluster.sh stop; exit $$status

clean:
	rm -rf outputs multirun .pytest_cache

# Experiments: one Hydra multirun (resumable: finished runs are skipped), then the aggregation.
smoke: venv  ## the benchmark grid, small: 58 runs, about a minute
	$(PY) -m mnist_pairs.train -m experiment=smoke output_root=$(OUT) $(ARGS)
	$(PY) -m mnist_pairs.aggregate $(OUT)/smoke

benchmark: venv  ## the report's grid: 410 runs, 50 epochs
	$(PY) -m mnist_pairs.train -m experiment=benchmark output_root=$(OUT) $(ARGS)
	$(PY) -m mnist_pairs.aggregate $(OUT)/benchmark

MODEL ?= siamese_lenet_mlp
AUGMENT ?= none
tune: venv  ## tune MODEL with AUGMENT on validation pairs (Optuna), then write conf/tuned/<MODEL>-<AUGMENT>.yaml
	$(PY) -m mnist_pairs.train -m experiment=tune model=$(MODEL) augment=$(AUGMENT) output_root=$(OUT) $(ARGS)
	$(PY) -m mnist_pairs.tune $(OUT)/tune/$(MODEL)-$(AUGMENT)

tune-augmented: venv  ## tune MODEL with affine_swap and its rotation/translation ranges, then conf/tuned/<MODEL>-augment_search.yaml
	$(PY) -m mnist_pairs.train -m experiment=tune_augmented model=$(MODEL) output_root=$(OUT) $(ARGS)
	$(PY) -m mnist_pairs.tune $(OUT)/tune/$(MODEL)-augment_search

beyond: venv  ## the tuned models of conf/tuned over 10 seeds, then aggregation
	$(PY) -m mnist_pairs.train -m experiment=beyond output_root=$(OUT) $(ARGS)
	$(PY) -m mnist_pairs.aggregate $(OUT)/beyond

bench: venv  ## speed benchmark: s/run, FLOP, GFLOP/s vs matmul, grid time, pair scaling
	$(PY) scripts/bench.py $(ARGS)
