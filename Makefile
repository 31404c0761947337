# The two set-up commands of the README: `make run` and `make test`. Both create the virtualenv
# (.venv) and install the package with its dev extras on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The one dataset setting of run, test, notebook and benchmark (see datasets/README.md)
FLIGHT_DELAY_DATASET ?= $(firstword $(wildcard datasets/dataset_SCL.csv ../shared/datasets/dataset_SCL.csv))
export FLIGHT_DELAY_DATASET

.PHONY: install test test-fast lint format run benchmark notebook clean dataset-present

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# pytest exits 5 when it collects no test; make treats that as a failure, as it must. The tests
# run on TEST_WORKERS processes (pytest-xdist), heaviest modules first (tests/conftest.py); the
# slowest are listed at the end.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=15

# the inner loop: every test not marked slow or realdata (no make run stacks, no kill tests,
# no browser, no real file)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder -m "not slow and not realdata" --durations=10

# the hooks of .pre-commit-config.yaml on every file: ruff, mypy, hadolint, actionlint, the
# Compose and workflow schemas, file hygiene
lint: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pre-commit run --all-files --show-diff-on-failure

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The whole stack on 127.0.0.1:$${PORT:-8000}: embedded Redis (unless FLIGHT_DELAY_REDIS_URL is
# set), one Celery worker, gunicorn; trains and deploys a default model when none is deployed.
# exec: Python is make's own child, so it learns when make is killed (see flight_delay/supervisor.py)
run: $(STAMP)
	exec $(BIN)/python -m flight_delay.devstack

benchmark: $(STAMP) dataset-present
	$(BIN)/python benchmarks/model_quality.py --data "$(FLIGHT_DELAY_DATASET)"

notebook: $(STAMP) dataset-present
	FLIGHT_DELAY_DATASET="$(abspath $(FLIGHT_DELAY_DATASET))" $(BIN)/python notebooks/execute.py notebooks/eda.ipynb

# one clear line instead of a traceback when the real data is missing
dataset-present:
	@test -f "$(FLIGHT_DELAY_DATASET)" || { echo "the real SCL dataset is needed: put it at datasets/dataset_SCL.csv or set FLIGHT_DELAY_DATASET=/path/to/dataset_SCL.csv (see datasets/README.md)" >&2; exit 2; }

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
