"""What the one paired-pass driver (perturb.py's :func:`~.perturb.paired_passes`) runs, one
object per kind of perturbation (:class:`Perturbation`, the driver's protocol): the chunks
of the pass (a chunk of steps of all rows, or for a network without time a chunk of
resamples), the dynamics of a chunk and what it draws from the generator (and in which
order), and the record(s) the rule receives. The driver owns the rest: the rule's state,
losses and their sums, the mask, δℓ, dS, when the decorrelation sums are added, the kept
outputs and the result.

Kinds that advance one step at a time are :class:`StepPerturbation` subclasses (a chunk is
one step: the state of the stacked rows at the start, per step the draws, the perturbed
hidden step and readout, the step's record): the rate network's two, here, and the LIF
network's (:class:`~.lif.perturb.LIFNodeNoise`: shared background noise, a current
perturbation on the synaptic drive) in lif/perturb.py. The rate network's fast path is a
chunked node-noise kind (:class:`~.perturb_fast.ChunkedNodeNoise`, blocks of steps as
GEMMs), the MLP's a layered one (:class:`~.mlp.LayeredPerturbation`, chunks of resamples).

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

Rows of the stacked batch (:class:`Rows`): [ baseline (B, or P when noisy) | perturbed
(P = K·G·B) ]; perturbed row i pairs with baseline row i mod B (clean) or i (noisy). Every
row's trial is its index mod B, so a chunk's outputs are [n, R, B, n_out]: R = S / B
replicas of the batch, the R_b = B_b / B baseline replicas first, and perturbed replica j
pairs with baseline replica j mod R_b (:class:`Chunk`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch

from ...records import PassResult
from ...rules.base import Context, Estimate, PerturbationRule, StepRecord
from ...rules.weight_perturbation import WPRecord
from .pass_common import add_decor_, decor_sums, split_grads
from .rate import (
    RateConsts,
    RateParams,
    RateState,
    decorrelate,
    init_state,
    integrate,
    rate_step,
    readout,
)

Tensor = torch.Tensor


class Rows(NamedTuple):
    """The stacked batch of the paired passes: S = B_b + P rows, B_b baseline rows first."""

    B: int  # trials in the batch
    G: int  # groups of perturbed passes (2 for INP: hidden-only, readout-only)
    P: int  # perturbed rows, K·G·B
    Bb: int  # baseline rows: B (clean) or P (noisy)
    S: int  # all rows
    noisy: bool  # the baseline rows are perturbed too
    simple: bool  # K = G = 1, clean baseline: rows pair one-to-one, slices suffice
    src: Tensor  # [S] the input/target row (trial) of every stacked row
    pair: Tensor  # [P] the baseline row of every perturbed row

    @property
    def K(self) -> int:
        """Perturbed resamples per trial and group: P / (G·B)."""
        return self.P // (self.G * self.B)

    @staticmethod
    def of(B: int, K: int, G: int, baseline: str, device: torch.device) -> Rows:
        P = K * G * B
        noisy = baseline == "noisy"
        Bb = P if noisy else B
        S = Bb + P
        return Rows(
            B, G, P, Bb, S, noisy, K == 1 and G == 1 and not noisy,
            torch.arange(S, device=device) % B, torch.arange(P, device=device) % Bb,
        )  # fmt: skip

    def stack(self, z: Tensor) -> Tensor:
        """[B, ·] per trial → [S, ·] per stacked row."""
        return z.repeat(2, 1) if self.simple else z[self.src]

    def partner(self, z: Tensor) -> Tensor:
        """[S, ·] (or the [B_b, ·] baseline rows) → [P, ·], the baseline partner of every
        perturbed row."""
        return z[: self.Bb] if self.simple else z[: self.Bb][self.pair]


class Step(NamedTuple):
    """What :class:`StepPerturbation` hands its :meth:`~StepPerturbation.record` about
    step t (all S rows)."""

    t: int
    u_hat: Tensor  # [B, n_in] û_t
    prev: Any  # the state after step t − 1 (rate: x, r̂; its r̂ is r̂_{t−1})
    state: Any  # the state after step t (rate: x_t, r̂_t)
    o: Tensor  # [S, n_out] o_t
    drawn_h: Any  # what :meth:`Perturbation.hidden` drew
    drawn_o: Any  # what :meth:`Perturbation.readout` drew
    dl: Tensor  # [P] δℓ_t = m_t (ℓ_A − ℓ_B) of every perturbed row


class Chunk(NamedTuple):
    """One chunk the driver runs: steps t0 … t0 + n − 1 (t0 = 0, n = 1 without time) of the
    perturbed rows ``rows`` (a slice of the P; all of them on a recurrent network). Its
    outputs hold ``base`` baseline replicas of the batch first (R_b: 1 clean, P / B noisy),
    then the perturbed ones; ``base = 0``: the chunk carries only perturbed rows, which
    pair with the baseline of the last chunk that had one (the MLP's clean pass, computed
    once for every chunk of resamples)."""

    t0: int
    n: int
    base: int
    rows: slice

    @property
    def width(self) -> int:
        """Perturbed rows in the chunk."""
        return self.rows.stop - self.rows.start


class Perturbation:
    """The driver's protocol: one kind of paired passes (:func:`~.perturb.paired_passes`).

    What the driver asks, in this order: :meth:`init_rule` and :meth:`context` (the rule's
    state and constants), :meth:`start` (the rows' state before the first chunk),
    :meth:`decor_sums`; then for every chunk of :meth:`chunks`: :meth:`run` (draw and run
    the chunk: the stacked outputs [n, R, B, n_out]), the driver's losses and δℓ,
    :meth:`chunk_record` (the rule's record of the chunk, or None: a block not yet full) fed
    by :meth:`feed`, and :meth:`add_decor_`; at the end :meth:`finalize`, :meth:`loss`,
    :meth:`loss_perturbed`, :meth:`decor_result` and :meth:`result`. The defaults are the
    recurrent rate/LIF contract (``rule.init(P, M_h, N, M_o, n_out, like)``,
    ``finalize(state, dS, Σm·K)``, a :class:`~bioplaus.records.PassResult`, and an
    ``__init__`` from parameters, constants, σ, :class:`Rows`, the generator and the inputs
    [T, B, n_in]); a kind of another contract (the MLP's layered rules) brings its own.
    :attr:`pairs` sizes dS, :attr:`sum_dtype` the loss sums. Subclasses:
    :class:`StepPerturbation` (:class:`NodeNoise`, :class:`WeightNoise`,
    :class:`~.lif.perturb.LIFNodeNoise`), :class:`~.perturb_fast.ChunkedNodeNoise`,
    :class:`~.mlp.LayeredPerturbation`."""

    def __init__(
        self,
        p: RateParams,
        c: Any,
        sigma: float,
        rows: Rows,
        generator: torch.Generator,
        inputs: Tensor,
    ) -> None:
        self.p, self.c, self.sigma, self.rows, self.generator = p, c, sigma, rows, generator
        self.inputs = inputs  # [T, B, n_in]
        self.dev, self.dt = inputs.device, inputs.dtype
        self.setup()

    def setup(self) -> None:
        """What a kind precomputes once per pass (called by ``__init__``)."""

    @property
    def pairs(self) -> int:
        """P, the perturbed rows of the whole pass (the length of dS)."""
        return self.rows.P

    #: dtype of the driver's loss sums (None: the pass's)
    sum_dtype: torch.dtype | None = None

    def init_rule(self, rule: PerturbationRule) -> object:
        """The rule's zero state: ``rule.init(P, M_h, N, M_o, n_out, W_rec)``."""
        p = self.p
        N = p.W_rec.shape[0]
        M_h = p.W_in.shape[1] + N + (p.b is not None)
        M_o = N + (p.b_out is not None)
        return rule.init(self.rows.P, M_h, N, M_o, p.W_out.shape[0], p.W_rec)

    def context(self) -> Context:
        """The rule's constants: α, σ and the noise-variance factor (2 with a noisy
        baseline: both passes of a pair carry independent noise, 1 with a clean one)."""
        return Context(self.c.alpha, self.sigma, 2.0 if self.rows.noisy else 1.0)

    def start(self, x0: Tensor | None) -> None:
        """Set the rows' state before the first chunk (``x0`` [B, N] per trial, or None)."""
        raise NotImplementedError

    def chunks(self) -> Iterator[Chunk]:
        """The chunks of the pass, in order (the kind may do work between them)."""
        raise NotImplementedError

    def run(self, chunk: Chunk) -> Tensor:
        """Draw the chunk's noise, run its dynamics and return the outputs of its stacked
        rows, [n, R, B, n_out] (:class:`Chunk`)."""
        raise NotImplementedError

    def chunk_record(self, chunk: Chunk, dl: Tensor) -> Any:
        """The rule's record of the chunk just run, given its δℓ [n, width] (None: nothing
        for the rule yet)."""
        raise NotImplementedError

    def feed(self, rule: PerturbationRule, state: object, rec: Any, ctx: Any) -> object:
        """Hand the rule a record: ``rule.accumulate``."""
        return rule.accumulate(state, rec, ctx)

    def decor_sums(self, keys: tuple[str, ...]) -> dict[str, Tensor]:
        """Zeroed Σ y yᵀ accumulators of the decorrelation statistics ``keys``."""
        p = self.p
        return decor_sums(keys, p.W_in.shape[1], p.W_rec.shape[0], p.W_rec)

    def add_decor_(self, yy: dict[str, Tensor], chunk: Chunk) -> None:
        """Add the chunk's baseline rows to the decorrelation sums."""
        raise NotImplementedError

    def decor_result(self, yy: dict[str, Tensor], count: float) -> dict[str, tuple[Tensor, float]]:
        """The statistics of the result: (Σ y yᵀ, count) per key."""
        return {k: (v, count) for k, v in yy.items()}

    def finalize(
        self, rule: PerturbationRule, state: object, dS: Tensor, norm_b: float
    ) -> Estimate:
        """The rule's estimate: ``rule.finalize(state, dS, Σm·K)``."""
        return rule.finalize(state, dS, norm_b * self.rows.K)

    def loss_norm(self, norm_b: float) -> float:
        """The denominator of the baseline loss: Σ m over the B_b baseline rows,
        norm_b · B_b / B (norm_b = Σ m over the batch)."""
        return norm_b * self.rows.Bb / self.rows.B

    def loss(self, sum_lb: Tensor, norm_b: float) -> float:
        """L of the baseline rows: Σ m ℓ_B / :meth:`loss_norm`."""
        return float(sum_lb) / self.loss_norm(norm_b)

    def loss_perturbed(self, sum_la: Tensor, norm_b: float) -> float:
        """L of the perturbed rows: Σ m ℓ_A / (Σm · K · G)."""
        return float(sum_la) / (norm_b * self.rows.K * self.rows.G)

    def result(
        self,
        est: Estimate,
        loss: float,
        loss_perturbed: float,
        outputs: Tensor | None,
        decor: dict[str, tuple[Tensor, float]],
    ) -> PassResult:
        """The pass's record: the estimate split into the parameters' gradients."""
        return PassResult(
            grads=split_grads(self.p, est.hid, est.out),
            loss=loss,
            loss_perturbed=loss_perturbed,
            outputs=outputs,
            decor=decor,
        )


class StepPerturbation(Perturbation):
    """A kind that advances one step at a time: every chunk is one step t of all S rows.
    What a step does is split in: the state of all S rows before the first step
    (:meth:`init_state`), û_t (:meth:`u_hat`), draw and run the hidden step
    (:meth:`hidden`), draw and run the readout (:meth:`readout`), and make the rule's
    record of the step (:meth:`record`) from what they drew. A state is the kind's own,
    with ``r_hat`` [S, N]: the r̂_t whose baseline rows feed the decorrelation sums
    Σ r̂ r̂ᵀ (with Σ û ûᵀ, per step)."""

    def start(self, x0: Tensor | None) -> None:
        """s_{−1} = :meth:`init_state` of the stacked rows (``x0`` of each row's trial)."""
        self.state = self.init_state(None if x0 is None else x0[self.rows.src])

    def chunks(self) -> Iterator[Chunk]:
        """Every step t = 0 … T − 1, all P perturbed rows, R_b = B_b / B."""
        r = self.rows
        every = slice(0, r.P)
        return (Chunk(t, 1, r.Bb // r.B, every) for t in range(self.inputs.shape[0]))

    def run(self, chunk: Chunk) -> Tensor:
        """Step t: û_t, the hidden step and the readout (each with its draws)."""
        t = chunk.t0
        u_hat = self.u_hat(t)  # [B, n_in]
        prev = self.state
        s, drawn_h = self.hidden(t, prev, u_hat)
        o, drawn_o = self.readout(s)
        self.state, self.step = s, (t, u_hat, prev, s, o, drawn_h, drawn_o)
        return o.view(1, -1, self.rows.B, o.shape[-1])

    def chunk_record(self, chunk: Chunk, dl: Tensor) -> StepRecord | WPRecord:
        """The step's record (:meth:`record`), δℓ_t [P]."""
        return self.record(Step(*self.step, dl[0]))

    def add_decor_(self, yy: dict[str, Tensor], chunk: Chunk) -> None:
        """Σ û ûᵀ and Σ r̂ r̂ᵀ += the step's baseline rows (the first B)."""
        add_decor_(yy, self.step[1], self.state.r_hat[: self.rows.B])

    def init_state(self, x0: Tensor | None) -> Any:
        """The state of all S rows before step 0 (``x0`` [S, N] per stacked row, or None).
        Rate: x_{−1} = x0 (or 0), r̂_{−1} = D_rec φ(x_{−1}) (:func:`~.rate.init_state`)."""
        return init_state(self.p, self.c._replace(sigma=0.0), self.rows.S, x0)

    def u_hat(self, t: int) -> Tensor:
        """û_t = D_in u_t [B, n_in]."""
        return decorrelate(self.p.D_in, self.inputs[t])

    def _ones(self, n: int, bias: Tensor | None) -> list[Tensor]:
        """[ones [n, 1]], the presynaptic 1 of a bias column, or [] without the bias."""
        return [torch.ones(n, 1, device=self.dev, dtype=self.dt)] if bias is not None else []

    def hidden(self, t: int, s: Any, u_hat: Tensor) -> tuple[Any, Any]:
        """Draw this step's hidden-layer noise and return the new state of all S rows, and
        what was drawn."""
        raise NotImplementedError

    def readout(self, s: Any) -> tuple[Tensor, Any]:
        """Draw this step's readout noise and return o_t of all S rows (from the state
        after the hidden step), and what was drawn."""
        raise NotImplementedError

    def record(self, step: Step) -> StepRecord | WPRecord:
        """The rule's record of the step."""
        raise NotImplementedError


class NodeNoise(StepPerturbation):
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


class WeightNoise(StepPerturbation):
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

        The step is rate.py's :func:`integrate` (the Euler step of :func:`rate_step` from a
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
        from .perturb_fast import ChunkedNodeNoise  # imports this module

        rows = Rows.of(inputs.shape[1], K, 1, baseline, inputs.device)
        return ChunkedNodeNoise(
            p, c, sigma, rows, generator, inputs, rule=rule, chunk=chunk, dyn_chunk=dyn_chunk
        )
    weights = getattr(rule, "perturbs", "nodes") == "weights"
    G = 2 if not weights and bool(getattr(rule, "iterative", False)) else 1
    rows = Rows.of(inputs.shape[1], K, G, baseline, inputs.device)
    return (WeightNoise if weights else NodeNoise)(p, c, sigma, rows, generator, inputs)
