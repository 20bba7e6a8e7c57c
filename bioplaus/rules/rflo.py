"""RFLO: random-feedback local online learning (Murray 2019, eLife 8:e43299).

For the rate network x_t = (1 − α) x_{t−1} + α (W z_t) with z_t = [û_t, r̂_{t−1}, 1] and
r̂ = D_rec φ(x), per trial b and with no history stored (memory independent of T)::

    P_{ij,t} = (1 − α) P_{ij,t−1} + α φ'(x_{i,t}) z_{j,t} ,      P_{−1} = 0
    g_{k,t}  = m_t ∂ℓ_t/∂o_{k,t} / Σm                           (the output error ε_t)
    ΔW_ij/η  = −Σ_{t,b} (B g_t)_i P_{ij,t}
    B ~ N(0, 1/N) fixed (feedback = "random", default; drawn once from the run's
    generator, saved with the checkpoint), or B = (W_out D_rec)ᵀ ("symmetric")
    ΔW_out/η = −Σ_{t,b} g_t z_outᵀ   (z_out = [r̂_t, 1]: the exact delta rule)

Murray's eq. (14) is the same trace for his model τ dh/dt = −h + φ(u), u = W z, where φ
acts *before* the leaky integration: there P is exactly ∂h/∂W holding z fixed, so RFLO is
e-prop for that model with random feedback (Bellec et al. 2020 say as much). bioplaus's rate
network integrates first and applies φ after (r = φ(x)), so its e-prop trace
(:mod:`.eprop`) is

    e_{ij,t} = φ'(x_{i,t}) ε_{j,t} ,   ε_{j,t} = (1 − α) ε_{j,t−1} + α z_{j,t}

and RFLO's P filters the product φ'(x) z instead of multiplying the filtered z by the
current φ'(x). The two are equal when φ' is constant over the trial (φ linear) or α = 1
(no leak: P_t = e_t = φ'(x_t) z_t), and then RFLO with feedback "symmetric" *is* symmetric
rate e-prop (tests/rules/test_rflo.py checks both, and that they differ otherwise). With
W_rec = 0 e-prop is exact on this model and RFLO is not: its error is
Σ_t L_t Σ_s α(1−α)^{t−s} (φ'(x_s) − φ'(x_t)) z_s.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from pydantic import Field

from ..registry import register_rule
from .online import FeedbackState, StepSignals, TrialEnd, TrialInfo, Update, learning_gradient
from .options import RuleSpec

Tensor = torch.Tensor


class RFLOTrial(NamedTuple):
    info: TrialInfo
    feedback: Tensor  # [N, n_out]
    state: Tensor | None
    P: Tensor | None  # [B, N, M_h]
    G_hid: Tensor  # [N, M_h]
    G_out: Tensor  # [n_out, M_o]


class RFLO(FeedbackState):
    """RFLO (module docstring), rate network."""

    name = "rflo"
    explores = False
    needs = frozenset({"psi", "dl_do"})

    def __init__(self, feedback: Literal["random", "symmetric"] = "random") -> None:
        if feedback not in ("symmetric", "random"):
            raise ValueError(f"feedback: must be 'random' or 'symmetric' (got {feedback!r})")
        self.feedback = feedback

    def begin(self, state: Tensor | None, info: TrialInfo) -> RFLOTrial:
        if info.network != "rate":
            raise ValueError("rule 'rflo' is written for the rate network")
        fb = self.feedback_of(state, info)
        z = info.like.new_zeros
        return RFLOTrial(info, fb, state, None, z((info.N, info.M_h)), z((info.n_out, info.M_o)))

    def observe(self, tr: RFLOTrial, sig: StepSignals) -> RFLOTrial:
        g = learning_gradient(sig, tr.info.norm)
        tr.G_out.addmm_(g.T, sig.z_out)
        psi, z = sig.psi[:, :, None], sig.z_hid[:, None, :]  # φ'(x_t) ⊗ z_t, in place
        if tr.P is None:
            P = (psi * z).mul_(sig.gain)
        else:
            P = tr.P.mul_(sig.decay).addcmul_(psi, z, value=sig.gain)
        tr.G_hid.add_(torch.einsum("bi,bij->ij", g @ tr.feedback.T, P))
        return tr._replace(P=P)

    def finish(self, tr: RFLOTrial, end: TrialEnd) -> Update:
        return Update(-tr.G_hid, -tr.G_out, tr.state, tr.G_hid.new_zeros(0))


class RFLOOptions(RuleSpec):
    """Options of RFLO."""

    name: Literal["rflo"] = Field(
        description="rflo: random-feedback local online learning, Murray 2019 (rules/rflo.py)."
    )
    feedback: Literal["random", "symmetric"] = Field(
        "random",
        description="rflo: feedback matrix B, fixed random N(0, 1/N) (Murray's) or the "
        "readout's transpose (symmetric, for comparison with e-prop).",
    )


def build_rflo(opts: RFLOOptions, network: str, dt: float | None = None) -> RFLO:
    if network != "rate":
        raise ValueError(f"rule 'rflo' is written for the rate network, not {network!r}")
    return RFLO(opts.feedback)


register_rule(
    "rflo",
    options=RFLOOptions,
    build=build_rflo,
    mechanism="online",
    networks=("rate",),
    summary="RFLO: random-feedback local online learning (Murray 2019)",
)
