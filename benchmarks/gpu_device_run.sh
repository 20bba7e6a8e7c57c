#!/usr/bin/env bash
# The whole GPU check as one device run (issue 22). On the development machine first:
#     bash benchmarks/gpu_wheels.sh          # the wheels a bare GPU image lacks, into .whl/
# then run this script on the GPU machine with .whl carried along and a 500 s limit
# (it stops itself at 470 s); results land in $OUT (gpu_check.json, .log, .md).
set -o pipefail
export PYTHONUNBUFFERED=1
OUT="${OUT:-gpu_out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
  || { echo "no wheels: run 'bash benchmarks/gpu_wheels.sh' in the checkout and carry .whl"; exit 3; }
export PYTHONPATH=$PWD:/tmp/site
python3 -c "import torch,numpy,pydantic,pandas,tqdm,pytest;print('torch',torch.__version__,'cuda',torch.version.cuda,'numpy',numpy.__version__,'pydantic',pydantic.__version__,torch.cuda.get_device_name(0))" || exit 4
timeout -k 10 470 python3 benchmarks/gpu_check.py --device cuda --budget 330 --json "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"
rc=$?
python3 benchmarks/gpu_check.py --render "$OUT/gpu_check.json" > "$OUT/gpu_check.md"
exit $rc
