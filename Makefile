# One entry point for people and CI: `make demo` runs the main job, `make test` the checks.
# Both create .venv and install the project into it when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-pallets demo-toy test lint format bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev,oracle]"
	touch $(STAMP)

install: $(STAMP)

# The main job: the HRTEM segmentation recipe's CPU default (about 20 minutes on 2 cores).
demo: $(STAMP)
	$(BIN)/python recipes/hrtem_seg.py

# The pallet detection recipe's CPU default.
demo-pallets: $(STAMP)
	$(BIN)/python recipes/pallet_det.py

# A quick look at bridged transfer on toy data (about 15 seconds).
demo-toy: $(STAMP)
	$(BIN)/python examples/bridged_transfer_toy.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	WANDB_MODE=offline $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_mixing.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
