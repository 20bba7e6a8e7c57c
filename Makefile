# bioplaus — set up and run. `make demo` and `make test` work on a fresh machine.
PY      ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP    = $(VENV)/.installed

.PHONY: setup demo test lint bench docs clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first: the pinned CPU wheel, so the range in pyproject pulls no multi-GB CUDA build
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python analysis/demo.py --out demo_out

test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bioplaus tests analysis benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

docs: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[docs]" && $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) demo_out .pytest_cache
