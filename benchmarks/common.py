"""Shared helpers for the benchmarks: one training update of a rule on random data."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

import bioplaus as bp
from bioplaus.backends.torch.bptt import bptt_estimate
from bioplaus.backends.torch.perturb import perturbation_estimate
from bioplaus.backends.torch.rate import consts_of, to_torch
from bioplaus.rules import RuleSpec, make_rule
from bioplaus.rules.decorrelation import decorrelation_update


def problem(
    N: int, B: int, T: int, n_in: int = 8, n_out: int = 4, device: str = "cpu", seed: int = 0
):
    spec = bp.RateSpec(
        n_in=n_in, n_rec=N, n_out=n_out, tau=0.02, dt=0.002, sigma=1e-3, decorrelate_rec=True
    )
    p = to_torch(bp.init_params(spec, seed=seed), device)
    g = torch.Generator(device=device).manual_seed(seed)
    u = torch.randn(T, B, n_in, generator=g, device=device)
    y = torch.randn(T, B, n_out, generator=g, device=device) * 0.1
    return spec, p, u, y


def parse_rule(rule: str) -> tuple[str, dict]:
    """``"anp:signal=trace,trace_decay=0.9"`` → ("anp", {"signal": "trace", "trace_decay": 0.9})."""
    import tomllib

    name, _, opts = rule.partition(":")
    kw = {}
    for item in filter(None, opts.split(",")):
        key, _, raw = item.partition("=")
        try:
            kw[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            kw[key] = raw
    return name, kw


def update_fn(rule: str, spec, p, u, y, device: str = "cpu") -> Callable[[], None]:
    """One training update: the rule's estimate (+ decorrelation for 'danp'), then SGD.
    ``rule`` may carry options, ``name:key=value,...`` (e.g. ``np:K=4``)."""
    rule, opts = parse_rule(rule)
    c = consts_of(spec)
    weights = {k: getattr(p, k).clone().requires_grad_(True) for k in ("W_in", "W_rec", "W_out")}
    opt = torch.optim.SGD(weights.values(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(1)
    state = {"D": p.D_rec}

    def step() -> None:
        q = p._replace(**{k: v.detach() for k, v in weights.items()}, D_rec=state["D"])
        if rule in ("bptt", "dbptt"):
            res = bptt_estimate(
                q, c, u, y, None, "mse", decor=("D_rec",) if rule == "dbptt" else ()
            )
        else:
            rs = RuleSpec(name="anp" if rule in ("anp", "danp") else rule, **opts)
            res = perturbation_estimate(
                q,
                c,
                make_rule(rs),
                u,
                y,
                None,
                "mse",
                gen,
                K=rs.K,
                decor=("D_rec",) if rule == "danp" else (),
            )
        for k, w in weights.items():
            w.grad = res.grads[k]
        if "D_rec" in res.decor:
            yy, n = res.decor["D_rec"]
            state["D"] = decorrelation_update(state["D"], yy, n, 1e-4)
        opt.step()

    return step


def best_time(
    fn: Callable[[], None], repeats: int, sync: Callable[[], None] = lambda: None
) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
