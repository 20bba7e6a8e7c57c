"""Shared helpers for the benchmarks: one training update of a rule on random data."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

import bioplaus as bp
from bioplaus.backends.torch.rate import consts_of, to_torch
from bioplaus.backends.torch.rate.bptt import bptt_estimate
from bioplaus.backends.torch.rate.perturb import perturbation_estimate
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


def problem_args(
    ap: argparse.ArgumentParser, n: int, batch: int, steps: int, repeats: int = 5
) -> argparse.ArgumentParser:
    """The size options every timing benchmark takes (--n, --batch, --steps, --repeats),
    with the benchmark's own defaults."""
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--repeats", type=int, default=repeats)
    return ap


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
        elif RuleSpec(name=rule, **opts).mechanism == "online":  # e-prop, rflo, three-factor
            from bioplaus.backends.torch.rate.online import OnlineHandle
            from bioplaus.rules import make_online

            rs = RuleSpec(name=rule, **opts)
            h = OnlineHandle(make_online(rs, "rate", spec.dt), None, 1, u.shape[1], spec.dt)
            res = h.estimate(q, c, u, y, None, "mse", gen)
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
    fn: Callable[[], None],
    repeats: int,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median over ``repeats`` calls of ``fn`` after a warm-up, by ``clock`` (wall time;
    ``time.thread_time`` for the CPU time of this thread, which on a shared machine leaves
    out the time spent waiting for a core)."""
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        sync()
        times.append(clock() - t0)
    return float(np.median(times))


def lif_problem(N: int, B: int, T: int, n_in: int = 8, n_out: int = 4, device: str = "cpu",
                seed: int = 0):  # fmt: skip
    """A LIF network (models/lif_pattern.toml's constants, N units, decorrelated readout)
    with random inputs and targets, as torch tensors on ``device``."""
    from bioplaus.backends.torch import lif

    spec = bp.LIFSpec(n_in=n_in, n_rec=N, n_out=n_out, dt=0.002, sigma=0.1, sigma_v=0.5,
                      bias_current=0.7, in_gain=2.0, decorrelate_rec=True)  # fmt: skip
    p = lif.to_torch(bp.init_params(spec, seed=seed), device)
    g = torch.Generator(device=device).manual_seed(seed)
    u = torch.randn(T, B, n_in, generator=g, device=device)
    y = torch.randn(T, B, n_out, generator=g, device=device) * 0.1
    return spec, p, u, y


def lif_update_fn(rule: str, spec, p, u, y, device: str = "cpu") -> Callable[[], None]:
    """One LIF training update: 'anp' / 'np' (paired passes, lif/perturb.py) or 'bptt'
    (surrogate BPTT, lif/bptt.py), then SGD; the background noise from one generator."""
    from bioplaus.backends.torch import lif
    from bioplaus.backends.torch.lif.bptt import lif_bptt_estimate
    from bioplaus.backends.torch.lif.perturb import lif_perturbation_estimate

    c = lif.consts_of(spec)
    weights = {k: getattr(p, k).clone().requires_grad_(True) for k in ("W_in", "W_rec", "W_out")}
    opt = torch.optim.SGD(weights.values(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(1)

    def step() -> None:
        q = p._replace(**{k: v.detach() for k, v in weights.items()})
        if rule == "bptt":
            res = lif_bptt_estimate(q, c, u, y, None, "mse", generator=gen)
        else:
            res = lif_perturbation_estimate(
                q,
                c,
                make_rule(RuleSpec(name=rule), network="lif"),
                u,
                y,
                None,
                "mse",
                gen,
                delta=spec.delta,
            )
        for k, w in weights.items():
            w.grad = res.grads[k]
        opt.step()

    return step


def device_time(fn: Callable[[], None], device: str, repeats: int = 3, warmup: int = 1) -> dict:
    """Median wall time of ``fn`` over ``repeats`` calls after ``warmup`` calls: CUDA events
    around each call on a CUDA device, ``time.perf_counter`` on the CPU. Returns
    {"seconds": median, "all": [...], "first": seconds of the first warm-up call}."""
    cuda = str(device).startswith("cuda")
    first = None
    for _ in range(max(warmup, 0)):
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        first = time.perf_counter() - t0 if first is None else first
    times = []
    for _ in range(repeats):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return {"seconds": float(np.median(times)), "all": times, "first": first}
