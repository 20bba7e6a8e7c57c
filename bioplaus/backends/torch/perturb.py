"""The paired-pass driver of the perturbation rules: ONE function (:func:`paired_passes`) for
every network type and kind of noise on torch — rate node noise (np, anp, inp, rtg-np,
users' node rules; clean or noisy baseline, K resamples, INP's groups), rate weight noise
(wp), the LIF node-perturbation family (lif/perturb.py) and the MLP's layered rules
(mlp.py).

Pass B (the baseline: clean, or a second noisy pass) and pass A (K noisy resamples) run
stacked in one batch of B_b + K·G·B rows. What is run, and how, is a perturbation object's
(perturbation.py's protocol, :class:`~.perturbation.Perturbation`): the chunks of the pass,
each chunk's draws (in the kind's order from the generator) and dynamics, and the rule's
record of it. The driver owns the rest, the same for all: the rule's state (``init``, the
records handed on, ``finalize``), the losses and their sums, the mask, δℓ, dS, the kept
outputs, when decorrelation statistics are added, and the result::

    per chunk (steps t0 … t0 + n − 1; n = 1 without time):
        o = run(chunk)                       [n, R, B, n_out], R_b baseline replicas first
        ℓ = m ⊙ ℓ(o, y)      Σ ℓ_B += ℓ[:, :R_b],  Σ ℓ_A += ℓ[:, R_b:]
        δℓ = ℓ_A − ℓ_B(partner)   (perturbed replica j ↔ baseline replica j mod R_b)
        rule ← record(chunk, δℓ)   dS += Σ_t δℓ_t   outputs, Σ y yᵀ
    L = Σ ℓ_B / Σm (per baseline row),  L_A = Σ ℓ_A / (Σm · K · G),  rule.finalize

Row layout:  [ baseline rows (B, or P when noisy) | perturbed rows (P = K·G·B) ];
perturbed row i pairs with baseline row i mod B (clean) or i (noisy). G = 1, except for INP
(iterative NP), where G groups of passes perturb one layer each (rate: the hidden layer or
the readout; MLP: one of L layers); a noisy baseline row carries the same pattern as its
partner. Every row's trial is its index mod B, which is why a chunk's outputs are R = S / B
replicas of the batch.

The kinds (the rate network's entry point :func:`~.rate.perturb.perturbation_estimate` picks
its kind with :func:`~.rate.perturb.perturbation_for`; the LIF network's and the MLP's
entry points build theirs):

- :class:`~.rate.perturb.NodeNoise`, :class:`~.rate.perturb.WeightNoise` (rate) and
  :class:`~.lif.perturb.LIFNodeNoise` advance one step per chunk
  (:class:`~.perturbation.StepPerturbation`; a StepRecord or WPRecord per step): a noisy
  baseline, INP and WP on the rate network, every LIF rule, and with ``loop=True`` every
  rate rule (the reference the chunked kind is tested against);
- :class:`~.rate.perturb_fast.ChunkedNodeNoise`, the rate network's fast path: node noise
  with a clean baseline (any K, any credit signal, :func:`~.rate.perturb.has_fast_path`),
  the time loop in sub-chunks of fused steps and the rule fed one BlockRecord per block of
  steps;
- :class:`~.mlp.LayeredPerturbation`: the MLP, no time, chunks of resamples after one clean
  pass, a LayerRecord or WeightRecord per chunk, an MLPResult.

Memory is independent of the sequence length T (outputs are kept only when asked).
"""

from __future__ import annotations

from typing import Any

import torch

from ...loss import normaliser, step_loss
from ...rules.base import PerturbationRule
from .perturbation import Perturbation

__all__ = ["paired_passes"]

Tensor = torch.Tensor


def paired_passes(
    pert: Perturbation,
    rule: PerturbationRule,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    *,
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
    x0: Tensor | None = None,
) -> Any:
    """The driver, for any kind of perturbation ``pert`` (perturbation.py's protocol:
    :func:`~.rate.perturb.perturbation_for` on the rate network, LIF's
    :class:`~.lif.perturb.LIFNodeNoise`, the MLP's :class:`~.mlp.LayeredPerturbation`),
    which holds the parameters, the inputs, σ, the rows and the generator. ``targets``
    [T, B, n_out] (T = 1 without time), ``mask`` [T, B] or None; ``x0`` [B, N]: the initial
    state of each trial (its meaning is the network's: x for rate, v for LIF). Per chunk
    (outputs o [n, R, B, n_out], R_b baseline replicas first)::

        ℓ = m ⊙ ℓ(o, y)   δℓ = ℓ_A − ℓ_B(partner)   Σ ℓ_B, Σ ℓ_A   dS += Σ_t δℓ_t

    then the chunk's record to the rule and its rows to the decorrelation sums; the result
    is the kind's (:meth:`~.perturbation.Perturbation.result`)."""
    T, B = targets.shape[0], targets.shape[1]
    with torch.no_grad():
        state = pert.init_rule(rule)
        ctx = pert.context()
        pert.start(x0)
        dS = targets.new_zeros(pert.pairs)
        sums = dict(device=targets.device, dtype=pert.sum_dtype or targets.dtype)
        sum_lb, sum_la = torch.zeros((), **sums), torch.zeros((), **sums)
        outs = []
        yy = pert.decor_sums(decor)
        ell_b = None  # the losses of the last baseline rows (the first chunk has some)
        for ch in pert.chunks():
            o = pert.run(ch)  # [n, R, B, n_out]
            ell = step_loss(loss_kind, o, targets[ch.t0 : ch.t0 + ch.n, None])  # [n, R, B]
            if mask is not None:
                ell = ell * mask[ch.t0 : ch.t0 + ch.n, None]
            if ch.base:
                ell_b = ell[:, : ch.base]
                sum_lb += ell_b.sum()
            ell_a = ell[:, ch.base :]
            sum_la += ell_a.sum()
            dl = (ell_a - ell_b).reshape(ch.n, ch.width)  # replica j − baseline j mod R_b
            rec = pert.chunk_record(ch, dl)
            if rec is not None:
                state = pert.feed(rule, state, rec, ctx)
            dS[ch.rows] += dl.sum(0)
            if keep_outputs and ch.base:  # the first baseline replica: the trials' outputs
                outs.append(o[:, 0].clone())
            pert.add_decor_(yy, ch)
        norm_b = normaliser(mask, T, B)
        est = pert.finalize(rule, state, dS, norm_b)
    return pert.result(
        est,
        pert.loss(sum_lb, norm_b),
        pert.loss_perturbed(sum_la, norm_b),
        torch.cat(outs) if keep_outputs else None,
        pert.decor_result(yy, float(T * B)),
    )
