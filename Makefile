# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gankit-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml setup.py gankit/_noise/native.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gankit demo

# pip built the C noise extension above: the tests fail if it is missing (see tests/test_noise.py).
# One pytest-xdist worker a core; tests that share a heavy resource name an xdist_group (loadgroup keeps each
# group on one worker).
test: $(STAMP)
	GANKIT_REQUIRE_NATIVE=1 $(BIN)/python -m pytest -q -n auto --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks/ --benchmark-only --benchmark-enable

clean:
	rm -rf $(VENV) runs .pytest_cache
