"""Overhead of bioplaus' brian2 back-end against hand-written brian2 for the same dense network.

The network (DESIGN §1, tanh, intrinsic noise, α = dt/τ)::

    dx/dt = (-x + I_rec + I_in(t, i))/tau + sigma*xi/sqrt(tau),   I_rec = W_rec tanh(x)

Rows (all on one brian2 code-generation target, timed in this one process):

- ``bioplaus matmul``   ``bp.simulate(..., backend="brian2")`` (default recurrence)
- ``hand matmul``       the same network written directly in brian2 the way a user would:
                        a ``network_operation`` doing the dense product, a StateMonitor
- ``hand synapses``     idiomatic brian2: N² Synapses with a summed variable
- ``bioplaus synapses`` ``recurrence="synapses"`` (what cpp_standalone uses)
- ``torch float64``     the torch back-end on CPU, for reference (``--torch``)

Each row: the first call (includes code generation, and compilation for cython), then the
best of ``--repeats`` warm calls of T steps and of T/2 steps; steps/s = T / best call;
ratio = best / best of ``hand matmul``. Every call pays a fixed cost (brian2's
``Network.run`` runs ``gc.collect()`` and prepares code objects: ~0.1–0.3 s in a process
that has torch loaded); the two lengths separate it: per-step cost
(best_T − best_T/2)/(T/2) → "marginal steps/s", fixed = best_T − T·per-step.
Timings on a shared or loaded machine are noisy; repeat and take the best.

Usage::

    python benchmarks/bench_brian2_overhead.py                 # N=256, B=1, T=2000
    python benchmarks/bench_brian2_overhead.py --n 64 --steps 200
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import bioplaus as bp


def pick_target(requested: str) -> str:
    """``auto``: cython if a tiny cython network compiles and runs here, else numpy."""
    if requested != "auto":
        return requested
    import brian2

    old = brian2.prefs["codegen.target"]
    try:
        brian2.start_scope()
        brian2.prefs["codegen.target"] = "cython"
        group = brian2.NeuronGroup(1, "dv/dt = -v/(10*ms) : 1", method="euler", namespace={})
        brian2.Network(group).run(0.2 * brian2.ms, namespace={})
        return "cython"
    except Exception as exc:  # no compiler / no Cython: fall back
        print(f"# cython unavailable ({type(exc).__name__}: {exc}); using numpy")
        return "numpy"
    finally:
        brian2.prefs["codegen.target"] = old
        brian2.start_scope()


def hand_matmul(W, drive, dt, tau, sigma, target, seed) -> np.ndarray:
    """Hand-written brian2: dense recurrence in a network_operation, StateMonitor."""
    import brian2
    from brian2 import NeuronGroup, StateMonitor, TimedArray, network_operation, second

    T, N = drive.shape
    brian2.start_scope()
    brian2.prefs["codegen.target"] = target
    brian2.defaultclock.dt = dt * second
    brian2.seed(seed)
    ns = {"tau": tau * second, "sigma": sigma, "I_in": TimedArray(drive, dt=dt * second)}
    G = NeuronGroup(
        N,
        """dx/dt = (-x + I_rec + I_in(t, i))/tau + sigma*xi/sqrt(tau) : 1
           I_rec : 1""",
        method="euler",
        namespace=ns,
    )
    WT = np.ascontiguousarray(W.T)

    @network_operation(when="before_groups")
    def recurrence() -> None:
        G.I_rec_[:] = np.tanh(G.x_[:]) @ WT

    mon = StateMonitor(G, "x", record=True, when="end")
    brian2.Network(G, recurrence, mon).run(T * dt * second, namespace={})
    return np.asarray(mon.x_).T


def hand_synapses(W, drive, dt, tau, sigma, target, seed) -> np.ndarray:
    """Hand-written brian2, idiomatic: all-to-all Synapses with a summed variable."""
    import brian2
    from brian2 import NeuronGroup, StateMonitor, Synapses, TimedArray, second

    T, N = drive.shape
    brian2.start_scope()
    brian2.prefs["codegen.target"] = target
    brian2.defaultclock.dt = dt * second
    brian2.seed(seed)
    ns = {"tau": tau * second, "sigma": sigma, "I_in": TimedArray(drive, dt=dt * second)}
    G = NeuronGroup(
        N,
        """dx/dt = (-x + I_rec + I_in(t, i))/tau + sigma*xi/sqrt(tau) : 1
           I_rec : 1""",
        method="euler",
        namespace=ns,
    )
    S = Synapses(G, G, "w : 1\nI_rec_post = w*tanh(x_pre) : 1 (summed)", namespace=ns)
    S.connect()  # all to all, i = pre, j = post
    S.w = W[S.j[:], S.i[:]]
    mon = StateMonitor(G, "x", record=True, when="end")
    brian2.Network(G, S, mon).run(T * dt * second, namespace={})
    return np.asarray(mon.x_).T


def time_calls(fn: Callable[[int], object], steps: int, repeats: int) -> tuple[float, ...]:
    """(first call, best of ``repeats`` calls of ``steps``, best of ``steps // 2``), seconds."""
    t0 = time.perf_counter()
    fn(steps)
    first = time.perf_counter() - t0
    best = {steps: np.inf, steps // 2: np.inf}
    for _ in range(repeats):
        for n in best:
            t0 = time.perf_counter()
            fn(n)
            best[n] = min(best[n], time.perf_counter() - t0)
    return first, best[steps], best[steps // 2]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256, help="recurrent units N")
    ap.add_argument("--batch", type=int, default=1, help="copies B (bioplaus rows only)")
    ap.add_argument("--steps", type=int, default=2000, help="time steps T")
    ap.add_argument("--target", default="auto", choices=["auto", "numpy", "cython"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sigma", type=float, default=0.1)
    ap.add_argument("--no-synapses", action="store_true", help="skip the slow synapse rows")
    ap.add_argument("--torch", action="store_true", help="add the torch float64 row")
    args = ap.parse_args(argv)

    import brian2  # noqa: F401  (import cost outside the timings)

    target = pick_target(args.target)
    spec = bp.RateSpec(
        n_in=3, n_rec=args.n, n_out=1, tau=0.02, dt=0.002, sigma=args.sigma, nonlinearity="tanh"
    )
    params = bp.init_params(spec, seed=0)
    u = np.random.default_rng(0).standard_normal((args.steps, args.batch, 3))
    drive = (u[:, 0] @ params["W_in"].T).copy()
    W = params["W_rec"]

    dt, tau, sigma = spec.dt, spec.tau, spec.sigma
    rows: list[tuple[str, Callable[[int], object]]] = [
        (
            "bioplaus matmul",
            lambda n: bp.simulate(spec, u[:n], params, backend="brian2", target=target),
        ),
        ("hand matmul", lambda n: hand_matmul(W, drive[:n], dt, tau, sigma, target, 1)),
    ]
    if not args.no_synapses:
        rows += [
            ("hand synapses", lambda n: hand_synapses(W, drive[:n], dt, tau, sigma, target, 1)),
            (
                "bioplaus synapses",
                lambda n: bp.simulate(
                    spec, u[:n], params, backend="brian2", target=target, recurrence="synapses"
                ),
            ),
        ]
    if args.torch:
        rows.append(("torch float64", lambda n: bp.simulate(spec, u[:n], params, dtype="float64")))

    T = args.steps
    print(f"# N={args.n} B={args.batch} T={T} target={target} sigma={args.sigma}")
    print(
        f"{'variant':<20}{'first [s]':>11}{'best [s]':>10}{'steps/s':>10}{'ratio':>8}"
        f"{'marginal steps/s':>18}{'fixed [s]':>11}"
    )
    results = {name: time_calls(fn, T, args.repeats) for name, fn in rows}
    ref = results["hand matmul"][1]
    for name, (first, best, half) in results.items():
        per_step = (best - half) / (T - T // 2)
        if per_step > 0:  # else: too short to separate from timing noise
            marginal = f"{1 / per_step:>18.0f}{best - T * per_step:>11.3f}"
        else:
            marginal = f"{'-':>18}{'-':>11}"
        print(f"{name:<20}{first:>11.3f}{best:>10.3f}{T / best:>10.0f}{best / ref:>8.2f}{marginal}")


if __name__ == "__main__":
    main()
