"""The LIF network of the one online loop (:func:`.online.online_trials`):
:class:`LIFOnline`, what the loop needs of it (state, û_t and the external drive, the step
with its draws, the readout, the local signals), and the trainer's handle on it
(:class:`LIFOnlineHandle`). One pass of B trials is
``online_trials(LIFOnline(p, c, rule, sigma, generator, inputs), state, targets, …)``.

B networks with shared weights run B trials. A rule that explores (``rule.explores``, the
three-factor rule) has its noise added to each neuron's synaptic drive J_t (Gaussian σ ξ_t,
or Miconi's sparse kicks), on top of the background membrane noise, and the readout gets
σ ξ^o; a rule that does not (e-prop) sees the model with its background noise only::

    J_t = W_in û_t + b + I_0 + κ W_rec q_{t−1} + g_v ξ^bg_t (+ n_t, the rule's)
    drawn per step: ξ^bg [B, N], (n_t), ξ^o [B, n_out]   (grid spiking)
                    ξ^bg, U [B, N], (n_t), ξ^o           (precise: ξ^bg as the exact OU
                                                          increment, U the bridge draw)

The local signals handed to the rule (:class:`~bioplaus.rules.online.StepSignals`): the
drive a_t = J_t (its fluctuation J_t − J̄_t is the three-factor rule's post factor), the
presynaptic z_t = [û_t, κ q_{t−1}, 1] (J_t = W z_t + noise: the pair of ANP's
``delta = "drive"``, :mod:`.perturb`), z_out = [r̂_t, 1] with r̂ = D_rec r, and — for
rules that need it ("psi"), grid spiking only — the spike pseudo-derivative of surrogate
BPTT (:mod:`.bptt`) at the membrane potential before the spike test ṽ_t::

    ψ_t = active_t / (1 + k |ṽ_t − θ|)²
    decay_t = w_t (1 − s_{t−1}) ,  gain_t = 1 − w_t ,  w_t = β_m if active_t else 1

(∂ṽ_t/∂W = decay_t ∂ṽ_{t−1}/∂W + gain_t z_t, holding z fixed; the reset to v_reset cuts the
trace); without "psi", decay β_m and gain 1 − β_m. The readout filter of the hidden outputs
is κ = β_r (o_t = W_out D_rec r_t, r_t = β_r r_{t−1} + s_t).
"""

from __future__ import annotations

from typing import Any

import torch

from ..online import CHUNK, Local, OnlineNetwork, OnlineRuleHandle
from . import (
    LIFConsts,
    LIFParams,
    decorrelate,
    external_drive,
    init_state,
    lif_step,
    pre_spike_potential,
    readout,
    surrogate_derivative,
)
from .perturb import LIFRowsState

Tensor = torch.Tensor


class LIFOnline(OnlineNetwork):
    """The LIF network (module docstring); its state is the network's and r̂_t = D_rec r_t
    (:class:`~.perturb.LIFRowsState`). A rule that needs ψ is refused with precise
    spiking (ValueError, before anything is drawn)."""

    name = "lif"

    def __init__(
        self,
        p: LIFParams,
        c: LIFConsts,
        rule: Any,
        sigma: float | None,
        generator: torch.Generator,
        inputs: Tensor,
    ) -> None:
        super().__init__(p, c, rule, sigma, generator, inputs)
        if "psi" in self.needs and c.precise:
            raise ValueError(
                f"rule {rule.name!r} needs the spike pseudo-derivative, which the LIF driver "
                "has for spiking = 'grid' only"
            )
        self.readout_decay, self.dt = c.beta_r, c.dt
        self.ext: Tensor | None = None
        self.u_hat_all: Tensor | None = None

    def init_state(self) -> LIFRowsState:
        """v_{−1} = v_rest, q = r = 0, not refractory; r̂_{−1} = D_rec 0 = 0 (unused)."""
        st = init_state(self.p, self.c, self.B)
        return LIFRowsState(st, st.r)

    def u_hat(self, t: int) -> Tensor:
        """û_t = D_in u_t; at the start of each chunk, û and W_in û + b + I_0 of its CHUNK
        steps."""
        if t % CHUNK == 0:  # the external drive, CHUNK steps at a time: memory O(1) in T
            self.ext = self.u_hat_all = None  # (freed before the next chunk is formed)
            self.ext = external_drive(self.p, self.c, self.inputs[t : t + CHUNK])
            self.u_hat_all = decorrelate(self.p.D_in, self.inputs[t : t + CHUNK])
        return self.u_hat_all[t % CHUNK]

    def step(self, t: int, s: LIFRowsState) -> tuple[LIFRowsState, Tensor]:
        """Draw ξ^bg, (U: precise spiking), the rule's n_t, and run :func:`~.lif_step`;
        a_t = J_t."""
        c, rule, g = self.c, self.rule, self.generator
        shape, dev, dt = (self.B, self.N), self.dev, self.dtype
        if c.precise:  # ξ^bg as the exact OU increment, U_t the bridge-crossing draw
            bg = torch.randn(shape, generator=g, device=dev, dtype=dt)
            un = torch.rand(shape, generator=g, device=dev, dtype=dt)
            noise = rule.explore(shape, self.sigma, g, dev, dt) if rule.explores else None
            kw = {"bg": bg, "uniform": un if c.needs_uniform else None}
        else:
            noise = c.g_v * torch.randn(shape, generator=g, device=dev, dtype=dt)
            if rule.explores:
                noise = noise + rule.explore(shape, self.sigma, g, dev, dt)
            kw = {}
        st, J = lif_step(self.p, c, s.st, self.ext[t % CHUNK], noise, **kw)
        return LIFRowsState(st, decorrelate(self.p.D_rec, st.r)), J

    def readout(self, s: LIFRowsState) -> Tensor:
        """o_t = W_out D_rec r_t + b_out."""
        return readout(self.p, s.st.r)

    def pre(self, s_prev: LIFRowsState) -> Tensor:
        """κ q_{t−1}."""
        return self.c.kappa * s_prev.st.q

    def local(self, s_prev: LIFRowsState, s: LIFRowsState, a: Tensor) -> Local:
        """ψ_t, decay_t, gain_t at ṽ_t (rules that need "psi"; else β_m, 1 − β_m); s_t."""
        c = self.c
        psi, decay, gain = None, c.beta_m, 1.0 - c.beta_m
        if "psi" in self.needs:
            prev = s_prev.st
            v_tilde, w, active = pre_spike_potential(c, prev.v, prev.c, a)
            psi = surrogate_derivative(v_tilde - c.theta, c.slope)
            if active is None:  # no refractory steps: w = β_m for every neuron
                w = torch.full_like(v_tilde, w)
            else:
                psi = psi * active.to(self.dtype)
            decay, gain = w * (1.0 - prev.s), 1.0 - w
        return psi, decay, gain, s.st.s


class LIFOnlineHandle(OnlineRuleHandle):
    """The trainer's handle on an online rule (:class:`~.online.OnlineRuleHandle`) for the
    LIF network (the same state and checkpoint as the rate network's)."""

    network = LIFOnline
