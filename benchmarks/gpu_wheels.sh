#!/usr/bin/env bash
# Wheels a bare GPU machine without internet needs for benchmarks/gpu_check.py, into .whl/
# (git-ignored) of the checkout this runs in: bioplaus's pure-Python needs that the GPU image
# lacks (pydantic and its dependencies, typing-extensions new enough for them; torch, numpy,
# pandas, tqdm and pytest are there).
# Python 3.12, x86-64 manylinux; versions as in the project's venv. Then, on the machine:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=$PWD:/tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
mkdir -p .whl
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d .whl \
    "pydantic==${PYDANTIC:-2.14.4}" "pydantic-core==${PYDANTIC_CORE:-2.50.5}" \
    "annotated-types==${ANNOTATED_TYPES:-0.8.0}" "typing-inspection==${TYPING_INSPECTION:-0.4.5}" \
    "typing-extensions==${TYPING_EXTENSIONS:-4.16.0}"
ls -1 .whl
du -sh .whl
