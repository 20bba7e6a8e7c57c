"""``bp.estimate`` through the public API against the engine under it, in one process.

    python benchmarks/bench_estimate_api.py --n 256 --batch 64 --steps 2000 --repeats 5

For each rule the estimate at fixed weights is timed twice, interleaved:

- engine: the torch driver on torch tensors (``perturbation_estimate`` / ``bptt_estimate``),
  what the trainer calls;
- api:    ``bp.estimate(rule, spec, params, inputs, targets)`` from float64 numpy arrays,
  in float32 — its argument checks, the conversions to and from torch, the rule's option
  model and the network type's entry included.

It prints api / engine per rule and the rule / BPTT ratio by each path: the public API
should not change the ratios that BENCHMARKS.md reports for the engine (issue 16: "estimate
adds no copies beyond its inputs").
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import best_time, parse_rule, problem, problem_args

import bioplaus as bp
from bioplaus.backends.torch.rate import consts_of, to_numpy
from bioplaus.backends.torch.rate.bptt import bptt_estimate
from bioplaus.backends.torch.rate.perturb import perturbation_estimate
from bioplaus.rules import RuleSpec, make_rule


def engine_fn(rule: str, spec, p, u, y):
    """The driver's estimate on torch tensors (no optimizer step)."""
    name, opts = parse_rule(rule)
    c = consts_of(spec)
    gen = torch.Generator().manual_seed(1)
    if name == "bptt":
        return lambda: bptt_estimate(p, c, u, y, None, "mse")
    rs = RuleSpec(name=name, **opts)
    r = make_rule(rs)
    return lambda: perturbation_estimate(p, c, r, u, y, None, "mse", gen, K=rs.K)


def api_fn(rule: str, spec, p, u, y):
    """``bp.estimate`` from float64 numpy arrays (float32 inside)."""
    name, opts = parse_rule(rule)
    params = to_numpy(p)
    un, yn = u.double().numpy(), y.double().numpy()
    return lambda: bp.estimate(name, spec, params, un, yn, seed=1, dtype="float32", **opts)


def main() -> None:
    ap = argparse.ArgumentParser()
    problem_args(ap, n=256, batch=64, steps=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rules", nargs="+", default=["anp", "bptt"])
    ap.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    clock = time.thread_time if a.clock == "cpu" else time.perf_counter
    spec, p, u, y = problem(a.n, a.batch, a.steps)
    sec: dict[str, dict[str, float]] = {"engine": {}, "api": {}}
    for r in a.rules:  # interleaved: engine and api of one rule back to back
        sec["engine"][r] = best_time(engine_fn(r, spec, p, u, y), a.repeats, clock=clock)
        sec["api"][r] = best_time(api_fn(r, spec, p, u, y), a.repeats, clock=clock)
    ref = "bptt" if "bptt" in a.rules else a.rules[-1]
    out = {
        "N": a.n, "B": a.batch, "T": a.steps, "threads": a.threads, "clock": a.clock,
        "seconds": sec,
        "api_over_engine": {r: sec["api"][r] / sec["engine"][r] for r in a.rules},
        "ratio_to_" + ref: {
            path: {r: sec[path][r] / sec[path][ref] for r in a.rules} for path in sec
        },
    }  # fmt: skip
    if a.json:
        print(json.dumps(out))
        return
    print(f"N={a.n} B={a.batch} T={a.steps} threads={a.threads} clock={a.clock}")
    print(f"{'rule':<36}{'engine s':>10}{'api s':>10}{'api/engine':>12}"
          f"{'engine/' + ref:>14}{'api/' + ref:>12}")  # fmt: skip
    for r in a.rules:
        e, q = sec["engine"][r], sec["api"][r]
        print(f"{r:<36}{e:>10.3f}{q:>10.3f}{q / e:>12.3f}"
              f"{e / sec['engine'][ref]:>14.3f}{q / sec['api'][ref]:>12.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
