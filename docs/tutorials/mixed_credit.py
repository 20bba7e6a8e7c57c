"""A user's learning rule, in a user's file: tutorial (e) registers it and names it in protocols.

**Mixed-credit node perturbation.** The readout's gradient is time-local — ∂L/∂W_out only
involves o_t − y_t at the same step — so it is best credited with the step's own loss
difference δℓ_t. The hidden weights' influence on the loss lasts for the rest of the trial, so
they are credited with the whole trial's δL (unbiased for the full BPTT gradient, unlike the
time-local signal, which targets TBPTT(1)). With ε the injected noise of a pass pair and
v = 1 for a clean baseline (2 for a noisy one):

    G_out = (1/Σm) Σ_{t,b} δℓ_{t,b} ε^o_{t,b} z^o_{t,b}ᵀ / (v σ²)
    G_hid = (1/Σm) Σ_b δL_b Σ_t ε^x_{t,b} z^h_{t,b}ᵀ / (v σ²)        (hidden_credit = "trial")

``hidden_credit = "local"`` credits the hidden layer with δℓ_t too (= the built-in ``np``).

The rule is pure tensor math on the paired-pass driver's per-step records
(:class:`bioplaus.rules.base.StepRecord`); it never simulates, so it runs on every network type
the driver serves (rate and LIF), with K resamples, a noisy baseline and decorrelation, and is
resumed, swept and compared like a built-in rule. Register it by naming this file in a
protocol (``plugins = ["…/mixed_credit.py"]``) or by importing it.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from pydantic import Field

import bioplaus as bp
from bioplaus.rules import PairedPassOptions
from bioplaus.rules.base import Context, Estimate, StepRecord


class MixedCreditOptions(PairedPassOptions):
    """Options of the mixed-credit rule (σ, K and the baseline come with the paired passes)."""

    name: Literal["mixed-np"] = Field(description="mixed-np: trial credit hidden, local readout.")
    hidden_credit: Literal["trial", "local"] = Field(
        "trial", description="Credit of the hidden weights: whole-trial δL or the step's δℓ_t."
    )


class MixedState(NamedTuple):
    E_hid: torch.Tensor  # [P, N, M_h] Σ_t e_t z_tᵀ per trial (trial credit) or [N, M_h]
    G_out: torch.Tensor  # [n_out, M_o]


class MixedCreditNP:
    """The (init, accumulate, finalize) contract of bioplaus.rules.base.PerturbationRule."""

    def __init__(self, hidden_credit: str = "trial") -> None:
        self.hidden_credit = hidden_credit
        self.name = f"mixed-np-{hidden_credit}"

    def init(self, P: int, M_h: int, N: int, M_o: int, n_out: int, like: torch.Tensor):
        shape = (P, N, M_h) if self.hidden_credit == "trial" else (N, M_h)
        return MixedState(like.new_zeros(shape), like.new_zeros((n_out, M_o)))

    def accumulate(self, state: MixedState, rec: StepRecord, ctx: Context) -> MixedState:
        k = 1.0 / (ctx.var_factor * ctx.sigma**2)  # e = ε / (v σ²)
        if self.hidden_credit == "trial":
            state.E_hid.baddbmm_(rec.eps_x[:, :, None] * k, rec.z_hid[:, None, :])
        else:
            state.E_hid.addmm_((rec.eps_x * (k * rec.dl[:, None])).T, rec.z_hid)
        state.G_out.addmm_((rec.eps_o * (k * rec.dl[:, None])).T, rec.z_out)
        return state

    def finalize(self, state: MixedState, dS: torch.Tensor, norm: float) -> Estimate:
        """``dS`` [P]: δL of every trial; ``norm``: Σm times K."""
        G_hid = (
            torch.einsum("p,pnm->nm", dS, state.E_hid)
            if self.hidden_credit == "trial"
            else state.E_hid
        )
        return Estimate(G_hid / norm, state.G_out / norm)


def build(opts: MixedCreditOptions, network: str) -> MixedCreditNP:
    return MixedCreditNP(opts.hidden_credit)


bp.register_rule(
    "mixed-np",
    options=MixedCreditOptions,
    build=build,
    mechanism="node",
    networks=("rate", "lif"),
    summary="NP with whole-trial credit for hidden weights, local credit for the readout",
)
