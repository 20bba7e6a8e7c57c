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

which is the torch order (DESIGN §1's conventions). brian2 counts ``refractory`` from the
start of the step a spike was detected in, so it is given (n_ref + 1)·dt: v is clamped on
steps k+1 … k+n_ref after a spike at the end of step k, exactly t_ref (the torch grid step).

``spiking = "precise"`` (threshold crossings between steps, spikes at their time within the
step; :mod:`bioplaus.backends.torch.lif` has the equations) is brian2 custom code: one
``run_regularly`` operation at ``before_thresholds`` carries the exact propagator over the
free part of the step, the interpolated crossing time, the OU-bridge crossing draw (a given
uniform realisation, or brian2's ``rand()``), reset, real-valued refractoriness and the
traces, on state variables ``v, q, r, cref, s, d``; recurrent input is a summed variable
``Jrec = Σ_j w_ij z_j`` with z = κ q + ζ(d) s (the same single product the torch step
does). ``threshold = "s > 0.5"`` hands the spikes to brian2 (monitors, events).
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
    crossing: np.ndarray | None = None,
    offsets: bool = False,
):
    """Membrane potentials v [T, B, N] after each step (and spikes [T, B, N] with
    ``spikes=True``, and their offsets d [T, B, N], steps from the spike to the step's end,
    with ``offsets=True``) of ``spec`` on brian2. ``noise``: a standard-normal ξ [T, B, N]
    shared with torch; otherwise brian2's ``randn()`` seeded from ``seed``. ``crossing``:
    the bridge-crossing uniforms of precise spiking (otherwise brian2's ``rand()``)."""
    if spec.spiking == "precise":
        return _simulate_precise(spec, inputs, params, noise=noise, seed=seed, v0=v0,
                                 target=target, spikes=spikes, directory=directory,
                                 crossing=crossing, offsets=offsets)  # fmt: skip
    from brian2 import NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, second

    check_target(target)
    check_lif_spec(spec)
    check_params(spec, params)
    drive = _inputs_drive(spec, inputs, params)
    T, B, _ = drive.shape
    N, M = spec.n_rec, B * spec.n_rec
    dt = float(spec.dt)
    ns = lif_namespace(spec)
    ns["drive"] = TimedArray(drive.reshape(T, M), dt=dt * second, name="bioplaus_lif_drive")
    if noise is not None:
        ns["xi_ext"] = _timed_realisation("noise", noise, (T, B, N), dt, "bioplaus_lif_xi")
        code = "J_ext = drive(t, i) + g_v*xi_ext(t, i)"
    elif spec.sigma_v > 0:
        code = "J_ext = drive(t, i) + g_v*randn()"
    else:
        code = "J_ext = drive(t, i)"
    v_init = np.full((B, N), spec.v_rest) if v0 is None else np.broadcast_to(v0, (B, N))

    with brian2_scope(dt, target=target, seed=seed, directory=directory) as scope:
        G = NeuronGroup(
            M, LIF_EQUATIONS, threshold=LIF_THRESHOLD, reset=LIF_RESET,
            refractory=((spec.n_ref + 1) * dt if spec.n_ref > 0 else 0.0) * second,
            method="exact", namespace=ns, name="bioplaus_lif",
        )  # fmt: skip
        G.v = np.asarray(v_init, dtype=np.float64).reshape(M)
        G.run_regularly(code, when="before_groups", name="bioplaus_lif_drive_op")
        W = np.asarray(params["W_rec"], dtype=np.float64)
        post, pre = np.nonzero(W)  # only non-zero weights become synapses
        if post.size:
            S = Synapses(G, G, LIF_SYNAPSE_MODEL, on_pre=LIF_ON_PRE, namespace=ns,
                         name="bioplaus_lif_rec")  # fmt: skip
            offs = (np.arange(B) * N)[:, None]
            S.connect(i=(offs + pre).ravel(), j=(offs + post).ravel())
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
    s = np.zeros((T, M))
    s[st, si] = 1.0
    s = s.reshape(T, B, N)
    out = (v,) + ((s,) if spikes else ()) + ((np.zeros_like(s),) if offsets else ())
    return out if len(out) > 1 else v


def _timed_realisation(what: str, values, shape: tuple[int, int, int], dt: float, name: str):
    """A given realisation [T, B, N] (noise ξ, crossing uniforms) as a TimedArray [T, B·N]
    read at step n; a ValueError naming ``what`` on another shape."""
    from brian2 import TimedArray, second

    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {arr.shape}")
    return TimedArray(arr.reshape(shape[0], -1), dt=dt * second, name=name)


def _inputs_drive(spec, inputs, params):
    """drive = W_in D_in u + I_0 (+ b) [T, B, N]; a ValueError on inputs of another shape."""
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim != 3 or inputs.shape[2] != spec.n_in or 0 in inputs.shape[:2]:
        raise ValueError(f"inputs: expected shape [T, B, n_in={spec.n_in}], got {inputs.shape}")
    u = inputs if params.get("D_in") is None else inputs @ np.asarray(params["D_in"]).T
    drive = u @ np.asarray(params["W_in"]).T + spec.bias_current
    if params.get("b") is not None:
        drive = drive + np.asarray(params["b"])
    return drive


def precise_code(spec: LIFSpec, xi: str, uni: str) -> str:
    """The precise step as brian2 abstract code (``xi``: the step's ξ expression, ``uni``:
    its uniform); masks are arithmetic, every branch finite."""
    lines = [
        "f_ = clip(1 - cref, 0, 1)",
        "free_ = int(f_ > 0)",
        "bf_ = exp(f_*log_bm)",
        "Jt_ = drive(t, i) + Jrec",
        "v1_ = v_rest + bf_*(v - v_rest) + (1 - bf_)*Jt_",
    ]
    if spec.sigma_v > 0:
        lines.append(f"v1_ = v1_ + sig_ou*sqrt(clip(1 - bf_*bf_, 0, 1))*({xi})")
    lines += [
        "v1_ = free_*v1_ + (1 - free_)*v",
        "a_ = theta - v",
        "b_ = theta - v1_",
        "start_ = free_*int(a_ <= 0)",
        "det_ = free_*int(b_ <= 0)*(1 - start_)",
        "den_ = (v1_ - theta) + bf_*a_",
        "ratio_ = clip((v1_ - v)/clip(den_, 1e-300, 1e300), 1, 1e300)",
        "tdet_ = clip(log(ratio_)*tau_m_dt, 0, f_)",
        "tin_ = det_*tdet_",
        "spk_ = clip(start_ + det_, 0, 1)",
    ]
    if spec.sigma_v > 0:
        lines += [
            "below_ = free_*int(a_ > 0)*int(b_ > 0)",
            "ab_ = below_*a_*b_ + (1 - below_)",
            "den2_ = clip(sig2*(1 - bf_*bf_), 1e-300, 1e300)",
            "prob_ = exp(-4*ab_*bf_/den2_)",
            f"bridge_ = below_*int(({uni}) < prob_)",
            "tin_ = tin_ + bridge_*f_*a_/clip(a_ + b_, 1e-300, 1e300)",
            "spk_ = clip(spk_ + bridge_, 0, 1)",
        ]
    lines += [
        "dn_ = spk_*clip(1 - ((1 - f_) + tin_), 0, 1)",
        "vn_ = v1_ - spk_*(v1_ - v_reset)",
    ]
    if spec.t_ref < spec.dt:
        lines += [
            "g_ = spk_*clip(dn_ - ref_steps, 0, 1)",
            "bg2_ = exp(g_*log_bm)",
            "jinf_ = free_*(v1_ - bf_*v)/clip(1 - bf_, 1e-300, 1) + (1 - free_)*v1_",
            "va_ = v_rest + bg2_*(v_reset - v_rest) + (1 - bg2_)*(jinf_ - v_rest)",
            "vn_ = vn_ + spk_*int(g_ > 0)*(va_ - v_reset)",
        ]
    lines += [
        "cref = spk_*clip(ref_steps - dn_, 0, 1e300) + (1 - spk_)*clip(cref - 1, 0, 1e300)",
        "q = beta_s*q + spk_*exp(dn_*log_bs)",
        "r = beta_r*r + spk_*exp(dn_*log_br)",
        "v = vn_",
        "s = spk_",
        "d = dn_",
        "z = kappa*q + zeta_c*(" + _zeta_expr(spec) + ")*s",
    ]
    return "\n".join(lines)


def _zeta_expr(spec: LIFSpec) -> str:
    if abs(spec.tau_s - spec.tau_m) < 1e-12 * spec.tau_m:
        return "d*dt_tau_m*exp(-d*dt_tau_m)"
    return "exp(-d*dt_tau_s) - exp(-d*dt_tau_m)"


PRECISE_EQUATIONS = """
v : 1
q : 1
r : 1
cref : 1
s : 1
d : 1
z : 1
Jrec : 1
"""


def _simulate_precise(spec, inputs, params, *, noise, seed, v0, target, spikes, directory,
                      crossing, offsets):  # fmt: skip
    from brian2 import NeuronGroup, StateMonitor, Synapses, TimedArray, second

    check_target(target)
    check_lif_spec(spec)
    check_params(spec, params)
    drive = _inputs_drive(spec, inputs, params)
    T, B, N = drive.shape
    M, dt = B * N, float(spec.dt)
    bm = math.exp(-dt / spec.tau_m)
    bs = math.exp(-dt / spec.tau_s)
    same = abs(spec.tau_s - spec.tau_m) < 1e-12 * spec.tau_m
    p_vi = dt / spec.tau_m * bm if same else spec.tau_s * (bs - bm) / (spec.tau_s - spec.tau_m)
    ns = {
        "theta": float(spec.theta), "v_rest": float(spec.v_rest),
        "v_reset": float(spec.v_reset), "log_bm": -dt / spec.tau_m, "log_bs": -dt / spec.tau_s,
        "log_br": -dt / spec.tau_r, "beta_s": bs, "beta_r": math.exp(-dt / spec.tau_r),
        "kappa": p_vi / (1.0 - bm), "tau_m_dt": spec.tau_m / dt,
        "dt_tau_m": dt / spec.tau_m, "dt_tau_s": dt / spec.tau_s,
        "zeta_c": (1.0 if same else spec.tau_s / (spec.tau_s - spec.tau_m)) * bm / (1.0 - bm),
        "sig_ou": spec.sigma_v / math.sqrt(2.0), "sig2": spec.sigma_v**2,
        "ref_steps": spec.t_ref / dt,
    }  # fmt: skip
    ns["drive"] = TimedArray(drive.reshape(T, M), dt=dt * second, name="bioplaus_lif_drive")
    xi, uni = "randn()", "rand()"
    if noise is not None:
        ns["xi_ext"] = _timed_realisation("noise", noise, (T, B, N), dt, "bioplaus_lif_xi")
        xi = "xi_ext(t, i)"
    if crossing is not None:
        ns["uni_ext"] = _timed_realisation("crossing", crossing, (T, B, N), dt, "bioplaus_lif_uni")
        uni = "uni_ext(t, i)"
    v_init = np.full((B, N), spec.v_rest) if v0 is None else np.broadcast_to(v0, (B, N))
    with brian2_scope(dt, target=target, seed=seed, directory=directory) as scope:
        G = NeuronGroup(M, PRECISE_EQUATIONS, threshold="s > 0.5", reset="", namespace=ns,
                        name="bioplaus_lif")  # fmt: skip
        G.v = np.asarray(v_init, dtype=np.float64).reshape(M)
        G.run_regularly(precise_code(spec, xi, uni), when="before_thresholds",
                        name="bioplaus_lif_step")  # fmt: skip
        W = np.asarray(params["W_rec"], dtype=np.float64)
        post, pre = np.nonzero(W)
        if post.size:
            S = Synapses(G, G, "w : 1 (constant)\nJrec_post = w*z_pre : 1 (summed)",
                         namespace=ns, name="bioplaus_lif_rec")  # fmt: skip
            offs = (np.arange(B) * N)[:, None]
            S.connect(i=(offs + pre).ravel(), j=(offs + post).ravel())
            S.w = np.tile(W[post, pre], B)
            scope.network.add(S)
        mon = StateMonitor(G, ["v", "s", "d"], record=True, when="end", name="bioplaus_lif_v")
        scope.network.add(G, mon)
        scope.run(T, dt)
        v = np.asarray(mon.v[:], dtype=np.float64).T.reshape(T, B, N).copy()
        s = np.asarray(mon.s[:], dtype=np.float64).T.reshape(T, B, N).copy()
        d = np.asarray(mon.d[:], dtype=np.float64).T.reshape(T, B, N).copy()
    out = (v,) + ((s,) if spikes else ()) + ((d,) if offsets else ())
    return out if len(out) > 1 else v
