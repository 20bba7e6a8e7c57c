"""The LIF network of DESIGN §1 on brian2, agreeing spike for spike with the torch back-end.

Equations (one NeuronGroup of B·N neurons, B independent copies; unit i = b·N + k)::

    dv/dt     = (v_rest - v + I_syn + J_ext)/tau_m : 1 (unless refractory)
    dI_syn/dt = -I_syn/tau_s                       : 1
    dr/dt     = -r/tau_r                           : 1
    J_ext                                          : 1     (set at the start of every step)

    threshold v >= theta ;  reset v = v_reset; r += 1 ;  refractory t_ref
    Synapses (dense, block-diagonal per copy): on_pre I_syn_post += w,  w = W_rec[post, pre]

integrated with ``method='exact'``: brian2 solves the linear (v, I_syn) system in closed
form over each step with J_ext constant — the same propagator the torch back-end uses
(:mod:`bioplaus.backends.torch.lif`): v gets β_m, (1 − β_m) J_ext and
τ_s(β_s − β_m)/(τ_s − τ_m)·I_syn, I_syn gets β_s. Why not ``xi`` with Euler–Maruyama: it
integrates a different map (first-order in dt, noise inside the step), so spike times would
drift apart from torch's within a few membrane time constants; agreement spike for spike
needs the same map, and brian2's exact linear solver gives it while keeping the model a
brian2 ODE (thresholding, reset, refractoriness and synaptic events are brian2's own).

The step's constant drive is written by a ``run_regularly`` operation at ``before_groups``::

    J_ext = drive(t, i) + g_v ξ_t(i)

with ``drive`` = W_in D_in u + b + I_0 (a TimedArray, row n at step n) and ξ either a given
standard-normal realisation (a TimedArray, shared with torch) or brian2's ``randn()``;
g_v = σ_v √((1 − β_m²)/2)/(1 − β_m) makes (1 − β_m) g_v ξ the exact Ornstein–Uhlenbeck
increment of the membrane noise σ_v √τ_m ξ(t).

Scheduling in one step (brian2 slots)::

    before_groups  J_ext ← drive_n + g_v ξ_n
    groups         exact update of v (not while refractory), I_syn, r
    thresholds     spike if v ≥ θ and not refractory (t − lastspike ≥ t_ref, in steps)
    synapses       I_syn += W_rec[:, j] for every spike of j (zero delay)
    resets         v ← v_reset, r += 1
    end            record v

which is the torch order (DESIGN §1's conventions). brian2's refractoriness clamps v on
steps k+1 … k+n_ref−1 after a spike at step k; the torch step copies that convention.
"""

from __future__ import annotations

import math

import numpy as np

from ...params import Params, check_params
from ...spec import LIFSpec
from .context import DEFAULT_TARGET, brian2_scope, check_target

#: the NeuronGroup equations (names resolved through :func:`lif_namespace`)
LIF_EQUATIONS = """
dv/dt = (v_rest - v + I_syn + J_ext)/tau_m : 1 (unless refractory)
dI_syn/dt = -I_syn/tau_s : 1
dr/dt = -r/tau_r : 1
J_ext : 1
"""
LIF_THRESHOLD = "v >= theta"
LIF_RESET = "v = v_reset\nr += 1"
LIF_SYNAPSE_MODEL = "w : 1 (constant)"
LIF_ON_PRE = "I_syn_post += w"

#: cpp_standalone: brian2's own measure of the last simulation's run time (s), excluding
#: code generation and compilation (benchmarks/bench_lif.py)
LAST_RUN: dict[str, float] = {}


def check_lif_spec(spec: LIFSpec) -> None:
    """Raise unless every number reaching brian2 is finite."""
    if not isinstance(spec, LIFSpec):
        raise TypeError(f"expected a LIFSpec, got {type(spec).__name__}")
    for key in ("tau_m", "tau_s", "tau_r", "theta", "v_rest", "v_reset", "t_ref", "sigma_v", "dt",
                "bias_current"):  # fmt: skip
        if not math.isfinite(getattr(spec, key)):
            raise ValueError(f"{key}: must be finite for brian2 (got {getattr(spec, key)!r})")


def noise_gain(spec: LIFSpec) -> float:
    """g_v = σ_v √((1 − β_m²)/2)/(1 − β_m) (the same constant as the torch back-end)."""
    bm = math.exp(-spec.dt / spec.tau_m)
    return spec.sigma_v * math.sqrt((1.0 - bm * bm) / 2.0) / (1.0 - bm)


def lif_namespace(spec: LIFSpec) -> dict[str, object]:
    """Constants of the equations, with brian2 units (times in seconds, voltages unitless)."""
    from brian2 import second

    check_lif_spec(spec)
    return {
        "tau_m": spec.tau_m * second,
        "tau_s": spec.tau_s * second,
        "tau_r": spec.tau_r * second,
        "theta": float(spec.theta),
        "v_rest": float(spec.v_rest),
        "v_reset": float(spec.v_reset),
        "g_v": noise_gain(spec),
    }


def simulate_lif(
    spec: LIFSpec,
    inputs: np.ndarray,
    params: Params,
    *,
    noise: np.ndarray | None = None,
    seed: int = 0,
    v0: np.ndarray | None = None,
    target: str = DEFAULT_TARGET,
    spikes: bool = False,
    directory: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Membrane potentials v [T, B, N] after each step (and spikes [T, B, N] with
    ``spikes=True``) of ``spec`` on brian2. ``noise``: a standard-normal ξ [T, B, N] shared
    with torch; otherwise brian2's ``randn()`` seeded from ``seed``."""
    from brian2 import NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, second

    check_target(target)
    check_lif_spec(spec)
    check_params(spec, params)
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim != 3 or inputs.shape[2] != spec.n_in or 0 in inputs.shape[:2]:
        raise ValueError(f"inputs: expected shape [T, B, n_in={spec.n_in}], got {inputs.shape}")
    T, B, _ = inputs.shape
    N, M = spec.n_rec, B * spec.n_rec
    dt = float(spec.dt)
    u = inputs if params.get("D_in") is None else inputs @ np.asarray(params["D_in"]).T
    drive = u @ np.asarray(params["W_in"]).T + spec.bias_current
    if params.get("b") is not None:
        drive = drive + np.asarray(params["b"])
    ns = lif_namespace(spec)
    ns["drive"] = TimedArray(drive.reshape(T, M), dt=dt * second, name="bioplaus_lif_drive")
    if noise is not None:
        xi = np.asarray(noise, dtype=np.float64)
        if xi.shape != (T, B, N):
            raise ValueError(f"noise: expected shape {(T, B, N)}, got {xi.shape}")
        ns["xi_ext"] = TimedArray(xi.reshape(T, M), dt=dt * second, name="bioplaus_lif_xi")
        code = "J_ext = drive(t, i) + g_v*xi_ext(t, i)"
    elif spec.sigma_v > 0:
        code = "J_ext = drive(t, i) + g_v*randn()"
    else:
        code = "J_ext = drive(t, i)"
    v_init = np.full((B, N), spec.v_rest) if v0 is None else np.broadcast_to(v0, (B, N))

    with brian2_scope(dt, target=target, seed=seed, directory=directory) as scope:
        G = NeuronGroup(
            M, LIF_EQUATIONS, threshold=LIF_THRESHOLD, reset=LIF_RESET,
            refractory=spec.t_ref * second, method="exact", namespace=ns, name="bioplaus_lif",
        )  # fmt: skip
        G.v = np.asarray(v_init, dtype=np.float64).reshape(M)
        G.run_regularly(code, when="before_groups", name="bioplaus_lif_drive_op")
        W = np.asarray(params["W_rec"], dtype=np.float64)
        post, pre = np.nonzero(W)  # only non-zero weights become synapses
        if post.size:
            S = Synapses(G, G, LIF_SYNAPSE_MODEL, on_pre=LIF_ON_PRE, namespace=ns,
                         name="bioplaus_lif_rec")  # fmt: skip
            offsets = (np.arange(B) * N)[:, None]
            S.connect(i=(offsets + pre).ravel(), j=(offsets + post).ravel())
            S.w = np.tile(W[post, pre], B)
            scope.network.add(S)
        vmon = StateMonitor(G, "v", record=True, when="end", name="bioplaus_lif_v")
        smon = SpikeMonitor(G, name="bioplaus_lif_spikes")
        scope.network.add(G, vmon, smon)
        scope.run(T, dt)
        if scope.standalone:  # the simulation's own run time, without code generation/compile
            from brian2 import device

            LAST_RUN["run_time"] = float(getattr(device, "_last_run_time", float("nan")))
        v = np.asarray(vmon.v[:], dtype=np.float64).T.copy()
        si = np.asarray(smon.i[:], dtype=np.int64)
        st = np.rint(np.asarray(smon.t[:] / second) / dt).astype(np.int64)
    if v.shape != (T, M):
        raise RuntimeError(f"brian2 recorded {v.shape}, expected {(T, M)}")
    v = v.reshape(T, B, N)
    if not spikes:
        return v
    s = np.zeros((T, M))
    s[st, si] = 1.0
    return v, s.reshape(T, B, N)
