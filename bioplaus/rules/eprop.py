"""e-prop (Bellec et al. 2020, Nat. Commun. 11:3625): eligibility traces × learning signals.

The variant followed is the paper's *online e-prop with a leaky readout* (Methods, "e-prop
for LIF neurons" and "Synaptic plasticity rules", eqs. 1–4 and 22–29; the readout gradient
is exact), written for bioplaus's two recurrent models. For the hidden weights
W = [W_in, W_rec, b] acting as a_t = W z_t (rate: z = [û_t, r̂_{t−1}, 1]; LIF:
z = [û_t, κ q_{t−1}, 1]) and a hidden state h_j (rate x_j; LIF the membrane potential
before the spike test ṽ_j), the driver's local derivatives (:mod:`bioplaus.rules.online`)
give, per trial b, with no history stored (memory independent of T):

eligibility vector, the presynaptic trace filtered with the state's own decay::

    ε_{ji,t} = decay_{j,t} ε_{ji,t−1} + gain_{j,t} z_{i,t} ,    ε_{−1} = 0
        rate: decay = 1 − α, gain = α (x_t = (1 − α) x_{t−1} + α W z_t)
              → ε_{i,t} = (1 − α) ε_{i,t−1} + α z_{i,t}, the same for every j
        LIF : decay = w_t (1 − s_{j,t−1}), gain = 1 − w_t, w_t = β_m (1 while refractory)
              (Bellec's ε = α ε + z with α = β_m, plus the cut of bioplaus's reset to
              v_reset and its refractory clamp)

eligibility trace, with the post derivative ψ (rate: φ'(x_t); LIF: the pseudo-derivative
1/(1 + k|ṽ − θ|)² of surrogate BPTT, 0 while refractory)::

    e_{ji,t} = ψ_{j,t} ε_{ji,t}

readout filter (the paper's F_κ): the hidden outputs reach o_t through a filter of decay κ
(LIF: κ = β_r, as o_t = W_out D_rec r_t with r_t = β_r r_{t−1} + s_t; rate: κ = 0)::

    ē_{ji,t} = κ ē_{ji,t−1} + e_{ji,t}

learning signal from the output error, with the loss's normaliser (L = Σ m ℓ / Σ m)::

    g_{k,t} = m_t ∂ℓ_t/∂o_{k,t} / Σm                 (mse: o − y; ce: softmax(o) − y)
    L_{j,t} = Σ_k B_{jk} g_{k,t}
    B = (W_out D_rec)ᵀ      feedback = "symmetric"  (the current readout)
    B ~ N(0, 1/N), fixed    feedback = "random"     (drawn once from the run's generator,
                                                     saved with the checkpoint)

estimate of ∂L/∂W and the exact readout gradient::

    ∂̂L/∂W_ji     = Σ_{t,b} L_{j,t} ē_{ji,t}
    ∂L/∂W_out_kj = Σ_{t,b} g_{k,t} z_out_{j,t}       (z_out = [r̂_t, 1]: exact)

With W_rec = 0 there is no recurrent path and the estimate is the exact gradient (rate) or
the exact surrogate gradient of BPTT with a detached reset (LIF); with W_rec ≠ 0 it drops
the dependence of z on W through the recurrence (the paper's ∂E/∂z_t ≈ its direct part).

Firing-rate regularisation (LIF, the paper's Methods "Firing rate regularization", as in
its tutorial code): E_reg = (c_reg/2) Σ_j (f̄_j − f0)², f̄_j the neuron's mean rate over the
batch and trial (Hz), whose e-prop gradient is accumulated alongside::

    ∂̂E_reg/∂W_ji = c_reg (f̄_j − f0) Σ_{t,b} e_{ji,t} / (T B dt)

(Σ_t s_{j,t} and Σ_t e_{ji,t} are running sums: still O(1) in T.) ``c_reg = 0`` (default)
turns it off. ``finish`` returns ΔW/η = −∂̂L (the online contract's sign convention).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from pydantic import Field

from ..registry import register_rule
from .online import (
    FeedbackState,
    StepSignals,
    TrialEnd,
    TrialInfo,
    Update,
    learning_gradient,
)
from .options import RuleSpec

Tensor = torch.Tensor
Feedback = Literal["symmetric", "random"]


class EPropTrial(NamedTuple):
    """A batch of trials under way: traces and the running sums of the estimate."""

    info: TrialInfo
    feedback: Tensor  # [N, n_out] B of this batch
    state: Tensor | None  # the fixed random B (None: symmetric)
    eps: Tensor | None  # [B, M_h] (scalar decay) or [B, N, M_h] eligibility vectors
    ebar: Tensor | None  # [B, N, M_h] readout-filtered eligibility (κ > 0)
    G_hid: Tensor  # [N, M_h] Σ L ē
    G_out: Tensor  # [n_out, M_o] Σ g z_outᵀ
    spikes: Tensor | None  # [N] Σ_{t,b} s (c_reg > 0)
    E_reg: Tensor | None  # [N, M_h] Σ_{t,b} e (c_reg > 0)


class EProp(FeedbackState):
    """e-prop (module docstring) for a ``network`` ("rate" or "lif")."""

    name = "e-prop"
    explores = False
    needs = frozenset({"psi", "dl_do"})

    def __init__(
        self,
        network: str = "rate",
        *,
        feedback: Feedback = "symmetric",
        c_reg: float = 0.0,
        f0: float = 10.0,
    ) -> None:
        if feedback not in ("symmetric", "random"):
            raise ValueError(f"feedback: must be 'symmetric' or 'random' (got {feedback!r})")
        if not c_reg >= 0:
            raise ValueError(f"c_reg: must be >= 0 (got {c_reg})")
        if not f0 >= 0:
            raise ValueError(f"f0: must be >= 0 (got {f0})")
        if c_reg > 0 and network != "lif":
            raise ValueError("c_reg: firing-rate regularisation is for LIF networks")
        self.network, self.feedback, self.c_reg, self.f0 = network, feedback, c_reg, f0

    # -- a batch of trials ----------------------------------------------------------------
    def begin(self, state: Tensor | None, info: TrialInfo) -> EPropTrial:
        fb = self.feedback_of(state, info)
        if fb.shape != (info.N, info.n_out):
            raise ValueError(f"feedback: B has shape {tuple(fb.shape)}, the network needs "
                             f"{(info.N, info.n_out)}")  # fmt: skip
        z = info.like.new_zeros
        reg = self.c_reg > 0
        return EPropTrial(
            info, fb, state, None, None, z((info.N, info.M_h)), z((info.n_out, info.M_o)),
            z(info.N) if reg else None, z((info.N, info.M_h)) if reg else None,
        )  # fmt: skip

    def trace(self, tr: EPropTrial, sig: StepSignals) -> Tensor:
        """ε_t ← decay ε_{t−1} + gain z_t ([B, M_h] when decay and gain are scalars)."""
        z = sig.z_hid
        if isinstance(sig.decay, float) and isinstance(sig.gain, float):
            if tr.eps is None:
                return z * sig.gain
            return tr.eps.mul_(sig.decay).add_(z, alpha=sig.gain)
        d, g = sig.decay, sig.gain
        eps = tr.eps
        if eps is None:
            return g[:, :, None] * z[:, None, :]
        if eps.dim() == 2:  # decay turned per-unit: expand the shared trace
            eps = eps[:, None, :].expand(-1, d.shape[1], -1).clone()
        return eps.mul_(d[:, :, None]).add_(g[:, :, None] * z[:, None, :])

    def observe(self, tr: EPropTrial, sig: StepSignals) -> EPropTrial:
        info = tr.info
        g = learning_gradient(sig, info.norm)  # [B, n_out]
        tr.G_out.addmm_(g.T, sig.z_out)
        L = g @ tr.feedback.T  # [B, N]
        eps = self.trace(tr, sig)
        kappa = info.readout_decay
        ebar, e = tr.ebar, None
        if kappa == 0.0 and eps.dim() == 2:  # Σ_b L ψ ⊗ ε: one matmul
            tr.G_hid.addmm_((L * sig.psi).T, eps)
        else:
            e = sig.psi[:, :, None] * (eps[:, None, :] if eps.dim() == 2 else eps)
            if kappa != 0.0:
                ebar = e.clone() if ebar is None else ebar.mul_(kappa).add_(e)
                tr.G_hid.add_(torch.einsum("bj,bji->ji", L, ebar))
            else:
                tr.G_hid.add_(torch.einsum("bj,bji->ji", L, e))
        if tr.spikes is not None and tr.E_reg is not None:
            if sig.spikes is None:
                raise ValueError("c_reg: the driver hands no spikes (a rate network)")
            if e is None:
                e = sig.psi[:, :, None] * (eps[:, None, :] if eps.dim() == 2 else eps)
            tr.spikes.add_(sig.spikes.sum(0))
            tr.E_reg.add_(e.sum(0))
        return tr._replace(eps=eps, ebar=ebar)

    def finish(self, tr: EPropTrial, end: TrialEnd) -> Update:
        """ΔW/η = −(the estimate of ∂L, plus ∂E_reg with c_reg > 0)."""
        G = tr.G_hid
        if tr.spikes is not None and tr.E_reg is not None:
            info = tr.info
            scale = 1.0 / (info.T * info.B * info.dt)
            rate = tr.spikes * scale  # f̄_j, Hz
            G = G + (self.c_reg * (rate - self.f0) * scale)[:, None] * tr.E_reg
        return Update(-G, -tr.G_out, tr.state, G.new_zeros(0))


# -- options and registration ---------------------------------------------------------------
class EPropOptions(RuleSpec):
    """Options of e-prop."""

    name: Literal["e-prop"] = Field(
        description="e-prop: online eligibility traces × learning signals (rules/eprop.py)."
    )
    feedback: Literal["symmetric", "random"] = Field(
        "symmetric",
        description="e-prop: learning signal through the readout weights (symmetric) or a "
        "fixed random matrix B ~ N(0, 1/N) (random).",
    )
    c_reg: float = Field(
        0.0,
        ge=0,
        description="e-prop: strength c_reg of the firing-rate regulariser "
        "(c_reg/2) Σ_j (f̄_j − f0)², 1/Hz² (LIF only; 0: off).",
    )
    f0: float = Field(
        10.0, ge=0, description="e-prop: target firing rate f0 of the regulariser, Hz (LIF)."
    )


def build_eprop(opts: EPropOptions, network: str, dt: float | None = None) -> EProp:
    """The online rule for a network type (``dt`` unused: e-prop's filters are the model's)."""
    return EProp(network, feedback=opts.feedback, c_reg=opts.c_reg, f0=opts.f0)


register_rule(
    "e-prop",
    options=EPropOptions,
    build=build_eprop,
    mechanism="online",
    networks=("rate", "lif"),
    summary="e-prop: eligibility traces × learning signal (Bellec et al. 2020)",
)
