"""Pure step function of the LIF network (DESIGN §1), exact exponential integration.

The model (voltages in units of the threshold scale, times in seconds)::

    τ_m dv/dt = −(v − v_rest) + I_syn + J_ext + σ_v √τ_m ξ(t)
    τ_s dI_syn/dt = −I_syn ;   on a spike of j: I_syn += W_rec[:, j]
    τ_r dr/dt = −r ;            on a spike of j: r_j += 1
    v ≥ θ → spike, v ← v_reset, v clamped for t_ref ;   o = W_out D_rec r + b_out

with J_ext = W_in D_in u + b + I_0 held constant over a step. Decay factors
β_m = e^{−dt/τ_m}, β_s = e^{−dt/τ_s}, β_r = e^{−dt/τ_r}. Over one step the linear system
(v, I_syn) is solved *exactly* for piecewise-constant J_ext (Rotter & Diesmann 1999)::

    v_t = v_rest + β_m (v_{t−1} − v_rest) + (1 − β_m) J_t                       (1)
    J_t = W_in û_t + b + I_0 + κ W_rec q_{t−1} + g_v ξ_t (+ η_t in a noisy pass)
    κ   = τ_s (β_s − β_m) / ((τ_s − τ_m)(1 − β_m))        (→ dt β_m/(τ_m(1 − β_m)) at τ_s = τ_m)
    g_v = σ_v √((1 − β_m²)/2) / (1 − β_m)

where q_t = β_s q_{t−1} + s_t is the presynaptic trace (I_syn = W_rec q after the jumps of
step t), and g_v ξ_t is the exact Ornstein–Uhlenbeck increment of the membrane noise,
σ_v √((1 − β_m²)/2) ξ_t, written as a current held for one step. J_t is the total
*synaptic drive*: everything the weights W = [W_in, W_rec, b] change enters v through it,
a_t = W z_t with z_t = [û_t, κ q_{t−1}, 1], so ∂v_t/∂(W z_t) = 1 − β_m — the LIF analogue
of the rate network's Euler factor α (with α = 1 for J itself).

Spike, reset and refractoriness (t_ref = n_ref dt; brian2's convention: after a spike at
step k, v is clamped on steps k+1 … k+n_ref−1 and integrates again from k+n_ref)::

    active_t = (c_{t−1} = 0)
    ṽ_t = (1) if active_t else v_{t−1}
    s_t = H(ṽ_t − θ) · active_t
    v_t = ṽ_t − s_t (ṽ_t − v_reset)
    c_t = n_ref − 1 if s_t else max(c_{t−1} − 1, 0)
    q_t = β_s q_{t−1} + s_t ,   r_t = β_r r_{t−1} + s_t ,   o_t = W_out D_rec r_t + b_out

Only the BPTT baseline differentiates through H: forward H(x), backward the fast-sigmoid
surrogate H'(x) ≈ 1/(1 + k|x|)² (SuperSpike / snnTorch's ``fast_sigmoid``). The
perturbation rules never need it.

A constant supra-threshold drive J (with σ_v = 0, v_reset < θ < v_rest + J) gives the
analytic inter-spike interval t_ref + τ_m ln((v_rest + J − v_reset)/(v_rest + J − θ)); the
discrete map hits it to within one step (tests/backends/torch/test_lif_torch.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from ...params import init_lif_params  # noqa: F401  (the model's, re-exported)
from ...spec import LIFSpec
from .rate import RateParams, decorrelate, to_torch

Tensor = torch.Tensor
LIFParams = RateParams  # same entries: W_in, W_rec, W_out, b, b_out, D_in, D_rec

__all__ = [
    "LIFConsts",
    "LIFParams",
    "LIFState",
    "SPIKE_FNS",
    "consts_of",
    "external_drive",
    "init_lif_params",
    "init_state",
    "lif_step",
    "readout",
    "to_torch",
]


class LIFConsts(NamedTuple):
    """Constants of the discrete LIF map (see the module docstring)."""

    beta_m: float
    beta_s: float
    beta_r: float
    kappa: float
    g_v: float  # background-noise current gain σ_v √((1 − β_m²)/2)/(1 − β_m)
    theta: float
    v_rest: float
    v_reset: float
    n_ref: int
    bias_current: float
    sigma: float  # perturbation σ of a noisy pass
    slope: float  # surrogate slope k
    detach_reset: bool

    @property
    def alpha(self) -> float:
        """∂v_t/∂J_t = 1 − β_m."""
        return 1.0 - self.beta_m


def consts_of(spec: LIFSpec) -> LIFConsts:
    """The constants of ``spec``'s exact discretisation."""
    bm = math.exp(-spec.dt / spec.tau_m)
    bs = math.exp(-spec.dt / spec.tau_s)
    if abs(spec.tau_s - spec.tau_m) < 1e-12 * spec.tau_m:
        p_vi = spec.dt / spec.tau_m * bm
    else:
        p_vi = spec.tau_s * (bs - bm) / (spec.tau_s - spec.tau_m)
    return LIFConsts(
        beta_m=bm,
        beta_s=bs,
        beta_r=math.exp(-spec.dt / spec.tau_r),
        kappa=p_vi / (1.0 - bm),
        g_v=spec.sigma_v * math.sqrt((1.0 - bm * bm) / 2.0) / (1.0 - bm),
        theta=spec.theta,
        v_rest=spec.v_rest,
        v_reset=spec.v_reset,
        n_ref=spec.n_ref,
        bias_current=spec.bias_current,
        sigma=spec.sigma,
        slope=spec.surrogate_slope,
        detach_reset=spec.detach_reset,
    )


class _SurrogateSpike(torch.autograd.Function):
    """Forward H(x) = [x ≥ 0]; backward 1/(1 + k|x|)² (fast sigmoid)."""

    @staticmethod
    def forward(ctx, x: Tensor, slope: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad / (1.0 + ctx.slope * x.abs()) ** 2, None


def heaviside(x: Tensor, slope: float) -> Tensor:
    """H(x) = [x ≥ 0], no gradient (the model itself)."""
    return (x >= 0).to(x.dtype)


def surrogate_spike(x: Tensor, slope: float) -> Tensor:
    """H(x) forward, fast-sigmoid surrogate 1/(1 + k|x|)² backward (BPTT baseline)."""
    return _SurrogateSpike.apply(x, slope)


def smooth_spike(x: Tensor, slope: float) -> Tensor:
    """F(x) = ½ + x/(1 + k|x|), the smooth function whose derivative *is* the surrogate
    1/(1 + k|x|)². A network with F in place of H is the "surrogate model": autograd of
    it is a true gradient, checkable by finite differences (tests only)."""
    return 0.5 + x / (1.0 + slope * x.abs())


SPIKE_FNS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "heaviside": heaviside,
    "surrogate": surrogate_spike,
    "smooth": smooth_spike,
}


# -- state and step ------------------------------------------------------------------------
class LIFState(NamedTuple):
    """v: membrane potential; q: presynaptic trace (I_syn = W_rec q); r: filtered spike
    train; c: refractory steps left; s: spikes of the last step. All [B, N]."""

    v: Tensor
    q: Tensor
    r: Tensor
    c: Tensor
    s: Tensor


def init_state(p: LIFParams, c: LIFConsts, batch: int, v0: Tensor | None = None) -> LIFState:
    """v_{−1} = v_rest (or ``v0``), q = r = 0, not refractory."""
    z = p.W_rec.new_zeros((batch, p.W_rec.shape[0]))
    v = z + c.v_rest if v0 is None else v0.expand_as(z).clone()
    return LIFState(v, z, z, z, z)


def external_drive(p: LIFParams, c: LIFConsts, u: Tensor) -> Tensor:
    """W_in D_in u + b + I_0 for any leading shape (one matmul for all steps)."""
    drive = decorrelate(p.D_in, u) @ p.W_in.T + c.bias_current
    return drive if p.b is None else drive + p.b


def lif_step(
    p: LIFParams,
    c: LIFConsts,
    state: LIFState,
    ext_t: Tensor,
    noise_t: Tensor | None = None,
    spike_fn: str = "heaviside",
) -> tuple[LIFState, Tensor]:
    """One exact step; returns the new state and the total synaptic drive J_t [B, N].

    ``ext_t`` = W_in û_t + b + I_0; ``noise_t`` the noise *current* of this step (g_v ξ_t,
    plus the perturbation η_t in a noisy pass), or None.
    """
    J = torch.addmm(ext_t, state.q, p.W_rec.T, alpha=c.kappa)
    if noise_t is not None:
        J = J + noise_t
    v_free = c.v_rest + c.beta_m * (state.v - c.v_rest) + (1.0 - c.beta_m) * J
    active = state.c <= 0
    v_tilde = torch.where(active, v_free, state.v)
    s = SPIKE_FNS[spike_fn](v_tilde - c.theta, c.slope) * active.to(v_tilde.dtype)
    s_reset = s.detach() if c.detach_reset else s
    v = v_tilde - s_reset * (v_tilde - c.v_reset)
    fired = s.detach() > 0.5
    cnt = torch.where(
        fired, torch.full_like(state.c, float(c.n_ref - 1)), (state.c - 1).clamp_min(0)
    )
    q = c.beta_s * state.q + s
    r = c.beta_r * state.r + s
    return LIFState(v, q, r, cnt, s), J


def readout(p: LIFParams, r: Tensor) -> Tensor:
    """o = W_out D_rec r + b_out."""
    o = decorrelate(p.D_rec, r) @ p.W_out.T
    return o if p.b_out is None else o + p.b_out


def analytic_rate(spec: LIFSpec, J: float) -> float:
    """Firing rate of one noise-free neuron under constant drive J (v_rest + J > θ)::

    ν = 1 / (t_ref + τ_m ln((v_rest + J − v_reset)/(v_rest + J − θ)))
    """
    a, b = spec.v_rest + J - spec.v_reset, spec.v_rest + J - spec.theta
    if b <= 0:
        return 0.0
    return 1.0 / (spec.t_ref + spec.tau_m * math.log(a / b))


def discrete_rate(spec: LIFSpec, J: float) -> float:
    """The rate of the discrete map for constant J: ISI = (n_ref − 1 + ⌈T*/dt⌉) dt with
    T* = τ_m ln(...) the continuous first-passage time from v_reset (when n_ref ≥ 1)."""
    a, b = spec.v_rest + J - spec.v_reset, spec.v_rest + J - spec.theta
    if b <= 0:
        return 0.0
    n_cross = math.ceil(spec.tau_m * math.log(a / b) / spec.dt - 1e-9)
    return 1.0 / ((max(spec.n_ref - 1, 0) + n_cross) * spec.dt)


__all__ += ["analytic_rate", "discrete_rate", "heaviside", "smooth_spike", "surrogate_spike"]
