"""Weight perturbation (WP) on the rate RNN (DESIGN §2; the RNN seed paper's
``weight_perturbation``).

In the perturbed pass every trial (row p) carries its own weight noise, drawn afresh at
every step t: W_hid + ΔW_{t,p}, W_out + ΔV_{t,p}, entries N(0, σ²) (the hidden layer's
[W_in, W_rec, b] and the readout's [W_out, b_out]; no node noise). With δℓ_t = ℓ_A − ℓ_B,
v = 1 (clean baseline) or 2 (noisy baseline) and credit signal r_{t,p}:

    local : r_t = δℓ_t               → E[G] = the one-step (TBPTT(1)) gradient
    trial : r_t = Σ_s δℓ_s           → E[G] = the full BPTT gradient
    rtg   : r_t = Σ_{s≥t} δℓ_s       → the full BPTT gradient, with less variance

    G = (1 / (v σ² Σm K)) Σ_{t,p} r_{t,p} ΔW_{t,p}

(the step t's perturbation only reaches losses at s ≥ t, so trial and rtg share a mean).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from pydantic import Field

from ..registry import register_rule
from .base import Estimate, Sums, finalize_sums, init_sums
from .options import PairedPassOptions

Tensor = torch.Tensor
Signal = Literal["local", "trial", "rtg"]


class WPRecord(NamedTuple):
    """One step of P paired rows."""

    t: int
    dw_hid: Tensor  # [P, N, M_h] ΔW of [W_in, W_rec, (b)], A − B
    dw_out: Tensor  # [P, n_out, M_o] ΔW of [W_out, (b_out)], A − B
    dl: Tensor  # [P] δℓ_t = m_t (ℓ_A − ℓ_B)


class WeightPerturbation:
    """WP with a local, whole-trial or reward-to-go credit signal."""

    iterative = False
    kind = "wp"
    #: the paired-pass driver perturbs weights for this rule (WPRecord), not nodes
    perturbs = "weights"

    def __init__(self, signal: Signal = "local") -> None:
        if signal not in ("local", "trial", "rtg"):
            raise ValueError(f"signal: must be 'local', 'trial' or 'rtg' (got {signal!r})")
        self.signal = signal
        self.name = "wp" if signal == "local" else f"wp-{signal}"

    def init(self, P: int, M_h: int, N: int, M_o: int, n_out: int, like: Tensor) -> Sums:
        """Zero sums; per-row traces E = Σ_{t'≤t} ΔW_{t'} for trial / rtg."""
        return init_sums(self.signal, P, M_h, N, M_o, n_out, like)

    def accumulate(self, state: Sums, rec: WPRecord, ctx) -> Sums:
        """Add step t: G += Σ_p δℓ_t ΔW_t (local); E += ΔW_t, G += Σ_p δℓ_t E (rtg)."""
        k = 1.0 / (ctx.var_factor * ctx.sigma**2)
        if self.signal == "local":
            state.G_hid.add_(torch.einsum("p,pnm->nm", rec.dl, rec.dw_hid), alpha=k)
            state.G_out.add_(torch.einsum("p,pnm->nm", rec.dl, rec.dw_out), alpha=k)
            return state
        state.E_hid.add_(rec.dw_hid, alpha=k)
        state.E_out.add_(rec.dw_out, alpha=k)
        if self.signal == "rtg":
            state.G_hid.add_(torch.einsum("p,pnm->nm", rec.dl, state.E_hid))
            state.G_out.add_(torch.einsum("p,pnm->nm", rec.dl, state.E_out))
        return state

    def finalize(self, state: Sums, dS: Tensor, norm: float) -> Estimate:
        """``dS`` [P]: Σ_t δℓ_t per row; ``norm``: Σm times K (:func:`~.base.finalize_sums`)."""
        return finalize_sums(self.signal, state, dS, norm)


# -- options and registration ---------------------------------------------------------------
class WeightPerturbationOptions(PairedPassOptions):
    """Options of weight perturbation."""

    name: Literal["wp"] = Field(description="wp: weight perturbation.")
    signal: Literal["local", "trial", "rtg"] | None = Field(
        None,
        description="Credit signal: local δℓ_t (default), whole-trial δL, or reward-to-go "
        "Σ_{s≥t} δℓ_s.",
    )

    @property
    def per_sample_traces(self) -> bool:
        """A whole-trial or reward-to-go signal keeps a trace per perturbed sample (the
        memory estimate counts it)."""
        return (self.signal or "local") != "local"


def build_weight_perturbation(opts: WeightPerturbationOptions, network: str):
    """WP for the rate RNN, or its layered version for an MLP."""
    if network == "mlp":
        from .layered import LayeredWeightPerturbation

        return LayeredWeightPerturbation()
    return WeightPerturbation(signal=opts.signal or "local")


register_rule(
    "wp",
    options=WeightPerturbationOptions,
    build=build_weight_perturbation,
    mechanism="weight",
    networks=("rate", "mlp"),
    summary="weight perturbation: δL · ΔW / σ²",
)
