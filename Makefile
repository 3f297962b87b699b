# The two commands of the README: `make demo` and `make test`. Both build the virtual environment first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lock benchmark clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import modelops, prefect, mlflow, evidently, great_expectations" 
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/modelops demo

# Two test processes: most tests wait on servers and subprocesses, so a second process nearly halves the run on two
# cores. Each test file stays on one process (its module-scoped live stack is built once); TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Re-pin requirements.txt from requirements.in (exact versions, no download addresses).
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile requirements.in -o requirements.txt --python-version 3.11 --no-header --no-annotate

benchmark: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf .modelops
