"""The node-perturbation family (NP, ANP/DANP) on the LIF network: what its paired passes
perturb (:class:`LIFNodeNoise`, one step per chunk), run by the one paired-pass driver of
perturb.py (:func:`~.perturb.paired_passes`, which owns losses, mask, δℓ, dS, the rule's
accumulation, when decorrelation sums are added and outputs, as for the rate network).

Pass B (baseline) and pass A (K perturbed resamples) run stacked in one batch of B + K·B
rows. Both share one realisation of the background membrane noise ξ^bg (per trial: the
network's own intrinsic noise, which keeps it fluctuation-driven), so their difference is
caused by the perturbation alone. Pass A adds a current η_t = σ ξ_t to every neuron's
synaptic drive J_t (v receives (1 − β_m) η_t) and σ ξ^o_t to the readout::

    J_t = W_in û_t + b + I_0 + κ W_rec q_{t−1} + g_v ξ^bg_t (+ η_t on pass A)
    o_t = W_out D_rec r_t + b_out (+ σ ξ^o_t on pass A)
    drawn per step: ξ^bg [B, N], (U [B, N]: precise spiking), ξ [P, N], ξ^o [P, n_out]

(with precise spiking ξ^bg enters as the exact OU increment over the free part of the
step and U is the bridge-crossing draw, used when σ_v > 0; :func:`~.lif_step`).

The rule (:class:`~bioplaus.rules.node_perturbation.NodePerturbation`) sees one
:class:`~bioplaus.rules.base.StepRecord` per step, built with

    z_hid = [û_t, κ q_{t−1}, (1)]   (of pass B: a_t = W z_t is the learnable part of J_t)
    z_out = [D_rec r_t, (1)]
    eps_x = η_t  (Var σ²: NP's e_t = η_t/σ² estimates ∂ℓ/∂J_t)
    dx    = δJ_t = J_A − J_B  (``delta = "drive"``, Context α = 1)
         or δv_t = v_A − v_B  (``delta = "v"``,     Context α = 1 − β_m = ∂v_t/∂J_t)
         or δs_t = s_A − s_B  (``delta = "spike"``, Context α = 1: the spike flips the
                               perturbation caused; the scale is not calibrated)

What matters to the loss is which spikes the perturbation added or removed: δs_t is the
default (``LIFSpec.delta = "spike"``). A spike in one pass and not the other makes δv jump
by −(θ − v_reset) (the reset), so δv is *anti*-aligned with the gradient; δJ carries η
and the recurrent consequences κ W_rec δq and is only weakly aligned. docs/lif.md measures
all three (cosines with a K = 1024 NP reference and with surrogate BPTT). No surrogate
derivative is used anywhere here.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ....records import PassResult
from ....rules.base import Context, PerturbationRule, StepRecord, check_pass_options
from ..pass_common import noise_sigma
from ..perturb import paired_passes
from ..perturbation import Rows, Step, StepPerturbation
from . import (
    LIFConsts,
    LIFParams,
    LIFState,
    decorrelate,
    external_drive,
    init_state,
    lif_step,
    readout,
)

Tensor = torch.Tensor


class LIFRowsState(NamedTuple):
    """The loop's state of the S stacked rows: the network's, and r̂_t = D_rec r_t (the
    readout's presynaptic rates, whose baseline rows feed the decorrelation sums)."""

    st: LIFState
    r_hat: Tensor  # [S, N]


class LIFNodeNoise(StepPerturbation):
    """Shared background noise ξ^bg on both passes of a pair, the current perturbation η on
    the synaptic drive and σ ξ^o on the readout of the perturbed rows (module docstring);
    the record is a :class:`StepRecord` whose δ is ``delta``'s (drive, v or spike)."""

    def __init__(
        self,
        p: LIFParams,
        c: LIFConsts,
        sigma: float,
        rows: Rows,
        generator: torch.Generator,
        inputs: Tensor,
        delta: str = "spike",
    ) -> None:
        self.delta = delta
        super().__init__(p, c, sigma, rows, generator, inputs)

    def setup(self) -> None:
        """The external drive W_in û + b + I_0 and û of all steps (one matmul each), the
        zero noise of the baseline rows, bias ones."""
        p, c, rows, dev, dt = self.p, self.c, self.rows, self.dev, self.dt
        N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
        self.ext = external_drive(p, c, self.inputs)  # [T, B, N]
        self.u_hat_all = decorrelate(p.D_in, self.inputs)
        self.zeros_b = torch.zeros(rows.B, N, device=dev, dtype=dt)
        self.zeros_bo = torch.zeros(rows.B, n_out, device=dev, dtype=dt)
        self.ones_h, self.ones_o = self._ones(rows.P, p.b), self._ones(rows.P, p.b_out)

    def init_state(self, x0: Tensor | None) -> LIFRowsState:
        """v_{−1} = v_rest (or ``x0``, a membrane potential), q = r = 0, not refractory."""
        st = init_state(self.p, self.c, self.rows.S, x0)
        return LIFRowsState(st, decorrelate(self.p.D_rec, st.r))

    def u_hat(self, t: int) -> Tensor:
        """û_t = D_in u_t (computed for all steps at once)."""
        return self.u_hat_all[t]

    def context(self) -> Context:
        """α = 1 − β_m (∂v_t/∂J_t) for δ = v, else 1; σ; variance factor 1 (clean B)."""
        return Context(self.c.alpha if self.delta == "v" else 1.0, self.sigma, 1.0)

    def loss_norm(self, norm_b: float) -> float:
        """Σ m over the batch: the B baseline rows are the trials (the base's
        norm_b · B_b / B with B_b = B, without its rounding: 0.1 · 3 / 3 ≠ 0.1)."""
        return norm_b

    def hidden(
        self, t: int, s: LIFRowsState, u_hat: Tensor
    ) -> tuple[LIFRowsState, tuple[Tensor, Tensor]]:
        """Draw ξ^bg (shared by both passes of a pair), (U), η and run :func:`lif_step` on
        all S rows; returns the state and (η_t [P, N], J_t [S, N])."""
        p, c, r, g = self.p, self.c, self.rows, self.generator
        B, P, N, dev, dt = r.B, r.P, p.W_rec.shape[0], self.dev, self.dt
        if c.precise:  # ξ^bg as the exact OU increment, and the shared bridge draws
            xi_bg = torch.randn(B, N, generator=g, device=dev, dtype=dt)
            un = torch.rand(B, N, generator=g, device=dev, dtype=dt)[r.src]
            eta = self.sigma * torch.randn(P, N, generator=g, device=dev, dtype=dt)
            noise = torch.cat([self.zeros_b, eta])
            kw = {"bg": xi_bg[r.src], "uniform": un if c.needs_uniform else None}
        else:
            xi_bg = torch.randn(B, N, generator=g, device=dev, dtype=dt) * c.g_v
            eta = self.sigma * torch.randn(P, N, generator=g, device=dev, dtype=dt)
            noise = torch.cat([xi_bg, r.partner(xi_bg) + eta])
            kw = {}
        st, J = lif_step(p, c, s.st, r.stack(self.ext[t]), noise, **kw)
        return LIFRowsState(st, decorrelate(p.D_rec, st.r)), (eta, J)

    def readout(self, s: LIFRowsState) -> tuple[Tensor, Tensor]:
        """Draw ξ^o; o_t = W_out D_rec r_t + b_out, + σ ξ^o_t on the perturbed rows."""
        r = self.rows
        xo = self.sigma * torch.randn(r.P, self.p.W_out.shape[0], generator=self.generator,
                                      device=self.dev, dtype=self.dt)  # fmt: skip
        return readout(self.p, s.st.r) + torch.cat([self.zeros_bo, xo]), xo

    def record(self, step: Step) -> StepRecord:
        """z_hid = [û_t, κ q_{t−1}, 1] and z_out = [r̂_t, 1] of pass B, δ (``delta``: J, v
        or s of pass A minus pass B), δo, ε = η and σ ξ^o (pass B carries none)."""
        part, st = self.rows.partner, step.state.st
        eta, J = step.drawn_h
        Bb = self.rows.Bb
        now = {"drive": J, "v": st.v, "spike": st.s}[self.delta]
        kq = self.c.kappa * part(step.prev.st.q)  # κ q_{t−1}: I_syn = W_rec (κ q)
        return StepRecord(
            t=step.t,
            z_hid=torch.cat([part(step.u_hat), kq, *self.ones_h], 1),
            z_out=torch.cat([part(step.state.r_hat), *self.ones_o], 1),
            dx=now[Bb:] - part(now),
            do=step.o[Bb:] - part(step.o),
            eps_x=eta,
            eps_o=step.drawn_o,
            dl=step.dl,
        )


def lif_perturbation_estimate(
    p: LIFParams,
    c: LIFConsts,
    rule: PerturbationRule,
    inputs: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    generator: torch.Generator,
    *,
    sigma: float | None = None,
    K: int = 1,
    baseline: str = "clean",
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
    delta: str = "spike",
    x0: Tensor | None = None,
) -> PassResult:
    """Run the paired passes over ``inputs`` [T, B, n_in] and return the rule's estimate."""
    sigma = noise_sigma(sigma, c.sigma)
    check_pass_options(sigma, "clean", K)  # σ > 0, K ≥ 1: every driver's messages
    if baseline != "clean":
        raise ValueError("baseline: the LIF driver supports only a 'clean' (unperturbed) baseline")
    if delta not in ("drive", "v", "spike"):
        raise ValueError(f"delta: must be 'drive', 'v' or 'spike' (got {delta!r})")
    if getattr(rule, "perturbs", "nodes") != "nodes" or getattr(rule, "iterative", False):
        raise ValueError(
            f"rule: {getattr(rule, 'name', rule)!r} is not implemented for LIF networks "
            "(node-perturbation rules with one perturbed pass, three-factor and bptt are)"
        )
    rows = Rows.of(inputs.shape[1], K, 1, baseline, inputs.device)
    with torch.no_grad():
        pert = LIFNodeNoise(p, c, sigma, rows, generator, inputs, delta=delta)
    return paired_passes(
        pert, rule, targets, mask, loss_kind, keep_outputs=keep_outputs, decor=decor, x0=x0
    )
