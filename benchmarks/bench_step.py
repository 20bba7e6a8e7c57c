"""Wall time of one training update: DANP (time-local ANP + decorrelation) against full BPTT.

    python benchmarks/bench_step.py --n 256 --batch 64 --steps 2000 --repeats 5

All rules run on the same network, whose forward pass is decorrelated (r̂ = D_rec φ(x)),
and each update ends with the same SGD step (common.update_fn):

- danp:  time-local ANP estimate (rate/perturb_fast.py) + Σ r̂ r̂ᵀ of the clean pass + D update
- anp:   the same estimate, no decorrelation statistics, D fixed
- dbptt: autograd through the decorrelated forward + Σ r̂ r̂ᵀ (from the kept states) + D update
- bptt:  autograd through the decorrelated forward, D fixed

The rules are timed in one process, interleaved, and the ratios are reported (the machine is
shared and noisy; the ratios cancel most of it). Like for like: danp / dbptt and anp / bptt.
A rule name with the suffix ``+torch-tanh`` (e.g. ``danp+torch-tanh``) runs the fast path
with torch.tanh instead of 2 σ(2x) − 1 (BPTT always uses torch.tanh through autograd).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import best_time, problem, problem_args, update_fn

from bioplaus.backends.torch import rate


def _variant(rule: str, spec, p, u, y, device: str):
    """``rule`` or ``rule+torch-tanh``: the same update with the fast paths' tanh evaluated
    by torch.tanh instead of 2 σ(2x) − 1 (rate.FAST_TANH off during the call)."""
    base, _, opt = rule.partition("+")
    f = update_fn(base, spec, p, u, y, device)
    if opt != "torch-tanh":
        return f

    def g() -> None:
        rate.FAST_TANH = False
        try:
            f()
        finally:
            rate.FAST_TANH = True

    return g


def main() -> None:
    ap = argparse.ArgumentParser()
    problem_args(ap, n=256, batch=64, steps=2000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--rules", nargs="+", default=["danp", "dbptt", "anp", "bptt"])
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or the CPU time of the (one-threaded) process's main thread, which "
        "leaves out the time spent waiting for a core on a shared machine",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec, p, u, y = problem(args.n, args.batch, args.steps, device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    fns = {r: _variant(r, spec, p, u, y, args.device) for r in args.rules}
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    times = {r: [] for r in args.rules}
    for _ in range(args.repeats):  # interleave rules so load changes hit both
        for r, f in fns.items():
            times[r].append(best_time(f, 1, sync, clock))
    med = {r: sorted(v)[len(v) // 2] for r, v in times.items()}
    out = {
        "N": args.n,
        "B": args.batch,
        "T": args.steps,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "seconds": med,
    }
    for ref in ("bptt", "dbptt"):
        if ref in med:
            out[f"ratio_to_{ref}"] = {r: med[r] / med[ref] for r in med}
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
