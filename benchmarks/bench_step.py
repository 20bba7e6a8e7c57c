"""Wall time of one training update: DANP (time-local ANP + decorrelation) against full BPTT.

    python benchmarks/bench_step.py --n 256 --batch 64 --steps 2000 --repeats 5

Both are timed in one process, interleaved, and the ratio is reported (the machine is shared
and noisy; the ratio cancels most of it).
"""

from __future__ import annotations

import argparse
import json

import torch
from common import best_time, problem, update_fn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--rules", nargs="+", default=["danp", "bptt"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec, p, u, y = problem(args.n, args.batch, args.steps, device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    fns = {r: update_fn(r, spec, p, u, y, args.device) for r in args.rules}
    times = {r: [] for r in args.rules}
    for _ in range(args.repeats):  # interleave rules so load changes hit both
        for r, f in fns.items():
            times[r].append(best_time(f, 1, sync))
    med = {r: sorted(v)[len(v) // 2] for r, v in times.items()}
    out = {
        "N": args.n,
        "B": args.batch,
        "T": args.steps,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "seconds": med,
    }
    if "bptt" in med:
        out["ratio_to_bptt"] = {r: med[r] / med["bptt"] for r in med}
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
