"""Peak memory of one training update against the sequence length T: DANP vs BPTT.

    python benchmarks/bench_memory.py --n 256 --batch 64 --steps 200 2000 20000

Each (rule, T) runs in a fresh subprocess; the reported number is the growth of the peak
resident set (ru_maxrss) over the process's size just before the update, so imports and the
inputs themselves ([T, B, n_in], which any method must hold) are not counted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, torch
sys.path.insert(0, {here!r})
torch.set_num_threads(1)
from common import problem, update_fn
spec, p, u, y = problem({n}, {b}, {t})
f = update_fn({rule!r}, spec, p, u, y)
import gc; gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
f()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"peak_growth_mb": (after - before) / 1024, "rss_before_mb": before / 1024}}))
"""


def measure(rule: str, n: int, b: int, t: int) -> dict:
    here = str(Path(__file__).resolve().parent)
    code = CHILD.format(here=here, n=n, b=b, t=t, rule=rule)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, nargs="+", default=[200, 2000, 20000])
    ap.add_argument("--rules", nargs="+", default=["danp", "bptt"])
    args = ap.parse_args()
    rows = []
    for rule in args.rules:
        for t in args.steps:
            m = measure(rule, args.n, args.batch, t)
            rows.append({"rule": rule, "T": t, **m})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"N": args.n, "B": args.batch, "rows": rows}))


if __name__ == "__main__":
    main()
