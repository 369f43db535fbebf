# Two entry points for a new user: `make quickstart` and `make test`. Both set up .venv first.
# `make test-slow` runs the tests of minutes each (marked `slow`: Params/MACs of the paper's models,
# FP16 training numerics at the paper's sizes) that `make test` leaves out.
# `make test-gpu` runs the GPU check suite (tests marked `gpu`) where torch sees a GPU.
# `make test-oldest` runs the suite on the oldest supported stack (torch 2.1.2) in .venv-oldest.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -q
OLDEST_VENV ?= .venv-oldest
OLDEST_TORCH ?= 2.1.2
# The CPU suites run in two pytest-xdist workers, each file's tests in one of them, one thread
# each: the tools' start-ups (imports, single-threaded) overlap, and no OpenMP threads beyond the
# cores spin against each other (docs/testing.md: 19 min serially, 11 with two workers).
TEST_WORKERS ?= 2
PARALLEL := OMP_NUM_THREADS=1
XDIST := -n $(TEST_WORKERS) --dist loadfile

.PHONY: env lint test test-slow test-gpu test-oldest quickstart quickstart-seg costs

# `make costs`: the recipes beyond Tables 2 and 3 beside ConvNeXt and Swin (the configs listed in
# mambaout_mm/data/published_costs.json, "cost_table"), counted in one run (docs/results.md).

env:
	VENV=$(VENV) bash tools/setup_env.sh

# The linter first (seconds; its rules are in pyproject.toml), then the suite.
test: env lint
	$(PARALLEL) $(PY) -m pytest tests -m "not slow and not gpu" $(XDIST) $(PYTEST_ARGS)

lint: env
	$(PY) -m ruff check .

test-slow: env
	$(PY) -m pytest tests -m "slow and not gpu" $(PYTEST_ARGS)

# Needs mmcv with CUDA ops (tools/setup_env.sh builds them where torch sees a GPU).
test-gpu: env
	$(PY) -m pytest tests -m gpu $(PYTEST_ARGS)

# Deselected there: `slow` (Params/MACs, unchanged by the stack), `safe_globals` (torch >= 2.4),
# `cpu_grad_scaler` (torch >= 2.3).
test-oldest:
	VENV=$(OLDEST_VENV) TORCH=$(OLDEST_TORCH) bash tools/setup_env.sh
	$(PARALLEL) $(OLDEST_VENV)/bin/python -m pytest tests -m "not slow and not safe_globals and not cpu_grad_scaler and not gpu" $(XDIST) $(PYTEST_ARGS)

quickstart: env
	PYTHON=$(PY) bash tools/quickstart.sh detection

quickstart-seg: env
	PYTHON=$(PY) bash tools/quickstart.sh segmentation

costs: env
	mkdir -p work_dirs
	$(PY) tools/get_flops.py --cost-table --json work_dirs/costs.json
