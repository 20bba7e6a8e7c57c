"""Peak memory of one training update against the sequence length T: DANP vs BPTT.

    python benchmarks/bench_memory.py --n 256 --batch 64 --steps 200 2000 20000
    python benchmarks/bench_memory.py --n 128 --batch 32 --steps 200 20000 --warmup 10 \
        --rules e-prop e-prop:feedback=random rflo          (the online rules' rows)

Each (rule, T) runs in a fresh subprocess; the reported number is the growth of the peak
resident set during the update over the process's resident size just before it (on Linux the
high-water mark VmHWM is reset first, so set-up peaks are not counted; elsewhere ru_maxrss),
so imports and the inputs themselves ([T, B, n_in], which any method must hold) are not
counted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, torch
sys.path.insert(0, {here!r})
torch.set_num_threads(1)
from common import problem, update_fn
if {warmup}:  # one update of a {warmup}-step problem first: lazy set-up is not counted
    update_fn({rule!r}, *problem({n}, {b}, {warmup}))()
spec, p, u, y = problem({n}, {b}, {t})
f = update_fn({rule!r}, spec, p, u, y)
def status_kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
import gc; gc.collect()
try:  # Linux: reset the high-water mark so set-up peaks (init_params) are not counted
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before, hwm = status_kb("VmRSS"), True
except OSError:
    before, hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, False
t0 = time.perf_counter()
f()
first = time.perf_counter() - t0
after = status_kb("VmHWM") if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range({repeats}):
    t0 = time.perf_counter()
    f()
    times.append(time.perf_counter() - t0)
sec = sorted(times)[len(times) // 2] if times else first
print(json.dumps({{"peak_growth_mb": (after - before) / 1024, "rss_before_mb": before / 1024,
                  "seconds": sec, "seconds_first_call": first}}))
"""


def measure(rule: str, n: int, b: int, t: int, repeats: int = 0, warmup: int = 0) -> dict:
    """Peak-RSS growth of the first update in a fresh process (after one update of a
    ``warmup``-step problem when ``warmup`` > 0); ``seconds``: the median of ``repeats``
    further updates (the first update's time when ``repeats`` is 0)."""
    here = str(Path(__file__).resolve().parent)
    code = CHILD.format(here=here, n=n, b=b, t=t, rule=rule, repeats=repeats, warmup=warmup)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, nargs="+", default=[200, 2000, 20000])
    ap.add_argument("--rules", nargs="+", default=["danp", "bptt"])
    ap.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="steps of a first, unmeasured update (0: none, as before)",
    )
    args = ap.parse_args()
    rows = []
    for rule in args.rules:
        for t in args.steps:
            m = measure(rule, args.n, args.batch, t, warmup=args.warmup)
            rows.append({"rule": rule, "T": t, **m})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"N": args.n, "B": args.batch, "rows": rows}))


if __name__ == "__main__":
    main()
