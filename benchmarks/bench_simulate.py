"""``bp.simulate`` against plain torch loops, snnTorch and Norse; LIF BPTT; precise spiking.

Every row is a ratio of times measured in one run, the contenders interleaved round-robin
(``--reps`` rounds after a warm-up; the seconds columns are the best round, the ratio the
median over rounds of the adjacent calls' ratio, robust to a shared machine's load), on the
same CPU threads, float32, no autograd unless stated:

- rate: ``bp.simulate(..., out_dtype="float32")`` (rate network, N = 1024, B = 256) against a
  plain torch loop of the same Euler–Maruyama equations that keeps x in a preallocated
  float32 [T, B, N] tensor;
- LIF: ``bp.simulate`` (N = 1024, B = 64, dt = 2 ms, t_ref = 4 ms, background noise) against
  the plain loop of the same exact-integration map keeping v, against snnTorch
  (``Leaky`` + input and recurrent ``Linear``, same β, noise current, keeping v) and Norse
  (``LIFRecurrentCell``: current-based LIF, its own constants) where they import;
- LIF batch 1: N = 1000, B = 1: ``bp.simulate`` against bioplaus's internal rollout;
- precise/grid: ``bp.simulate`` with ``spiking = "precise"`` against ``"grid"``, per step;
- LIF BPTT (surrogate gradient, N = 256, B = 64, T = 500): bioplaus ``lif_bptt_estimate``
  against snnTorch (``Leaky`` with fast-sigmoid surrogate, recurrent ``Linear``, readout on
  the filtered spike train, MSE, ``backward``) and Norse (``LIFRecurrentCell`` + readout).

    python benchmarks/bench_simulate.py [--threads 1] [--reps 3] [--quick]

Run it with an interpreter where snntorch and norse import for the peer rows (e.g. the
benchmark venv: ``PYTHONPATH=. /work/venvs/bench/bin/python benchmarks/bench_simulate.py``).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

import bioplaus as bp
from bioplaus.backends.torch.lif import consts_of, to_torch
from bioplaus.backends.torch.lif.bptt import lif_bptt_estimate
from bioplaus.backends.torch.lif.rollout import background, rollout
from bioplaus.spec import LIFSpec, RateSpec


class Race(dict):
    """Per-contender lists of seconds, measured round-robin (one call of each per round)."""

    def best(self, k: str) -> float:
        return min(self[k])

    def ratio(self, a: str, b: str) -> float:
        """Median over rounds of t_a / t_b: adjacent calls share the machine's load."""
        return float(np.median(np.array(self[a]) / np.array(self[b])))


def race(fns: dict[str, Callable[[], object]], reps: int) -> Race:
    """``reps`` interleaved rounds after a warm-up call of each contender."""
    out = Race({k: [] for k in fns})
    for f in fns.values():  # warm-up
        f()
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            out[k].append(time.perf_counter() - t0)
    return out


def row(label: str, t: Race, a: str, b: str, target: str = "") -> str:
    return f"| {label} | {t.best(a):.3f} | {t.best(b):.3f} | {t.ratio(a, b):.2f} | {target} |"


# -- rate ------------------------------------------------------------------------------------
def rate_rows(T: int, reps: int) -> list[str]:
    N, B = 1024, 256
    spec = RateSpec(n_in=4, n_rec=N, n_out=2, sigma=0.1, dt=0.01, tau=0.1)
    params = bp.init_params(spec, seed=0)
    u = np.random.default_rng(0).standard_normal((T, B, 4)).astype(np.float32)
    p = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in params.items()}
    a = spec.dt / spec.tau

    def plain() -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            ut = torch.as_tensor(u)
            drive = ut @ p["W_in"].T
            x = torch.zeros(B, N)
            r = torch.tanh(x)
            out = torch.empty(T, B, N)
            for t in range(T):
                pre = drive[t] + r @ p["W_rec"].T
                x = (1 - a) * x + a * pre + spec.sigma * a**0.5 * torch.randn(B, N, generator=g)
                r = torch.tanh(x)
                out[t] = x
        return out

    def api() -> object:
        return bp.simulate(spec, u, params, seed=0, out_dtype="float32")

    t = race({"plain": plain, "simulate": api}, reps)
    return [
        row(f"rate simulate / plain loop (N={N}, B={B}, T={T})", t, "simulate", "plain", "≤ 1.15")
    ]


# -- LIF forward -----------------------------------------------------------------------------
def lif_plain(spec: LIFSpec, params, u: np.ndarray) -> Callable[[], torch.Tensor]:
    c = consts_of(spec)
    p = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in params.items()}
    T, B, _ = u.shape
    N = spec.n_rec

    def run() -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            ext = torch.as_tensor(u) @ p["W_in"].T + spec.bias_current
            v = torch.zeros(B, N)
            q = torch.zeros(B, N)
            cnt = torch.zeros(B, N)
            out = torch.empty(T, B, N)
            for t in range(T):
                J = ext[t] + c.kappa * (q @ p["W_rec"].T) + c.g_v * torch.randn(B, N, generator=g)
                active = cnt <= 0
                v = torch.where(active, c.beta_m * v + (1 - c.beta_m) * J, v)
                s = (v >= c.theta) & active
                v = torch.where(s, c.v_reset, v)
                cnt = torch.where(s, float(c.n_ref), (cnt - 1).clamp(min=0))
                q = c.beta_s * q + s.float()
                out[t] = v
        return out

    return run


def snntorch_forward(spec: LIFSpec, u: np.ndarray):
    try:
        import snntorch as snn
    except ImportError:
        return None
    c = consts_of(spec)
    T, B, n_in = u.shape
    N = spec.n_rec
    torch.manual_seed(0)
    fc_in = torch.nn.Linear(n_in, N, bias=False)
    fc_rec = torch.nn.Linear(N, N, bias=False)
    lif = snn.Leaky(beta=c.beta_m, threshold=spec.theta, reset_mechanism="zero")

    def run() -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            ut = torch.as_tensor(u)
            mem = lif.init_leaky()
            spk = torch.zeros(B, N)
            out = torch.empty(T, B, N)
            for t in range(T):
                cur = (fc_in(ut[t]) + fc_rec(spk) + spec.bias_current
                       + c.g_v * torch.randn(B, N, generator=g)) * (1 - c.beta_m)  # fmt: skip
                spk, mem = lif(cur, mem)
                out[t] = mem
        return out

    return run


def norse_forward(spec: LIFSpec, u: np.ndarray):
    try:
        import norse.torch as norse
    except ImportError:
        return None
    T, B, n_in = u.shape
    N = spec.n_rec
    torch.manual_seed(0)
    cell = norse.LIFRecurrentCell(n_in, N, dt=spec.dt)

    def run() -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            ut = torch.as_tensor(u)
            state = None
            out = torch.empty(T, B, N)
            for t in range(T):
                x = ut[t] + 0.1 * torch.randn(B, n_in, generator=g)
                z, state = cell(x, state)
                out[t] = state.v
        return out

    return run


def lif_rows(T: int, reps: int) -> list[str]:
    spec = LIFSpec(n_in=4, n_rec=1024, n_out=2)
    B = 64
    params = bp.init_params(spec, seed=0)
    u = (np.random.default_rng(0).random((T, B, 4)) < 0.05).astype(np.float32)
    fns: dict[str, Callable[[], object]] = {
        "simulate": lambda: bp.simulate(spec, u, params, seed=0, output="torch"),
        "plain": lif_plain(spec, params, u),
    }
    for name, mk in (("snntorch", snntorch_forward), ("norse", norse_forward)):
        f = mk(spec, u)
        if f is not None:
            fns[name] = f
    t = race(fns, reps)
    rows = [row(f"LIF simulate / plain loop (N=1024, B={B}, T={T})", t, "simulate", "plain",
                "≤ 1.15"),
            f"| LIF simulate steps/s (N=1024, B={B}) | {T / t.best('simulate'):.0f} steps/s | "
            f"{T / t.best('plain'):.0f} (plain) | | |"]  # fmt: skip
    for peer in ("snntorch", "norse"):
        if peer in t:
            rows.append(row(f"LIF simulate / {peer} forward (N=1024, B={B}, T={T})", t,
                            "simulate", peer))  # fmt: skip
        else:
            rows.append(f"| LIF simulate / {peer} | {peer} does not import here | | | |")
    return rows


def batch1_rows(T: int, reps: int) -> list[str]:
    spec = LIFSpec(n_in=4, n_rec=1000, n_out=2)
    params = bp.init_params(spec, seed=0)
    u = (np.random.default_rng(0).random((T, 1, 4)) < 0.05).astype(np.float32)
    p = to_torch(params)
    c = consts_of(spec)
    ut = torch.as_tensor(u)

    def internal() -> object:
        g = torch.Generator().manual_seed(0)
        xi = background(c, (1, spec.n_rec), generator=g)
        with torch.no_grad():
            return rollout(p, c, ut, xi, keep_outputs=False).v

    t = race({"simulate": lambda: bp.simulate(spec, u, params, seed=0, output="torch"),
              "internal": internal, "plain": lif_plain(spec, params, u)}, reps)  # fmt: skip
    return [row(f"LIF batch-1 simulate / internal rollout (N=1000, B=1, T={T})", t,
                "simulate", "internal", "≤ 1"),
            row(f"LIF batch-1 simulate / plain loop (N=1000, B=1, T={T})", t, "simulate",
                "plain")]  # fmt: skip


def precise_rows(T: int, reps: int) -> list[str]:
    rows = []
    for N, B in ((1024, 64), (256, 64), (1000, 1)):
        u = np.zeros((T, B, 4), dtype=np.float32)
        fns = {}
        for mode in ("grid", "precise"):
            spec = LIFSpec(n_in=4, n_rec=N, n_out=2, spiking=mode)
            params = bp.init_params(spec, seed=0)
            fns[mode] = partial(bp.simulate, spec, u, params, seed=0, output="torch")
        t = race(fns, reps)
        rows.append(row(f"LIF precise / grid simulate, per step (N={N}, B={B}, T={T})", t,
                        "precise", "grid", "≤ 1.3 to be the default"))  # fmt: skip
    return rows


# -- LIF BPTT --------------------------------------------------------------------------------
def bptt_rows(T: int, reps: int) -> list[str]:
    N, B, n_in, n_out = 256, 64, 4, 2
    spec = LIFSpec(n_in=n_in, n_rec=N, n_out=n_out)
    c = consts_of(spec)
    params = bp.init_params(spec, seed=0)
    g0 = np.random.default_rng(0)
    u = torch.as_tensor((g0.random((T, B, n_in)) < 0.05).astype(np.float32))
    y = torch.as_tensor(g0.standard_normal((T, B, n_out)).astype(np.float32) * 0.1)
    p = to_torch(params)

    def ours() -> object:
        return lif_bptt_estimate(p, c, u, y, None, "mse",
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip

    fns: dict[str, Callable[[], object]] = {"bioplaus": ours}
    try:
        import snntorch as snn
        from snntorch import surrogate

        torch.manual_seed(0)
        fc_in = torch.nn.Linear(n_in, N, bias=False)
        fc_rec = torch.nn.Linear(N, N, bias=False)
        fc_out = torch.nn.Linear(N, n_out, bias=False)
        lif = snn.Leaky(beta=c.beta_m, threshold=1.0, reset_mechanism="zero",
                        spike_grad=surrogate.fast_sigmoid(slope=25))  # fmt: skip
        ps = list(fc_in.parameters()) + list(fc_rec.parameters()) + list(fc_out.parameters())

        def snn_bptt() -> object:
            gen = torch.Generator().manual_seed(0)
            for q in ps:
                q.grad = None
            mem = lif.init_leaky()
            spk = torch.zeros(B, N)
            r = torch.zeros(B, N)
            outs = []
            for t in range(T):
                cur = (fc_in(u[t]) + fc_rec(spk) + spec.bias_current
                       + c.g_v * torch.randn(B, N, generator=gen)) * (1 - c.beta_m)  # fmt: skip
                spk, mem = lif(cur, mem)
                r = c.beta_r * r + spk
                outs.append(r)
            o = fc_out(torch.stack(outs))
            loss = 0.5 * ((o - y) ** 2).sum(-1).mean()
            loss.backward()
            return loss

        fns["snntorch"] = snn_bptt
    except ImportError:
        pass
    try:
        import norse.torch as norse

        torch.manual_seed(0)
        cell = norse.LIFRecurrentCell(n_in, N, dt=spec.dt)
        ro = torch.nn.Linear(N, n_out, bias=False)
        nps = list(cell.parameters()) + list(ro.parameters())

        def norse_bptt() -> object:
            for q in nps:
                q.grad = None
            state = None
            outs = []
            for t in range(T):
                z, state = cell(u[t], state)
                outs.append(z)
            o = ro(torch.stack(outs))
            loss = 0.5 * ((o - y) ** 2).sum(-1).mean()
            loss.backward()
            return loss

        fns["norse"] = norse_bptt
    except ImportError:
        pass
    t = race(fns, reps)
    rows = []
    for peer in ("snntorch", "norse"):
        if peer in t:
            rows.append(row(f"LIF BPTT bioplaus / {peer} (N={N}, B={B}, T={T})", t, "bioplaus",
                            peer, "≤ 1" if peer == "snntorch" else ""))  # fmt: skip
        else:
            rows.append(f"| LIF BPTT / {peer} | {peer} does not import here | | | |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="short sequences (smoke test)")
    ap.add_argument("--only", default="rate,lif,batch1,precise,bptt")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    T = 40 if a.quick else 500
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads={a.threads}, reps={a.reps}")  # fmt: skip
    print("| comparison | bioplaus s | other s | ratio (median) | target |")
    print("|---|---|---|---|---|")
    parts = {"rate": (rate_rows, 20 if a.quick else 200), "lif": (lif_rows, T),
             "batch1": (batch1_rows, T), "precise": (precise_rows, 20 if a.quick else 200),
             "bptt": (bptt_rows, T)}  # fmt: skip
    for key in a.only.split(","):
        fn, steps = parts[key]
        for row in fn(steps, a.reps):
            print(row, flush=True)


if __name__ == "__main__":
    main()
