# Two entry points for a new user: `make quickstart` and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -q

.PHONY: env test quickstart quickstart-seg

env:
	bash tools/setup_env.sh

test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

quickstart: env
	PYTHON=$(PY) bash tools/quickstart.sh det

quickstart-seg: env
	PYTHON=$(PY) bash tools/quickstart.sh seg
