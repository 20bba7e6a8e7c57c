"""What the rate network's paired passes perturb: its kinds of the one driver
(:func:`~.perturb.paired_passes`, the protocol :class:`~.perturbation.Perturbation`), the
choice among them (:func:`perturbation_for`, :func:`has_fast_path`) and the network's entry
points (:func:`perturbation_estimate`, :func:`generic_estimate`). The step-by-step kinds are
here; the chunked fast path (:class:`~.perturb_fast.ChunkedNodeNoise`) is perturb_fast.py.

:class:`NodeNoise` (``rule.perturbs == "nodes"``: np, anp, inp, rtg-np, users' node rules)
adds noise to the units after the step; the rule gets a
:class:`~bioplaus.rules.base.StepRecord`::

    x_t = (1 − α) x_{t−1} + α (W_rec r̂_{t−1} + W_in û_t + b) + σ √α ξ_t
    o_t = W_out r̂_t + b_out + σ ξᵒ_t
    drawn per step: ξ_A [P, N], (ξ_B [B_b, N]), ξᵒ_A [P, n_out], (ξᵒ_B [B_b, n_out])

(the B rows in parentheses only with a noisy baseline; INP masks ξ to the hidden layer on
group 0 and ξᵒ to the readout on group 1).

:class:`WeightNoise` (``rule.perturbs == "weights"``: wp) gives every noisy row its own
weights, fresh every step; the rule gets a :class:`~bioplaus.rules.weight_perturbation.WPRecord`::

    x_t = (1 − α) x_{t−1} + α (W_h + ΔW_t) z_t ,  z_t = [û_t; r̂_{t−1}; 1]
    o_t = (W_o + ΔV_t) [r̂_t; 1]
    drawn per step: ΔW [S − lo, N, M_h], then ΔV [S − lo, n_out, M_o], entries N(0, σ²)

(lo = B_b with a clean baseline: only the perturbed rows carry noise; lo = 0 with a noisy
one, whose baseline rows carry their own ΔW, ΔV).
"""

from __future__ import annotations

from typing import Any

import torch

from ....records import PassResult
from ....rules.base import PerturbationRule, StepRecord, check_pass_options
from ....rules.weight_perturbation import WPRecord
from ..pass_common import noise_sigma
from ..perturb import paired_passes
from ..perturbation import Perturbation, Rows, Step, StepPerturbation
from . import (
    RateConsts,
    RateParams,
    RateState,
    decorrelate,
    init_state,
    integrate,
    rate_step,
    readout,
)
from .perturb_fast import ChunkedNodeNoise

Tensor = torch.Tensor


class RateStep(StepPerturbation):
    """What the rate network's step kinds share: the rows' state before step 0 and û_t."""

    def init_state(self, x0: Tensor | None) -> RateState:
        """x_{−1} = x0 (or 0), r̂_{−1} = D_rec φ(x_{−1}) of all S rows
        (:func:`~bioplaus.backends.torch.rate.init_state`)."""
        return init_state(self.p, self.c._replace(sigma=0.0), self.rows.S, x0)

    def u_hat(self, t: int) -> Tensor:
        """û_t = D_in u_t [B, n_in]."""
        return decorrelate(self.p.D_in, self.inputs[t])


class NodeNoise(RateStep):
    """Node noise ξ on the hidden units (added after the Euler step, by :func:`rate_step`)
    and ξᵒ on the readout; the record is a :class:`StepRecord`."""

    def setup(self) -> None:
        """σ of the pass, σ √α, INP's group masks, zero ξ_B (clean baseline), bias ones."""
        p, c, sigma, rows = self.p, self.c, self.sigma, self.rows
        self.c_pass = c._replace(sigma=sigma)  # the pass's σ; ξ = 0 on clean baseline rows
        self.gain = sigma * c.alpha**0.5
        N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
        dev, dt = self.dev, self.dt
        P, Bb = rows.P, rows.Bb
        self.hid_on = self.out_on = None
        if rows.G == 2:  # INP: group 0 perturbs only the hidden layer, group 1 the readout
            grp = (torch.arange(P, device=dev) // rows.B) % rows.G
            self.hid_on, self.out_on = (grp == 0).to(dt), (grp == 1).to(dt)
        self.zeros_b = torch.zeros(Bb, N, device=dev, dtype=dt)
        self.zeros_bo = torch.zeros(Bb, n_out, device=dev, dtype=dt)
        self.ones_h, self.ones_o = self._ones(P, p.b), self._ones(P, p.b_out)

    def _draw(self, width: int, zeros_b: Tensor, on: Tensor | None) -> tuple[Tensor, Tensor]:
        """ξ_A [P, width], then ξ_B [B_b, width] (zeros with a clean baseline); INP: masked."""
        r = self.rows
        g, dev, dt = self.generator, self.dev, self.dt
        a = torch.randn(r.P, width, generator=g, device=dev, dtype=dt)
        b = torch.randn(r.Bb, width, generator=g, device=dev, dtype=dt) if r.noisy else zeros_b
        if on is not None:
            a = a * on[:, None]
            if r.noisy:
                b = b * on[:, None]
        return a, b

    def hidden(
        self, t: int, s: RateState, u_hat: Tensor
    ) -> tuple[RateState, tuple[Tensor, Tensor]]:
        """Draw ξ and run the step of all S rows: x_t = … + σ √α ξ_t (:func:`rate_step`)."""
        p = self.p
        drive_b = u_hat @ p.W_in.T  # [B, N], W_in û_t + b once per trial
        if p.b is not None:
            drive_b = drive_b + p.b
        xi_a, xi_b = self._draw(p.W_rec.shape[0], self.zeros_b, self.hid_on)
        s = rate_step(p, self.c_pass, s, self.rows.stack(drive_b), torch.cat([xi_b, xi_a]))
        return s, (xi_a, xi_b)

    def readout(self, s: RateState) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Draw ξᵒ; o_t = W_out r̂_t + b_out + σ ξᵒ_t."""
        xo_a, xo_b = self._draw(self.p.W_out.shape[0], self.zeros_bo, self.out_on)
        return readout(self.p, s.r_hat) + self.sigma * torch.cat([xo_b, xo_a]), (xo_a, xo_b)

    def record(self, step: Step) -> StepRecord:
        """δx, δo, ε = injected noise A − B, and pass B's presynaptic z (of each pair)."""
        r, s, o = self.rows, step.state, step.o
        (xi_a, xi_b), (xo_a, xo_b) = step.drawn_h, step.drawn_o
        part = r.partner
        z_u = step.u_hat if r.simple else step.u_hat[r.src[r.Bb :]]
        return StepRecord(
            t=step.t,
            z_hid=torch.cat([z_u, part(step.prev.r_hat), *self.ones_h], 1),
            z_out=torch.cat([part(s.r_hat), *self.ones_o], 1),
            dx=s.x[r.Bb :] - part(s.x),
            do=o[r.Bb :] - part(o),
            eps_x=self.gain * (xi_a - part(xi_b)),
            eps_o=self.sigma * (xo_a - part(xo_b)),
            dl=step.dl,
            hid_on=self.hid_on,
            out_on=self.out_on,
        )


class WeightNoise(RateStep):
    """Per-row weight noise ΔW (hidden layer [W_in, W_rec, b]) and ΔV (readout [W_out,
    b_out]), drawn fresh every step, one ``bmm`` each; the record is a :class:`WPRecord`."""

    def setup(self) -> None:
        """W_h = [W_in, W_rec, (b)], W_o = [W_out, (b_out)], the first noisy row and the
        bias ones."""
        p, rows = self.p, self.rows
        self.ones_h, self.ones_o = self._ones(rows.S, p.b), self._ones(rows.S, p.b_out)
        self.W_h = torch.cat([p.W_in, p.W_rec, *([p.b[:, None]] if p.b is not None else [])], 1)
        self.W_o = torch.cat([p.W_out, *([p.b_out[:, None]] if p.b_out is not None else [])], 1)
        self.lo = 0 if rows.noisy else rows.Bb  # the first row that carries weight noise

    def _draw(self, n: int, m: int) -> Tensor:
        """σ · N(0, 1) of shape [S − lo, n, m]."""
        shape = (self.rows.S - self.lo, n, m)
        return self.sigma * torch.randn(shape, generator=self.generator, device=self.dev,
                                        dtype=self.dt)  # fmt: skip

    def _perturbed(self, z: Tensor, W: Tensor, dW: Tensor) -> Tensor:
        """(W + ΔW_row) z_row for every row: z Wᵀ, plus ΔW z on the rows lo … S − 1."""
        y = z @ W.T
        y[self.lo :] += torch.bmm(dW, z[self.lo :, :, None])[:, :, 0]
        return y

    def hidden(self, t: int, s: RateState, u_hat: Tensor) -> tuple[RateState, Tensor]:
        """Draw ΔW; x_t = (1 − α) x_{t−1} + α (W_h + ΔW_t) [û_t; r̂_{t−1}; 1], r̂_t = D φ(x_t).

        The step is rate/__init__.py's :func:`integrate` (the Euler step of :func:`rate_step` from a
        given pre-activation): WP's pre-activation already holds W_rec r̂, in one matmul
        over [û; r̂; 1] plus one bmm."""
        z_h = torch.cat([self.rows.stack(u_hat), s.r_hat, *self.ones_h], 1)
        dW = self._draw(self.W_h.shape[0], self.W_h.shape[1])
        pre = self._perturbed(z_h, self.W_h, dW)
        s = integrate(self.p, self.c, s.x, pre, None)
        return s, dW

    def readout(self, s: RateState) -> tuple[Tensor, Tensor]:
        """Draw ΔV; o_t = (W_o + ΔV_t) [r̂_t; 1]."""
        dV = self._draw(self.W_o.shape[0], self.W_o.shape[1])
        return self._perturbed(torch.cat([s.r_hat, *self.ones_o], 1), self.W_o, dV), dV

    def record(self, step: Step) -> WPRecord:
        """ΔW and ΔV of pass A minus pass B (pass A's alone with a clean baseline), δℓ."""
        dW, dV = step.drawn_h, step.drawn_o
        if not self.rows.noisy:
            return WPRecord(step.t, dW, dV, step.dl)
        Bb = self.rows.Bb
        return WPRecord(step.t, dW[Bb:] - dW[:Bb], dV[Bb:] - dV[:Bb], step.dl)


def has_fast_path(rule: PerturbationRule, K: int, baseline: str) -> bool:
    """The chunked node noise of perturb_fast.py (:class:`~.perturb_fast.ChunkedNodeNoise`)
    serves every node-perturbation rule with a clean baseline and one perturbed pass per
    resample (any K, any credit signal): it hands the rule blocks of steps
    (``accumulate_block``, or step by step for a rule without it). A noisy baseline,
    iterative (per-layer) passes and weight perturbation advance step by step
    (:class:`NodeNoise`, :class:`WeightNoise`)."""
    return (
        baseline == "clean"
        and getattr(rule, "perturbs", "nodes") == "nodes"
        and not bool(getattr(rule, "iterative", False))
    )


def perturbation_for(
    rule: PerturbationRule,
    p: RateParams,
    c: RateConsts,
    sigma: float,
    K: int,
    baseline: str,
    generator: torch.Generator,
    inputs: Tensor,
    *,
    loop: bool = False,
    chunk: int | None = None,
    dyn_chunk: int | None = None,
) -> Perturbation:
    """The rate network's perturbation a rule asks for (its ``perturbs``: "nodes" or
    "weights"; its ``iterative``: INP's two groups of passes), on the rows of a batch
    ``inputs`` [T, B, n_in]: the chunked node noise where it serves the rule
    (:func:`has_fast_path`; blocks of ``chunk``, sub-chunks of ``dyn_chunk`` steps) unless
    ``loop`` (the step-by-step kinds, its reference)."""
    if not loop and has_fast_path(rule, K, baseline):
        rows = Rows.of(inputs.shape[1], K, 1, baseline, inputs.device)
        return ChunkedNodeNoise(
            p, c, sigma, rows, generator, inputs, rule=rule, chunk=chunk, dyn_chunk=dyn_chunk
        )
    weights = getattr(rule, "perturbs", "nodes") == "weights"
    G = 2 if not weights and bool(getattr(rule, "iterative", False)) else 1
    rows = Rows.of(inputs.shape[1], K, G, baseline, inputs.device)
    return (WeightNoise if weights else NodeNoise)(p, c, sigma, rows, generator, inputs)


def perturbation_estimate(
    p: RateParams,
    c: RateConsts,
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
    x0: Tensor | None = None,
    loop: bool = False,
    chunk: int | None = None,
    dyn_chunk: int | None = None,
) -> PassResult:
    """Run the paired passes over ``inputs`` [T, B, n_in] and return the rule's estimate:
    the rate network's perturbation for the rule (:func:`perturbation_for`:
    the chunked node noise where :func:`has_fast_path` serves the rule, in blocks of
    ``chunk`` and sub-chunks of ``dyn_chunk`` steps (None: its defaults); else, or with
    ``loop`` — the reference the fast path is tested against — node or weight noise step by
    step) run by :func:`paired_passes`."""
    sigma = noise_sigma(sigma, c.sigma)
    check_pass_options(sigma, baseline, K)
    with torch.no_grad():
        pert = perturbation_for(
            rule, p, c, sigma, K, baseline, generator, inputs,
            loop=loop, chunk=chunk, dyn_chunk=dyn_chunk,
        )  # fmt: skip
    return paired_passes(
        pert, rule, targets, mask, loss_kind, keep_outputs=keep_outputs, decor=decor, x0=x0
    )


def generic_estimate(*args: Any, **kw: Any) -> PassResult:
    """The step-by-step loop for every rule, node or weight perturbation, even where the
    fast path serves it: :func:`perturbation_estimate` with ``loop=True`` (same arguments)."""
    return perturbation_estimate(*args, loop=True, **kw)


def local_estimate_fast(
    p: RateParams, c: RateConsts, rule: PerturbationRule, *args: Any, **kw: Any
) -> PassResult:
    """:func:`perturbation_estimate` (same arguments, ``chunk`` and ``dyn_chunk``
    included) for a rule the chunked kind serves (:func:`has_fast_path`;
    a ValueError otherwise): the tests' handle on :class:`~.perturb_fast.ChunkedNodeNoise`."""
    if not has_fast_path(rule, kw.get("K", 1), kw.get("baseline", "clean")):
        raise ValueError(f"rule: {getattr(rule, 'name', rule)!r} has no chunked fast path")
    return perturbation_estimate(p, c, rule, *args, **kw)
