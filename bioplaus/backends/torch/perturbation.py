"""What the one paired-pass driver (perturb.py's :func:`~.perturb.paired_passes`) runs, one
object per kind of perturbation (:class:`Perturbation`, the driver's protocol): the chunks
of the pass (a chunk of steps of all rows, or for a network without time a chunk of
resamples), the dynamics of a chunk and what it draws from the generator (and in which
order), and the record(s) the rule receives. The driver owns the rest: the rule's state,
losses and their sums, the mask, δℓ, dS, when the decorrelation sums are added, the kept
outputs and the result. This module is the protocol only; the kinds live with their
network.

Kinds that advance one step at a time are :class:`StepPerturbation` subclasses (a chunk is
one step: the state of the stacked rows at the start, per step the draws, the perturbed
hidden step and readout, the step's record): the rate network's two
(:class:`~.rate.perturb.NodeNoise`, :class:`~.rate.perturb.WeightNoise`) in rate/perturb.py,
and the LIF network's (:class:`~.lif.perturb.LIFNodeNoise`: shared background noise, a
current perturbation on the synaptic drive) in lif/perturb.py. The rate network's fast path
is a chunked node-noise kind (:class:`~.rate.perturb_fast.ChunkedNodeNoise`, blocks of steps
as GEMMs), the MLP's a layered one (:class:`~.mlp.LayeredPerturbation`, chunks of
resamples).

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
    :class:`StepPerturbation` (:class:`~.rate.perturb.NodeNoise`,
    :class:`~.rate.perturb.WeightNoise`, :class:`~.lif.perturb.LIFNodeNoise`),
    :class:`~.rate.perturb_fast.ChunkedNodeNoise`, :class:`~.mlp.LayeredPerturbation`."""

    def __init__(
        self,
        p: Any,
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
        """The state of all S rows before step 0 (``x0`` [S, N] per stacked row, or None)."""
        raise NotImplementedError

    def u_hat(self, t: int) -> Tensor:
        """û_t = D_in u_t [B, n_in], the decorrelated input of step t."""
        raise NotImplementedError

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
