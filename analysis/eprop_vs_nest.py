"""e-prop on a tiny LIF network: NEST's ``eprop_*_bsshslm_2020`` models, an independent
numpy re-implementation of NEST's equations, and bioplaus's ``e-prop`` rule on LIF, one
update side by side (docs/eprop-nest.md).

Run with a Python that has NEST 3.10 (``pip install nest-simulator``) and bioplaus::

    python analysis/eprop_vs_nest.py                               # strong drive
    python analysis/eprop_vs_nest.py --w-in 5 --p-in 0.3 --w-rec 1  # sparse: same spikes
    python analysis/eprop_vs_nest.py --c-reg 3                     # + rate regulariser
    python analysis/eprop_vs_nest.py --no-bioplaus                 # NEST + reference

The network (all of NEST's delays are one step; dt = 1 ms; E_L = 0, C_m = 1)::

    3 inputs (spike_generator -> parrot_neuron) -> 5 eprop_iaf_bsshslm_2020 (all to all,
    no autapses) -> 1 eprop_readout_bsshslm_2020 (mean squared error, fixed target);
    feedback B = W_out^T (eprop_learning_signal_connection_bsshslm_2020, "symmetric").

One update interval of T steps is the learning window; sequence 2 only triggers the
update (NEST applies an interval's update at the first presynaptic spike of the next
interval: every input gets one spike there and a dc current makes every recurrent neuron
fire); the optimizer is gradient descent with η = 1, so ΔW = −g exactly.

NEST's equations, in the steps k = 0 … T−1 of the interval (``regular_spike_arrival =
False``: ζ = 1 − α for the neurons, ζ_out = 1 − κ for the readout; reset at the interval's
start; t_ref = 0 here)::

    v_k   = α v_{k−1} + ζ (W_in x_k + W_rec z_{k−1}) − v_th z_{k−1}      α = e^{−dt/τ_m}
    z_k   = H(v_k − v_th) ,   ψ_k = γ (1 + |v_k − v_th|/w)^{−2}  (fast_sigmoid_derivative;
            0 while refractory)
    y_k   = κ y_{k−1} + ζ_out W_out z_k                                 κ = e^{−dt/τ_out}
    err_k = y_k − y*_k   (readout signal and target both reach the readout one step late:
            the normalisation delay cancels) ,   L_{j,k} = Σ_o B_{jo} err_{o,k}
    z̄_{i,k} = α z̄_{i,k−1} + ζ z^pre_{i,k}   (z^pre = x_k for W_in; for W_rec the spike
            z_{i,k−1} of the step before)
    e_{ji,k} = ψ_{j,k} z̄_{i,k} ,   ē_{ji,k} = κ ē_{ji,k−1} + (1 − κ) e_{ji,k}
    g_in/rec = Σ_k L_{j,k} ē_{ji,k} + r_j Σ_k e_{ji,k} ,
            r_j = c_reg (n_spikes_j/T − f_target dt)/T   (the code's sign; its docs have
            f_target − f_av)
    g_out  = Σ_k err_{o,k} z̄^out_{j,k} ,  z̄^out_{j,k} = κ z̄^out_{j,k−1} + (1 − κ) z_{j,k}
    (÷ T each when average_gradient) ;  ΔW = −η g

The reference is written from these equations and only *checked* against NEST's recorded
traces (v, ψ, readout, error and learning signal match exactly), which is how the time
alignment above was fixed. Its switches ``reset``, ``beta_s`` and ``cut`` step to
bioplaus's conventions; :func:`bioplaus_problem` maps bioplaus's LIF onto the network.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Setup:
    """The tiny network, its input and target (NEST units: ms, mV, pA, pF)."""

    n_in: int = 3
    n_rec: int = 5
    n_out: int = 1
    T: int = 100  # steps of the update interval = learning window
    dt: float = 1.0  # ms
    tau_m: float = 20.0  # recurrent membrane time constant, ms
    tau_out: float = 20.0  # readout membrane time constant (= tau_m_readout), ms
    v_th: float = 1.0  # threshold (E_L = 0, V_m(0) = 0)
    gamma: float = 1.0  # surrogate height γ
    slope: float = 5.0  # surrogate width 1/w = k of bioplaus's 1/(1 + k|v − θ|)²
    c_reg: float = 0.0
    f_target: float = 10.0  # Hz
    average_gradient: bool = False
    p_in: float = 0.12  # input spike probability per step
    w_in_scale: float = 40.0
    w_rec_scale: float = 15.0
    w_out_scale: float = 1.0
    seed: int = 4
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        return math.exp(-self.dt / self.tau_m)

    @property
    def kappa(self) -> float:
        return math.exp(-self.dt / self.tau_out)


def make_data(s: Setup) -> dict[str, Array]:
    """Weights, input spikes x [T, n_in] (none at k = 0: NEST drops a spike on the first
    step of an interval) and the target y* [T, n_out], all from ``s.seed``."""
    rng = np.random.default_rng(s.seed)
    W_in = rng.standard_normal((s.n_rec, s.n_in)) * s.w_in_scale / math.sqrt(s.n_in)
    W_in = np.abs(W_in) * np.where(rng.random(W_in.shape) < 0.8, 1.0, -1.0)
    W_rec = rng.standard_normal((s.n_rec, s.n_rec)) * s.w_rec_scale / math.sqrt(s.n_rec)
    np.fill_diagonal(W_rec, 0.0)
    W_out = rng.standard_normal((s.n_out, s.n_rec)) * s.w_out_scale / math.sqrt(s.n_rec)
    x = (rng.random((s.T, s.n_in)) < s.p_in).astype(float)
    x[0] = 0.0
    k = np.arange(s.T)
    y_star = np.stack(
        [0.5 * np.sin(2 * np.pi * k / s.T * (o + 1)) + 0.3 for o in range(s.n_out)], axis=1
    )
    return {"W_in": W_in, "W_rec": W_rec, "W_out": W_out, "x": x, "y_star": y_star}


# -- NEST ------------------------------------------------------------------------------------
def run_nest(s: Setup, data: dict[str, Array]) -> dict[str, Any]:
    """Simulate the network in NEST for one update; returns ΔW and the recorded traces."""
    import nest

    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.ResetKernel()
    T, dt = s.T, s.dt
    offset_gen, delay = 1, 1  # NEST's hard-coded e-prop delays (one step each)
    nest.set(
        resolution=dt,
        eprop_learning_window=T * dt,
        eprop_update_interval=T * dt,
        eprop_reset_neurons_on_update=True,
        print_time=False,
        total_num_virtual_procs=1,
    )
    width = 1.0 / s.slope
    p_rec = {
        "C_m": 1.0,
        "c_reg": s.c_reg,
        "E_L": 0.0,
        "f_target": s.f_target,
        "I_e": 0.0,
        "regular_spike_arrival": False,
        "surrogate_gradient_function": "fast_sigmoid_derivative",
        "surrogate_gradient_height": s.gamma,
        "surrogate_gradient_width": width,
        "t_ref": 0.0,
        "tau_m": s.tau_m,
        "V_m": 0.0,
        "V_th": s.v_th,
    }
    p_out = {
        "C_m": 1.0,
        "E_L": 0.0,
        "I_e": 0.0,
        "loss": "mean_squared_error",
        "regular_spike_arrival": False,
        "tau_m": s.tau_out,
        "V_m": 0.0,
    }
    gen = nest.Create("spike_generator", s.n_in)
    parrots = nest.Create("parrot_neuron", s.n_in)
    rec = nest.Create("eprop_iaf_bsshslm_2020", s.n_rec, p_rec)
    out = nest.Create("eprop_readout_bsshslm_2020", s.n_out, p_out)
    tgt = nest.Create("step_rate_generator", s.n_out)
    n_steps_sim = 2 * T + offset_gen + 3 * delay
    mm_rec = nest.Create(
        "multimeter",
        {"interval": dt, "record_from": ["V_m", "surrogate_gradient", "learning_signal"]},
    )
    mm_out = nest.Create(
        "multimeter",
        {
            "interval": dt,
            "record_from": ["V_m", "readout_signal", "target_signal", "error_signal"],
        },
    )
    sr = nest.Create("spike_recorder")

    nest.SetDefaults(
        "eprop_synapse_bsshslm_2020",
        {
            "optimizer": {
                "type": "gradient_descent",
                "batch_size": 1,
                "eta": 1.0,
                "Wmin": -1e6,
                "Wmax": 1e6,
            },
            "average_gradient": s.average_gradient,
        },
    )
    syn = {"synapse_model": "eprop_synapse_bsshslm_2020", "delay": dt, "tau_m_readout": s.tau_out}
    static = {"synapse_model": "static_synapse", "delay": dt}
    nest.Connect(gen, parrots, "one_to_one", static)
    nest.Connect(parrots, rec, "all_to_all", {**syn, "weight": data["W_in"]})
    nest.Connect(
        rec, rec, {"rule": "all_to_all", "allow_autapses": False},
        {**syn, "weight": data["W_rec"]},
    )  # fmt: skip
    nest.Connect(rec, out, "all_to_all", {**syn, "weight": data["W_out"]})
    nest.Connect(
        out, rec, "all_to_all",
        {"synapse_model": "eprop_learning_signal_connection_bsshslm_2020", "delay": dt,
         "weight": data["W_out"].T},
    )  # fmt: skip
    nest.Connect(
        tgt, out, "one_to_one",
        {"synapse_model": "rate_connection_delayed", "delay": dt, "receptor_type": 2},
    )  # fmt: skip
    nest.Connect(parrots + rec, sr)
    nest.Connect(mm_rec, rec)
    nest.Connect(mm_out, out)

    # input: sequence 1 = x (step k at time offset_gen + k); sequence 2: one spike per input
    # in its middle, to trigger the update of sequence 1
    for i in range(s.n_in):
        times = [offset_gen + k for k in range(T) if data["x"][k, i] > 0]
        times.append(offset_gen + T + T // 2 + i)
        gen[i].spike_times = [float(t) * dt for t in times]
    # target: step k of the readout's sequence at time offset_gen + 3 delays + k
    t0 = offset_gen + 3 * delay
    tgt.set(
        [
            {
                "amplitude_times": [(t0 + k) * dt for k in range(2 * T)],
                "amplitude_values": list(np.tile(data["y_star"][:, o], 2)),
            }
            for o in range(s.n_out)
        ]
    )
    # every recurrent neuron fires in sequence 2 (a strong current from its 10th to its
    # (T − 10)th step: a spike in sequence 3 would trigger sequence 2's update as well)
    dc = nest.Create(
        "dc_generator",
        {
            "amplitude": 50.0,
            "start": (offset_gen + delay + T + 10) * dt,
            "stop": (offset_gen + delay + 2 * T - 10) * dt,
        },
    )
    nest.Connect(dc, rec, "all_to_all", static)

    def weights(src: Any, dst: Any, shape: tuple[int, int]) -> Array:
        c = nest.GetConnections(source=src, target=dst, synapse_model="eprop_synapse_bsshslm_2020")
        st = c.get(["source", "target", "weight"])
        W = np.zeros(shape)
        s0, d0 = min(src.tolist()), min(dst.tolist())
        for a, b, w in zip(st["source"], st["target"], st["weight"], strict=True):
            W[b - d0, a - s0] = w
        return W

    W0_in = weights(parrots, rec, (s.n_rec, s.n_in))
    W0_rec = weights(rec, rec, (s.n_rec, s.n_rec))
    W0_out = weights(rec, out, (s.n_out, s.n_rec))
    nest.Simulate(n_steps_sim * dt)
    W1_in = weights(parrots, rec, (s.n_rec, s.n_in))
    W1_rec = weights(rec, rec, (s.n_rec, s.n_rec))
    W1_out = weights(rec, out, (s.n_out, s.n_rec))

    def traces(mm: Any, nodes: Any, keys: list[str]) -> dict[str, Array]:
        ev = mm.events
        t = np.rint(np.asarray(ev["times"]) / dt).astype(int)
        snd = np.asarray(ev["senders"]) - min(nodes.tolist())
        res = {}
        for key in keys:
            A = np.full((n_steps_sim + 2, len(nodes)), np.nan)
            A[t, snd] = ev[key]
            res[key] = A
        return res

    tr_rec = traces(mm_rec, rec, ["V_m", "surrogate_gradient", "learning_signal"])
    tr_out = traces(mm_out, out, ["V_m", "readout_signal", "target_signal", "error_signal"])
    ev = sr.events
    spikes = {
        "times": np.rint(np.asarray(ev["times"]) / dt).astype(int),
        "senders": np.asarray(ev["senders"]),
    }
    return {
        "dW_in": W1_in - W0_in,
        "dW_rec": W1_rec - W0_rec,
        "dW_out": W1_out - W0_out,
        "W0_rec": W0_rec,
        "rec": tr_rec,
        "out": tr_out,
        "spikes": spikes,
        "ids": {"parrots": parrots.tolist(), "rec": rec.tolist(), "out": out.tolist()},
        "nest_version": nest.__version__,
    }


# -- the numpy reference ---------------------------------------------------------------------
def reference(
    s: Setup,
    data: dict[str, Array],
    reset: str = "subtract",
    cut: bool = False,
    beta_s: float = 0.0,
) -> dict[str, Any]:
    """NEST's equations (module docstring) re-implemented in numpy, from the weights, input
    and target alone; returns ΔW (η = 1: ΔW = −g) and the traces v, ψ, z, y, err, L.

    Three switches step from NEST's conventions to bioplaus's LIF e-prop
    (docs/eprop-nest.md):

    - ``reset = "hard"``: bioplaus's reset v ← v_reset = 0 at the step of the spike,
      ṽ_k = α v_{k−1} + ζ I_k, v_k = ṽ_k (1 − z_k), instead of NEST's subtraction of v_th
      one step later (``"subtract"``); ψ and z are taken on ṽ_k in both;
    - ``cut = True``: the postsynaptic reset cuts the presynaptic trace of the neuron's
      incoming synapses (bioplaus's decay_t = α (1 − z_{j,k−1}), the derivative of the
      detached reset): z̄_{ji,k} = α (1 − z_{j,k−1}) z̄_{ji,k−1} + ζ z_{i,k};
    - ``beta_s > 0``: a synaptic current filter (bioplaus needs τ_s ≥ dt): the recurrent
      drive and presynaptic variable are q_{k−1}, q_k = β_s q_{k−1} + z_k, instead of
      z_{k−1} (β_s = 0: NEST's delta synapses).
    """
    if reset not in ("subtract", "hard"):
        raise ValueError(f"reset: 'subtract' or 'hard' (got {reset!r})")
    T, N = s.T, s.n_rec
    a, kap = s.alpha, s.kappa
    zeta, zeta_out = 1.0 - a, 1.0 - kap
    W_in, W_rec, W_out, B = data["W_in"], data["W_rec"], data["W_out"], data["W_out"].T
    x, y_star = data["x"], data["y_star"]
    width = 1.0 / s.slope
    v = np.zeros((T, N))
    z = np.zeros((T, N))
    psi = np.zeros((T, N))
    y = np.zeros((T, s.n_out))
    q = np.zeros((T, N))
    v_prev, z_prev, y_prev, q_prev = np.zeros(N), np.zeros(N), np.zeros(s.n_out), np.zeros(N)
    for k in range(T):
        v_k = a * v_prev + zeta * (W_in @ x[k] + W_rec @ q_prev)
        if reset == "subtract":
            v_k = v_k - s.v_th * z_prev
        psi[k] = s.gamma * (1.0 + np.abs(v_k - s.v_th) / width) ** -2  # t_ref = 0
        z_k = (v_k >= s.v_th).astype(float)
        y_k = kap * y_prev + zeta_out * (W_out @ z_k)
        v[k], z[k], y[k] = v_k, z_k, y_k  # v: ṽ, before the hard reset
        v_prev = v_k * (1.0 - z_k) if reset == "hard" else v_k
        z_prev, y_prev = z_k, y_k
        q[k] = q_prev = beta_s * q_prev + z_k
    err = y - y_star
    L = err @ B.T  # [T, N]

    def filt(u: Array, decay: float | Array, gain: float) -> Array:
        out, acc = np.zeros_like(u), np.zeros(u.shape[1:])
        for k in range(u.shape[0]):
            d = decay if np.isscalar(decay) else decay[k]
            acc = d * acc + gain * u[k]
            out[k] = acc
        return out

    z_prev_all = np.vstack([np.zeros((1, N)), z[:-1]])  # z_{k−1}
    q_prev_all = np.vstack([np.zeros((1, N)), q[:-1]])  # q_{k−1} (= z_{k−1} at β_s = 0)
    # decay of the trace of the synapses onto j: α, or α (1 − z_{j,k−1}) with the cut
    decay = a * (1.0 - z_prev_all)[:, :, None] if cut else a
    zbar_in = filt(np.broadcast_to(x[:, None, :], (T, N, s.n_in)).copy(), decay, zeta)
    zbar_rec = filt(np.broadcast_to(q_prev_all[:, None, :], (T, N, N)).copy(), decay, zeta)
    n_spk = z.sum(0)
    reg = s.c_reg * (n_spk / T - s.f_target * s.dt / 1000.0) / T  # [N]

    def grad(zbar: Array) -> Array:
        e = psi[:, :, None] * zbar  # [T, N, M]
        ebar = filt(e, kap, 1.0 - kap)
        return np.einsum("tj,tji->ji", L, ebar) + reg[:, None] * e.sum(0)

    g_in, g_rec = grad(zbar_in), grad(zbar_rec)
    np.fill_diagonal(g_rec, 0.0)
    zbar_out = filt(z, kap, zeta_out)
    g_out = err.T @ zbar_out
    if s.average_gradient:
        g_in, g_rec, g_out = g_in / T, g_rec / T, g_out / T
    return {
        "dW_in": -g_in, "dW_rec": -g_rec, "dW_out": -g_out,
        "v": v, "psi": psi, "z": z, "y": y, "err": err, "L": L,
    }  # fmt: skip


# -- bioplaus --------------------------------------------------------------------------------
def bioplaus_problem(s: Setup, data: dict[str, Array]) -> dict[str, Any]:
    """bioplaus's LIF as close to NEST's network as it gets (seconds: dt = 1 ms …).

    Same: dt, τ_m, θ = v_th, v_rest = 0, t_ref = 0, no noise (σ_v = 0, I_0 = 0), grid
    spiking, the surrogate 1/(1 + k|ṽ − θ|)² = NEST's fast_sigmoid_derivative with γ = 1,
    width 1/k, and the drive ζ W_in x of the inputs. Re-parametrised, so that the forward
    pass is the same function of the same weights:

    - synapses: bioplaus's are current-based with τ_s ≥ dt (its spec refuses less), NEST's
      delta: τ_s = dt and W_rec' = W_rec/κ_s, so that a spike's first-step PSP is NEST's
      (bioplaus's recurrent drive is κ_s W_rec' q_{k−1}, κ_s = τ_s(β_s − β_m)/((τ_s −
      τ_m)(1 − β_m)), q_k = β_s q_{k−1} + z_k); the tail β_s^n of q remains a difference;
    - the readout: τ_r = τ_out and W_out' = (1 − κ) W_out (bioplaus's o = W_out' r with
      r_k = κ r_{k−1} + z_k; NEST's y_k = κ y_{k−1} + (1 − κ) W_out z_k).

    Returns the spec, the params, inputs [T, 1, n_in], targets [T, 1, n_out] and the
    factors ``to_nest`` that turn bioplaus's ∂L/∂W' into NEST's Σ_t gradient of W:
    ∂L/∂W = ∂L/∂W' ∂W'/∂W, times T (bioplaus's loss is the mean over the T steps,
    ½ (o − y)²; NEST's sum without ``average_gradient``).

    The rate regulariser: NEST's g += c_reg (n_j/T − f_target dt)/T Σ_k e_k (per-step
    rates), bioplaus's ∂̂E_reg/∂W = c_reg' (f̄_j − f0) Σ_k e_k/(T dt) (Hz, mean loss), so
    c_reg' = c_reg dt²/T (dt in s; with or without ``average_gradient``), f0 = f_target.
    """
    import bioplaus as bp
    from bioplaus.backends.torch.lif import consts_of

    spec = bp.LIFSpec(
        n_in=s.n_in, n_rec=s.n_rec, n_out=s.n_out,
        tau_m=s.tau_m * 1e-3, tau_s=s.dt * 1e-3, tau_r=s.tau_out * 1e-3, theta=s.v_th,
        v_rest=0.0, v_reset=0.0, t_ref=0.0, sigma_v=0.0, sigma=0.0, bias_current=0.0,
        dt=s.dt * 1e-3, surrogate_slope=s.slope, spiking="grid",
    )  # fmt: skip
    kappa_s = consts_of(spec).kappa
    one_m_kappa = 1.0 - s.kappa
    params = {
        "W_in": data["W_in"].copy(),
        "W_rec": data["W_rec"] / kappa_s,
        "W_out": data["W_out"] * one_m_kappa,
    }
    n = 1.0 if s.average_gradient else float(s.T)
    to_nest = {"W_in": n, "W_rec": n / kappa_s, "W_out": n * one_m_kappa}
    return {
        "spec": spec,
        "params": params,
        "inputs": data["x"][:, None, :].copy(),
        "targets": data["y_star"][:, None, :].copy(),
        "to_nest": to_nest,
        "kappa_s": kappa_s,
        "beta_s": consts_of(spec).beta_s,
        "rule_options": (
            {"c_reg": s.c_reg * (s.dt * 1e-3) ** 2 / s.T, "f0": s.f_target} if s.c_reg else {}
        ),
    }


def run_bioplaus(s: Setup, data: dict[str, Array], rule: str = "e-prop") -> dict[str, Any]:
    """bioplaus's forward pass (spikes) and ``bp.estimate(rule, …)`` of the problem above,
    as NEST's ΔW = −g (float64)."""
    import bioplaus as bp

    pb = bioplaus_problem(s, data)
    v, spk = bp.simulate(pb["spec"], pb["inputs"], pb["params"], dtype="float64", spikes=True)
    res: dict[str, Any] = {"z": spk[:, 0, :], "v": v[:, 0, :]}
    if rule:
        est = bp.estimate(
            rule, pb["spec"], pb["params"], pb["inputs"], pb["targets"], dtype="float64",
            **pb["rule_options"],
        )  # fmt: skip
        for w, key in (("W_in", "dW_in"), ("W_rec", "dW_rec"), ("W_out", "dW_out")):
            res[key] = -est[w] * pb["to_nest"][w]
    return res


# -- comparison ------------------------------------------------------------------------------
MATRICES = ("dW_in", "dW_rec", "dW_out")


def entries(key: str, A: Array) -> Array:
    """The compared entries of a ΔW: all of them, but the off-diagonal ones of ΔW_rec (NEST
    has no autapses; bioplaus's W_rec diagonal is zero at initialisation only)."""
    A = np.asarray(A, float)
    if key == "dW_rec":
        return A[~np.eye(A.shape[0], dtype=bool)]
    return A.ravel()


def similarity(a: Array, b: Array, key: str = "") -> dict[str, float]:
    """max |a − b|, ‖a − b‖/‖b‖ and cos(a, b) over ``entries(key, ·)``."""
    a, b = entries(key, a), entries(key, b)
    nb = float(np.linalg.norm(b))
    na = float(np.linalg.norm(a))
    return {
        "max_abs": float(np.abs(a - b).max()),
        "rel": float(np.linalg.norm(a - b) / nb) if nb > 0 else float("nan"),
        "cos": float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan"),
    }


def columns_for(s: Setup, data: dict[str, Array], with_bioplaus: bool) -> dict[str, Any]:
    """The chain NEST → numpy reference (NEST's conventions) → + hard reset → + synaptic
    filter β_s = e^{−1} (τ_s = dt) → + trace cut (= bioplaus's conventions) → bioplaus."""
    cols: dict[str, Any] = {"NEST": run_nest(s, data)}
    cols["ref"] = reference(s, data)
    if with_bioplaus:
        bs = bioplaus_problem(s, data)["beta_s"]
        cols["+hard"] = reference(s, data, reset="hard")
        cols["+tau_s"] = reference(s, data, reset="hard", beta_s=bs)
        cols["+cut"] = reference(s, data, reset="hard", beta_s=bs, cut=True)
        if has_bioplaus_eprop():
            cols["bioplaus"] = run_bioplaus(s, data)
    return cols


def has_bioplaus_eprop() -> bool:
    """Whether bioplaus (with torch) is importable and has the ``e-prop`` rule."""
    try:
        import bioplaus  # noqa: F401  (registers the rules)
        from bioplaus.registry import RULES
    except ImportError:
        return False
    return "e-prop" in RULES


def table(columns: dict[str, dict[str, Array]]) -> str:
    """Per matrix: the entries side by side; then each column against NEST and against the
    column before it."""
    lines = []
    names = list(columns)
    for key in MATRICES:
        lines.append(f"\n{key}: NEST's ΔW = −g (η = 1), entries j,i (post j, pre i)")
        lines.append("  j,i " + "".join(f"{n:>13s}" for n in names))
        A = {n: np.asarray(columns[n][key]) for n in names}
        for idx in np.ndindex(A["NEST"].shape):
            if key == "dW_rec" and idx[0] == idx[1]:
                continue
            lines.append(f"  {idx[0]},{idx[1]} " + "".join(f"{A[n][idx]:13.8f}" for n in names))
        lines.append(f"  {'':22s}{'vs NEST':>33s}    {'vs the column before':>33s}")
        lines.append(f"  {'':22s}{'rel':>11s}{'cos':>22s}    {'rel':>11s}{'cos':>22s}")
        for prev, n in zip(names[:-1], names[1:], strict=True):
            a, b = similarity(A[n], A["NEST"], key), similarity(A[n], A[prev], key)
            lines.append(
                f"  {n:>10s} vs {prev:<8s}  {a['rel']:11.3e}{a['cos']:22.15f}    "
                f"{b['rel']:11.3e}{b['cos']:22.15f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--c-reg", type=float, default=0.0, help="NEST's c_reg (rate regulariser)")
    ap.add_argument("--average-gradient", action="store_true", help="NEST: g ÷ T")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--w-in", type=float, default=Setup.w_in_scale, help="input weight scale")
    ap.add_argument("--w-rec", type=float, default=Setup.w_rec_scale, help="W_rec scale")
    ap.add_argument("--p-in", type=float, default=Setup.p_in, help="input spike probability")
    ap.add_argument("--no-bioplaus", action="store_true", help="NEST and the reference only")
    ap.add_argument("--json", help="write the matrices and the similarities here")
    args = ap.parse_args(argv)
    s = Setup(
        c_reg=args.c_reg, average_gradient=args.average_gradient, seed=args.seed, T=args.T,
        w_in_scale=args.w_in, w_rec_scale=args.w_rec, p_in=args.p_in,
    )  # fmt: skip
    data = make_data(s)
    cols = columns_for(s, data, with_bioplaus=not args.no_bioplaus)
    print(f"NEST {cols['NEST']['nest_version']}; setup: {asdict(s)}")
    z_nest = spike_matrix(cols["NEST"], s)
    print(f"reference spike trains == NEST's: {bool(np.array_equal(z_nest, cols['ref']['z']))}")
    for n, c in cols.items():
        z = z_nest if n == "NEST" else c["z"]
        print(f"  spikes per recurrent neuron, {n:>8s}: {z.sum(0).astype(int).tolist()}")
    if "bioplaus" in cols:
        same = np.array_equal(cols["bioplaus"]["z"], cols["+tau_s"]["z"])
        print(f"bioplaus's spike trains (bp.simulate) == the +tau_s reference's: {same}")
    elif not args.no_bioplaus:
        print("bioplaus's e-prop not available here: its column is left out")
    print(table(cols))
    if args.json:
        mats = {n: {k: np.asarray(c[k]).tolist() for k in MATRICES} for n, c in cols.items()}
        names = list(cols)
        sims = {n: {k: similarity(cols[n][k], cols["NEST"][k], k) for k in MATRICES} for n in names}
        with open(args.json, "w") as fh:
            json.dump({"setup": asdict(s), "nest_version": cols["NEST"]["nest_version"],
                       "matrices": mats, "vs_nest": sims}, fh, indent=1)  # fmt: skip
    return 0


def spike_matrix(nest_res: dict[str, Any], s: Setup) -> Array:
    """NEST's recurrent spikes of the interval as z [T, N] (a spike of step k is stamped
    k + offset_gen + delay_in_rec + 1 = k + 3)."""
    z = np.zeros((s.T, s.n_rec))
    sp, rec = nest_res["spikes"], nest_res["ids"]["rec"]
    for j, n in enumerate(rec):
        k = sp["times"][sp["senders"] == n] - 3
        k = k[(k >= 0) & (k < s.T)]
        z[k, j] = 1.0
    return z


if __name__ == "__main__":
    sys.exit(main())
