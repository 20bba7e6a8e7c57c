"""The LIF network on torch, one package: here its parameters, constants, pure step, readout
and surrogate; beside it the time loops (``rollout.py``: the reference rollout on the one
time loop of ``scan.py``, and bp.simulate's fused grid loop), surrogate BPTT (``bptt.py``),
what its paired passes perturb (``perturb.py``, run by the one driver of ``../perturb.py``),
its object in the one online loop (``online.py``, run by ``../online.py``) and the entry
points its network type calls (``train.py``).

Pure step function of the LIF network (DESIGN §1), exact exponential integration.

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

Spike, reset and refractoriness, ``spiking = "grid"`` (spikes on the step grid; t_ref =
n_ref dt: after a spike at the end of step k, v is clamped on steps k+1 … k+n_ref — exactly
t_ref — and integrates again from step k+n_ref+1)::

    active_t = (c_{t−1} = 0)
    ṽ_t = (1) if active_t else v_{t−1}
    s_t = H(ṽ_t − θ) · active_t
    v_t = ṽ_t − s_t (ṽ_t − v_reset)
    c_t = n_ref if s_t else max(c_{t−1} − 1, 0)
    q_t = β_s q_{t−1} + s_t ,   r_t = β_r r_{t−1} + s_t ,   o_t = W_out D_rec r_t + b_out

``spiking = "precise"`` (continuous-time spikes, NEST's ``*_ps`` models as the anchor): the
refractory counter c is real (steps left), a spike carries its offset d_t ∈ [0, 1) (steps
from the spike to the step's end), and within a step:

- the neuron is free for the last f = clamp(1 − c_{t−1}, 0, 1) of the step; over that
  interval v is propagated exactly (β_m^f, and the exact OU increment σ_v √((1 − β_m^{2f})/2) ξ_t
  of the membrane noise when ξ_t is passed as ``bg``);
- a deterministic crossing (v_t ≥ θ at the step's end) happens at the time the exponential
  path through the two ends reaches θ: t* = τ_m ln((v_t − v_0)/((v_t − θ) + β_m^f (θ − v_0)));
- otherwise the membrane noise may have crossed θ between the ends: the Ornstein–Uhlenbeck
  bridge does so with probability P = exp(−4 (θ − v_0)(θ − v_t) β_m^f / (σ_v² (1 − β_m^{2f})))
  (the OU process is a time-changed Brownian motion, for which this is the exact bridge
  formula with a straight boundary; → exp(−2ab/(σ_v² dt/τ_m)) as dt → 0); a spike is drawn
  with one uniform per neuron and step (``uniform``, from the run's generator), at the time
  f·(θ − v_0)/((θ − v_0) + (θ − v_t)) of the free interval (the bridge's hitting time
  τ/(T − τ) is inverse Gaussian with mean (θ − v_0)/(θ − v_t));
- after a spike at offset d: v ← v_reset, c_t = t_ref/dt − d (refractory for exactly t_ref
  from the spike), q_t = β_s q_{t−1} + β_s^d s_t, r_t = β_r r_{t−1} + β_r^d s_t (the traces
  receive the spike at its time), and the part of the postsynaptic potential the spike
  caused before the step's end, W_rec ψ(d dt) with ψ(Δ) = τ_s(e^{−Δ/τ_s} − e^{−Δ/τ_m})/(τ_s − τ_m),
  enters the next step's drive as ζ(d) = β_m ψ(d dt)/(1 − β_m) next to κ q (one matmul:
  z = κ q_{t−1} + ζ(d_{t−1}) s_{t−1}). A neuron whose v starts a step at or above θ (that
  late PSP) spikes at the step's start.

At most one spike per neuron and step (with t_ref < dt a second crossing within the step
waits for the next one).

Only the BPTT baseline differentiates through H: forward H(x), backward the fast-sigmoid
surrogate H'(x) ≈ 1/(1 + k|x|)² (SuperSpike / snnTorch's ``fast_sigmoid``). The
perturbation rules never need it.

A constant supra-threshold drive J (with σ_v = 0, v_reset < θ < v_rest + J) gives the
analytic inter-spike interval t_ref + τ_m ln((v_rest + J − v_reset)/(v_rest + J − θ)); the
grid map hits it to within one step, the precise map exactly
(tests/backends/torch/lif/test_lif_torch.py, tests/backends/test_lif_convergence.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from ....params import init_lif_params  # noqa: F401  (the model's, re-exported)
from ....spec import LIFSpec
from ..tensors import RecurrentParams, decorrelate, to_torch

Tensor = torch.Tensor
LIFParams = RecurrentParams  # same entries: W_in, W_rec, W_out, b, b_out, D_in, D_rec

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
    precise: bool = False  # spiking = "precise" (module docstring)
    sigma_v: float = 0.0  # membrane noise σ_v (the bridge-crossing probability)
    ref_steps: float = 0.0  # t_ref / dt (real; = n_ref on the grid)
    dt: float = 1.0
    tau_m: float = 1.0
    tau_s: float = 1.0

    @property
    def alpha(self) -> float:
        """∂v_t/∂J_t = 1 − β_m."""
        return 1.0 - self.beta_m

    @property
    def needs_uniform(self) -> bool:
        """Whether a step draws the bridge-crossing uniforms (precise spiking, σ_v > 0)."""
        return self.precise and self.sigma_v > 0


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
        precise=spec.spiking == "precise",
        sigma_v=spec.sigma_v,
        ref_steps=spec.t_ref / spec.dt,
        dt=spec.dt,
        tau_m=spec.tau_m,
        tau_s=spec.tau_s,
    )


def surrogate_denominator(x: Tensor, slope: float) -> Tensor:
    """(1 + k|x|)², the denominator of the fast-sigmoid surrogate derivative 1/(1 + k|x|)²
    (a new tensor; ``x`` is left as it is)."""
    d = x.abs().mul_(slope).add_(1.0)
    return d.mul_(d)


def surrogate_derivative(x: Tensor, slope: float) -> Tensor:
    """The fast-sigmoid surrogate derivative of the spike, 1/(1 + k|x|)² (x = ṽ − θ): the
    backward of :func:`surrogate_spike` and e-prop's pseudo-derivative ψ."""
    return 1.0 / surrogate_denominator(x, slope)


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
        return grad / surrogate_denominator(x, ctx.slope), None


class _SurrogateSpikeAt(_SurrogateSpike):
    """H(v − θ) with the fast-sigmoid backward, v − θ formed inside (one autograd node)."""

    @staticmethod
    def forward(ctx, v: Tensor, theta: float, slope: float) -> Tensor:  # type: ignore[override]
        x = v - theta
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        return _SurrogateSpike.backward(ctx, grad)[0], None, None


def _spike(spike_fn: str, v: Tensor, c: LIFConsts) -> Tensor:
    if spike_fn == "surrogate":
        return _SurrogateSpikeAt.apply(v, c.theta, c.slope)
    return SPIKE_FNS[spike_fn](v - c.theta, c.slope)


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
    train; c: refractory steps left (real with precise spiking); s: spikes of the last step;
    d: their offsets, steps from the spike to the step's end (0 on the grid). All [B, N]."""

    v: Tensor
    q: Tensor
    r: Tensor
    c: Tensor
    s: Tensor
    d: Tensor | None = None


def init_state(p: LIFParams, c: LIFConsts, batch: int, v0: Tensor | None = None) -> LIFState:
    """v_{−1} = v_rest (or ``v0``), q = r = 0, not refractory."""
    z = p.W_rec.new_zeros((batch, p.W_rec.shape[0]))
    v = z + c.v_rest if v0 is None else v0.expand_as(z).clone()
    return LIFState(v, z, z, z, z, z if c.precise else None)


def external_drive(p: LIFParams, c: LIFConsts, u: Tensor) -> Tensor:
    """W_in D_in u + b + I_0 for any leading shape (one matmul for all steps)."""
    drive = decorrelate(p.D_in, u) @ p.W_in.T + c.bias_current
    return drive if p.b is None else drive + p.b


def late_psp_gain(c: LIFConsts, d: Tensor) -> Tensor:
    """ζ(d) = β_m ψ(d·dt)/(1 − β_m): the part of a spike's PSP that arose between the spike
    (d steps before the step's end) and the step's end, as a current of the next step."""
    x = d * c.dt
    if abs(c.tau_s - c.tau_m) < 1e-12 * c.tau_m:
        psi = x / c.tau_m * torch.exp(-x / c.tau_m)
    else:
        psi = c.tau_s / (c.tau_s - c.tau_m) * (torch.exp(-x / c.tau_s) - torch.exp(-x / c.tau_m))
    return psi * (c.beta_m / (1.0 - c.beta_m))


def pre_spike_potential(
    c: LIFConsts, v: Tensor, ref: Tensor, J: Tensor
) -> tuple[Tensor, Tensor | float, Tensor | None]:
    """The membrane potential before the spike test of grid spiking, its weight and the
    active mask: ṽ_t = v_rest + w_t (v_{t−1} − v_rest) + (1 − w_t) J_t as one lerp (fewer
    autograd nodes for BPTT), w_t = β_m, or 1 while refractory (``ref`` > 0: torch's lerp
    returns v exactly there). Returns (ṽ_t, w_t, active_t); w_t is the float β_m and
    active_t None when the model has no refractory steps (n_ref = 0)."""
    J_inf = J if c.v_rest == 0.0 else J + c.v_rest
    J_inf = J_inf.to(v.dtype)  # a no-op, except under bf16 autocast (precision.py)
    if c.n_ref > 0:
        with torch.no_grad():
            active = ref <= 0
            w = torch.full_like(v, c.beta_m).masked_fill_(~active, 1.0)
        return torch.lerp(J_inf, v, w), w, active
    return torch.lerp(J_inf, v, c.beta_m), c.beta_m, None


def lif_step(
    p: LIFParams,
    c: LIFConsts,
    state: LIFState,
    ext_t: Tensor,
    noise_t: Tensor | None = None,
    spike_fn: str = "heaviside",
    *,
    bg: Tensor | None = None,
    uniform: Tensor | None = None,
) -> tuple[LIFState, Tensor]:
    """One exact step; returns the new state and the total synaptic drive J_t [B, N].

    ``ext_t`` = W_in û_t + b + I_0; ``noise_t`` a noise *current* of this step held for the
    step (the perturbation η_t of a noisy pass; or g_v ξ_t), or None; ``bg`` the standard
    normal ξ_t of the membrane noise (enters as g_v ξ_t; with precise spiking, as the exact
    OU increment over the free part of the step). ``uniform`` U_t ~ U(0, 1) [B, N]: the
    bridge-crossing draw of precise spiking (required there when σ_v > 0).
    """
    if c.precise:
        return _precise_step(p, c, state, ext_t, noise_t, spike_fn, bg, uniform)
    if bg is not None:
        bg = c.g_v * bg
        noise_t = bg if noise_t is None else noise_t + bg
    J = torch.addmm(ext_t, state.q, p.W_rec.T, alpha=c.kappa)
    if noise_t is not None:
        J = J + noise_t
    # ṽ = v_rest + β_m (v − v_rest) + (1 − β_m) J as one lerp (fewer autograd nodes for
    # BPTT); while refractory the weight is 1, and torch's lerp returns v exactly there
    v_tilde, _, active = pre_spike_potential(c, state.v, state.c, J)
    s = _spike(spike_fn, v_tilde, c)
    if active is not None and (not c.detach_reset or spike_fn == "smooth"):
        # a clamped v (= v_reset < θ) never spikes; the mask only matters for gradients
        # (with a detached reset the clamped v carries none)
        s = s * active.to(v_tilde.dtype)
    with torch.no_grad():
        fired = s.detach() > 0.5
    if c.detach_reset and spike_fn != "smooth":
        v = v_tilde.masked_fill(fired, c.v_reset)  # = ṽ − sg[s](ṽ − v_reset), s ∈ {0, 1}
    else:
        s_reset = s.detach() if c.detach_reset else s
        v = v_tilde - s_reset * (v_tilde - c.v_reset)
    if c.n_ref > 0:
        with torch.no_grad():
            cnt = (state.c - 1).clamp_min_(0).masked_fill_(fired, float(c.n_ref))
    else:
        cnt = state.c
    q = torch.add(s, state.q, alpha=c.beta_s)
    r = torch.add(s, state.r, alpha=c.beta_r)
    return LIFState(v, q, r, cnt, s), J


def _precise_step(p, c, st, ext_t, noise_t, spike_fn, bg, uniform):
    """``lif_step`` with precise spiking (module docstring)."""
    d_prev = st.d if st.d is not None else torch.zeros_like(st.v)
    pre = st.q * c.kappa + late_psp_gain(c, d_prev) * st.s
    J = ext_t + pre @ p.W_rec.T
    if noise_t is not None:
        J = J + noise_t
    v0 = st.v
    with torch.no_grad():
        f = (1.0 - st.c).clamp_(0.0, 1.0)  # free fraction of the step (at its end)
        bf = torch.exp(f * math.log(c.beta_m))  # β_m^f
        free = f > 0
    v1 = c.v_rest + bf * (v0 - c.v_rest) + (1.0 - bf) * J
    if bg is not None and c.sigma_v > 0:
        v1 = v1 + (c.sigma_v / math.sqrt(2.0)) * torch.sqrt(1.0 - bf * bf) * bg
        J = J + c.g_v * bg
    v1 = torch.where(free, v1, v0)
    with torch.no_grad():
        v1d, v0d = v1.detach(), v0.detach()
        a = c.theta - v0d  # distance to θ at the start of the free interval
        b = c.theta - v1d  # … at the step's end
        start = free & (a <= 0)
        det = free & (b <= 0) & ~start
        # crossing time of the exponential path through both ends (fraction of a step)
        ratio = (v1d - v0d) / ((v1d - c.theta) + bf * a)
        t_det = torch.log(ratio.clamp_min(1.0)) * (c.tau_m / c.dt)
        t_det = torch.minimum(t_det, f)
        spike = start | det
        t_in = torch.where(det, t_det, torch.zeros_like(f))
        if c.sigma_v > 0:
            if uniform is None:
                raise ValueError("uniform: precise spiking with sigma_v > 0 needs the "
                                 "bridge-crossing uniforms of the step")  # fmt: skip
            below = free & (a > 0) & (b > 0)
            ab = torch.where(below, a * b, torch.ones_like(a))
            den = (c.sigma_v * c.sigma_v) * (1.0 - bf * bf)
            prob = torch.exp(-4.0 * ab * bf / den.clamp_min(1e-300))
            bridge = below & (uniform < prob)
            t_in = torch.where(bridge, f * a / (a + b).clamp_min(1e-300), t_in)
            spike = spike | bridge
        t_sp = (1.0 - f) + t_in  # spike time, steps from the step's start
        d = torch.where(spike, (1.0 - t_sp).clamp_(0.0, 1.0), torch.zeros_like(f))
        spk = spike.to(v1.dtype)
    h = SPIKE_FNS[spike_fn](v1 - c.theta, c.slope) * free.to(v1.dtype)
    s = h + (spk - h).detach() if h.requires_grad else spk
    s_reset = s.detach() if c.detach_reset else s
    v = v1 - s_reset * (v1 - c.v_reset)
    with torch.no_grad():
        c_new = torch.where(spike, (c.ref_steps - d).clamp_min(0.0), (st.c - 1).clamp_min(0.0))
        if c.ref_steps < 1.0:  # free again before the step's end: propagate from v_reset
            g = torch.where(spike, (d - c.ref_steps).clamp_min(0.0), torch.zeros_like(d))
            bg2 = torch.exp(g * math.log(c.beta_m))
            j_inf = torch.where(free, (v1d - bf * v0d) / (1.0 - bf).clamp_min(1e-300), v1d)
            v_after = c.v_rest + bg2 * (c.v_reset - c.v_rest) + (1.0 - bg2) * (j_inf - c.v_rest)
            late = torch.where(spike & (g > 0), v_after - c.v_reset, torch.zeros_like(d))
    if c.ref_steps < 1.0:
        v = v + late
    q = c.beta_s * st.q + s * torch.pow(c.beta_s, d)
    r = c.beta_r * st.r + s * torch.pow(c.beta_r, d)
    return LIFState(v, q, r, c_new, s, d), J


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
    """The rate of the grid map for constant J: ISI = (n_ref + ⌈T*/dt⌉) dt with
    T* = τ_m ln(...) the continuous first-passage time from v_reset."""
    a, b = spec.v_rest + J - spec.v_reset, spec.v_rest + J - spec.theta
    if b <= 0:
        return 0.0
    n_cross = math.ceil(spec.tau_m * math.log(a / b) / spec.dt - 1e-9)
    return 1.0 / ((spec.n_ref + n_cross) * spec.dt)


__all__ += ["analytic_rate", "discrete_rate", "heaviside", "smooth_spike", "surrogate_spike"]


# -- diffusion theory (Brunel 2000; Ricciardi) ------------------------------------------------
def siegert_rate(mu: float, sigma_v: float, spec: LIFSpec) -> float:
    """Stationary rate of the LIF neuron τ_m dv/dt = −(v − v_rest) + μ + σ_v √τ_m ξ(t) with
    threshold θ, reset v_reset and refractoriness t_ref (the Siegert formula)::

        1/ν = t_ref + τ_m √π ∫_{y_r}^{y_θ} e^{u²} (1 + erf u) du ,
        y_r = (v_reset − m)/σ_v ,  y_θ = (θ − m)/σ_v ,  m = v_rest + μ

    (Brunel 2000, eq. 21; e^{u²}(1 + erf u) = erfcx(−u), evaluated without overflow).
    Needs scipy."""
    from scipy.integrate import quad
    from scipy.special import erfcx

    m = spec.v_rest + mu
    lo, hi = (spec.v_reset - m) / sigma_v, (spec.theta - m) / sigma_v
    val, _ = quad(lambda u: erfcx(-u), lo, hi, epsabs=0, epsrel=1e-12, limit=200)
    return 1.0 / (spec.t_ref + spec.tau_m * math.sqrt(math.pi) * val)


def siegert_cv(mu: float, sigma_v: float, spec: LIFSpec) -> float:
    """Coefficient of variation of the inter-spike interval of the same neuron (Brunel
    2000, Appendix A.1)::

        CV² = 2π (ν τ_m)² ∫_{y_r}^{y_θ} e^{x²} ∫_{−∞}^{x} e^{y²} (1 + erf y)² dy dx

    with y_r, y_θ as in :func:`siegert_rate`. Needs scipy."""
    from scipy.integrate import quad
    from scipy.special import erfcx

    m = spec.v_rest + mu
    lo, hi = (spec.v_reset - m) / sigma_v, (spec.theta - m) / sigma_v
    nu = siegert_rate(mu, sigma_v, spec)

    def inner(x: float) -> float:
        # e^{x²} ∫_{−∞}^{x} e^{y²}(1 + erf y)² dy = ∫_{−∞}^{x} erfcx(−y)² e^{x² − y²} dy
        val, _ = quad(lambda y: erfcx(-y) ** 2 * math.exp((x - y) * (x + y)), -math.inf, x,
                      epsabs=0, epsrel=1e-11, limit=200)  # fmt: skip
        return val

    val, _ = quad(inner, lo, hi, epsabs=0, epsrel=1e-10, limit=200)
    return math.sqrt(2.0 * math.pi * (nu * spec.tau_m) ** 2 * val)


__all__ += ["siegert_cv", "siegert_rate", "late_psp_gain"]
