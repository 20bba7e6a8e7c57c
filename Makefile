# bioplaus — set up and run. `make demo` and `make test` work on a fresh machine.
#
# torch is installed first: TORCH (a pip requirement) from TORCH_INDEX (empty: pip's usual
# indexes). From PyPI, Linux x86-64 gets the CUDA build of torch (several GB with its nvidia-*
# wheels); macOS, Windows, and a pip configured with a local CPU wheel get the CPU build.
# Choose explicitly (on a fresh clone, or after `make clean`):
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu     # CPU only (~190 MB)
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128   # CUDA 12.8 build
PY          ?= python3
VENV        ?= .venv
BIN          = $(VENV)/bin
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
# pytest-xdist workers for `make test` and `make ci` (auto: one per core; 1: no xdist)
JOBS        ?= auto
STAMP        = $(VENV)/.installed
XDIST        = $(if $(filter 1,$(JOBS)),,-n $(JOBS))

.PHONY: setup demo test ci lint bench docs docs-figures clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, the build you chose (TORCH, TORCH_INDEX above), so the range in
	# pyproject pulls no other one
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# NeuroGym (tested too): its numpy/matplotlib pins are stricter than it needs, so it
	# goes in without them (bioplaus[neurogym] installs it the ordinary way)
	$(BIN)/python -m pip install --quiet --no-deps "neurogym>=2.2"
	$(BIN)/python -m pip install --quiet "gymnasium>=0.29" loguru natsort pydantic-settings tomlkit
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python analysis/demo.py --out demo_out

test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q $(XDIST); rc=$$?; \
	  if [ -n "$(PYTEST_STATUS_FILE)" ]; then echo $$rc > "$(PYTEST_STATUS_FILE)"; fi; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi; exit $$rc

# CI (.ci/run): `make test` with the docs build required (mkdocs build --strict), every
# tutorial at its small size, and pytest's "no tests collected" (exit 5) a failure
ci:
	VENV=$(VENV) JOBS=$(JOBS) .ci/run

lint: $(STAMP)
	$(BIN)/ruff check bioplaus tests analysis benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# redraw the figures the tutorial pages show (docs/tutorials/img/) at full size; the
# tutorials themselves write into runs/tutorials/ unless told --out
docs-figures: $(STAMP)
	for t in docs/tutorials/[a-z]_*.py; do \
	  $(BIN)/python $$t --out docs/tutorials/img --work runs/tutorials || exit 1; \
	done

clean:
	rm -rf $(VENV) demo_out .pytest_cache
