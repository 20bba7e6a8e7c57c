"""The online-rule contract: what a back-end's online driver hands a rule at every step.

One online driver on torch (``online_trials`` in ``backends/torch/online.py``, with a network
object per type: ``RateOnline`` in ``rate/online.py``, ``LIFOnline`` in ``lif/online.py``)
runs B trials with the weights fixed and serves *every* online rule through these records;
it names none.
A rule is an object with

    explores : bool           the driver adds the rule's exploration to each hidden unit
                              (``explore``) and σ ξ^o to the readout (three-factor); False:
                              the network runs as the model is (e-prop, RFLO)
    needs    : frozenset[str] optional signals it reads: "psi" (the post derivative ψ_t),
                              "dl_do" (∂ℓ_t/∂o_t); the driver computes only these
    explore(shape, std, generator, device, dtype) → Tensor    (when ``explores``)
    init_state(info) → state         its state across batches (None when it has none)
    begin(state, info) → trial       a batch of trials starts
    observe(trial, sig) → trial      one step, ``sig`` a :class:`StepSignals`
    finish(trial, end) → Update      ΔW/η of the batch and the new state
    state_dict(state) → dict[str, Tensor] ;  load_state(sd, like) → state   (checkpoints;
                              ``state`` is None before the first batch, and {} loads as None)

Local state derivatives. The hidden unit j has a local state h_j (rate: x_j; LIF: the
membrane potential before the spike test, ṽ_j) driven by a_t = W z_t through::

    ∂h_t/∂W_ji (holding z fixed)  =  decay_t ∂h_{t−1}/∂W_ji + gain_t z_{i,t}
    rate:  decay_t = 1 − α ,                   gain_t = α
    LIF :  decay_t = w_t (1 − s_{t−1}) ,       gain_t = 1 − w_t
           (w_t = β_m while free, 1 while refractory; the reset v ← v_reset cuts the
           trace: the derivative of the detached reset, as surrogate BPTT takes it)

and ψ_t = ∂(unit output)/∂h_t: φ'(x_t) for the rate network, the spike pseudo-derivative
1/(1 + k|ṽ_t − θ|)² (the surrogate of :mod:`bioplaus.backends.torch.lif`, zero while
refractory) for LIF. The readout sees the hidden outputs through a filter of decay κ
(``readout_decay``: 0 for the rate network, o_t = W_out r̂_t; β_r for LIF, whose readout is
W_out D_rec r_t with r_t = β_r r_{t−1} + s_t).

The sign convention of every online rule: ``finish`` returns ΔW/η; the trainer hands −ΔW/η
to its optimizer as the gradient (so an estimate of ∂L returns ΔW/η = −∂̂L).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import torch

Tensor = torch.Tensor


class TrialInfo(NamedTuple):
    """What is fixed over a batch of B trials."""

    network: str  # "rate" | "lif"
    B: int
    N: int
    n_in: int
    n_out: int
    M_h: int  # presynaptic size of the hidden layer: n_in + N (+1 with a bias)
    M_o: int  # presynaptic size of the readout: N (+1 with a bias)
    T: int
    dt: float  # model step, s
    norm: float  # Σ_{t,b} m_{t,b}: the loss's normaliser (T·B without a mask)
    readout_decay: float  # κ of the readout's filter of the hidden outputs
    W_out: Tensor  # [n_out, N] effective readout of the hidden outputs (W_out D_rec)
    types: Tensor | None  # [B] trial types, or None
    n_types: int  # number of trial types of the task
    generator: torch.Generator  # the pass's generator (the run's noise stream)
    like: Tensor  # dtype and device


class StepSignals(NamedTuple):
    """The local signals of step t, per trial b ([B, ·])."""

    t: int
    a: Tensor  # [B, N] drive of the hidden units: rate x_t; LIF the synaptic drive J_t
    z_hid: Tensor  # [B, M_h] presynaptic of the hidden layer: [û_t, r̂_{t−1} | κ q_{t−1}, 1]
    o: Tensor  # [B, n_out] output o_t (with the readout exploration, if any)
    z_out: Tensor  # [B, M_o] presynaptic of the readout: [r̂_t, 1]
    y: Tensor  # [B, n_out] target y_t
    ell: Tensor  # [B] step loss ℓ_t
    m: Tensor | None  # [B] mask m_t (None: every step scored)
    decay: float | Tensor  # ∂h_t/∂h_{t−1} (scalar, or [B, N])
    gain: float | Tensor  # ∂h_t/∂(W z_t) (scalar, or [B, N])
    psi: Tensor | None = None  # [B, N] ψ_t (rules that need "psi")
    dl_do: Tensor | None = None  # [B, n_out] ∂ℓ_t/∂o_t (rules that need "dl_do")
    spikes: Tensor | None = None  # [B, N] s_t (LIF)


class TrialEnd(NamedTuple):
    """The end of a batch of trials."""

    loss_sum: Tensor  # [B] Σ_t m_t ℓ_t
    n_scored: Tensor  # [B] Σ_t m_t
    norm: float  # Σ m
    types: Tensor | None
    sigma: float  # σ of the readout exploration the driver used (0: none)


class Update(NamedTuple):
    """ΔW/η of the hidden layer [N, M_h] and the readout [n_out, M_o], the rule's state
    after the batch, and its modulator per trial (empty where it has none)."""

    d_hid: Tensor
    d_out: Tensor
    state: Any
    modulator: Tensor


class OnlineRule(Protocol):
    """The contract of an online rule (see the module docstring)."""

    name: str
    explores: bool
    needs: frozenset[str]

    def init_state(self, info: TrialInfo) -> Any: ...

    def begin(self, state: Any, info: TrialInfo) -> Any: ...

    def observe(self, trial: Any, sig: StepSignals) -> Any: ...

    def finish(self, trial: Any, end: TrialEnd) -> Update: ...

    def state_dict(self, state: Any) -> dict[str, Tensor]: ...

    def load_state(self, sd: dict[str, Tensor], like: Tensor) -> Any: ...


def learning_gradient(sig: StepSignals, norm: float) -> Tensor:
    """g_t = m_t ∂ℓ_t/∂o_t / Σm [B, n_out]: ∂L/∂o_t of L = Σ m ℓ / Σ m."""
    g = sig.dl_do / norm
    return g if sig.m is None else g * sig.m[:, None]


def random_feedback(info: TrialInfo) -> Tensor:
    """B ~ N(0, 1/N) [N, n_out], drawn from the pass's generator (the run's noise stream)."""
    g = torch.randn(
        (info.N, info.n_out), generator=info.generator, device=info.like.device,
        dtype=info.like.dtype,
    )  # fmt: skip
    return g / info.N**0.5


class FeedbackState:
    """The state across batches of a rule whose learning signal goes through a feedback
    matrix (e-prop, RFLO): the fixed random B [N, n_out] (``feedback = "random"``, drawn at
    the first batch and checkpointed) or None (``"symmetric"``: B = W_outᵀ of each batch)."""

    feedback: str

    def init_state(self, info: TrialInfo) -> Tensor | None:
        return random_feedback(info) if self.feedback == "random" else None

    def state_dict(self, state: Tensor | None) -> dict[str, Tensor]:
        return {} if state is None else {"B": state.cpu().clone()}

    def load_state(self, sd: dict[str, Tensor], like: Tensor) -> Tensor | None:
        return sd["B"].to(like.device, like.dtype) if sd.get("B") is not None else None

    @staticmethod
    def feedback_of(state: Tensor | None, info: TrialInfo) -> Tensor:
        """This batch's B: the fixed random one, or W_outᵀ."""
        return info.W_out.T if state is None else state


__all__ = [
    "FeedbackState",
    "OnlineRule",
    "StepSignals",
    "TrialEnd",
    "TrialInfo",
    "Update",
    "learning_gradient",
    "random_feedback",
]
