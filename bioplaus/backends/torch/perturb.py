"""Paired-pass driver for the perturbation rules: ONE loop (:func:`paired_passes`) for node
noise (np, anp, inp, rtg-np, users' node rules) and weight noise (wp) on the rate network,
and for the node-perturbation family on the LIF network (lif_perturb.py).

Pass B (the baseline: clean, or a second noisy pass) and pass A (K noisy resamples) run
stacked in one batch of B_b + K·G·B rows, so every step is one matmul. The state of the
rows at the start, û_t, what a step draws, how it perturbs the hidden step and the readout,
and the record the rule sees are the perturbation object's (perturbation.py's protocol):
:class:`~.perturbation.NodeNoise` (ξ on the units after the step, a
:class:`~bioplaus.rules.base.StepRecord`) or :class:`~.perturbation.WeightNoise` (per-row
ΔW, ΔV, a :class:`~bioplaus.rules.weight_perturbation.WPRecord`), chosen by the rule's
``perturbs``; on LIF, :class:`~.lif_perturb.LIFNodeNoise` (shared background noise, a
current η on the synaptic drive, a StepRecord of δJ, δv or δs). The loop owns the rest, the
same for all three: rows, losses, mask, δℓ, the rule's online accumulation, decorrelation
statistics (of the state's r̂), outputs. Memory is independent of the sequence length T
(outputs are kept only when asked)::

    per step t:  û_t = D_in u_t ;  s_t = hidden(s_{t−1}, û_t) ;  o_t = readout(s_t)
                 δℓ_t = m_t (ℓ(o_t^A, y_t) − ℓ(o_t^B, y_t)) ;  rule.accumulate(record_t)

(rate: s_t = (x_t, r̂_t); LIF: (v, q, r, refractory count, s)_t and r̂_t = D_rec r_t).

Row layout:  [ baseline rows (B, or P when noisy) | perturbed rows (P = K·G·B) ];
perturbed row i pairs with baseline row i mod B (clean) or i (noisy). G = 1, except for INP
(iterative NP), where G = 2 groups of passes perturb only the hidden layer (group 0) or only
the readout (group 1); a noisy baseline row carries the same pattern as its partner.

On the rate network every node-perturbation rule with a clean baseline (any K, any credit
signal) takes the chunked fast path of perturb_fast.py instead (the same estimator, fed to
the rule in blocks of steps); a noisy baseline, INP and WP run the loop here, as does every
LIF rule.
"""

from __future__ import annotations

from typing import Any

import torch

from ...loss import normaliser, step_loss
from ...records import PassResult  # the record lives in bioplaus/records.py
from ...rules.base import PerturbationRule, check_pass_options
from .pass_common import noise_sigma
from .perturbation import Perturbation, has_fast_path, perturbation_for
from .rate import RateConsts, RateParams

__all__ = ["generic_estimate", "has_fast_path", "paired_passes", "perturbation_estimate"]

Tensor = torch.Tensor


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
) -> PassResult:
    """Run the paired passes over ``inputs`` [T, B, n_in] and return the rule's estimate:
    the rate network's perturbation for the rule (:func:`~.perturbation.perturbation_for`:
    the chunked node noise where :func:`has_fast_path` serves the rule, else, or with
    ``loop`` — the reference the fast path is tested against — node or weight noise step by
    step) run by :func:`paired_passes`."""
    sigma = noise_sigma(sigma, c.sigma)
    check_pass_options(sigma, baseline, K)
    with torch.no_grad():
        pert = perturbation_for(rule, p, c, sigma, K, baseline, generator, inputs, loop=loop)
    return paired_passes(
        pert, rule, targets, mask, loss_kind, keep_outputs=keep_outputs, decor=decor, x0=x0
    )


def generic_estimate(*args: Any, **kw: Any) -> PassResult:
    """The step-by-step loop for every rule, node or weight perturbation, even where the
    fast path serves it: :func:`perturbation_estimate` with ``loop=True`` (same arguments)."""
    return perturbation_estimate(*args, loop=True, **kw)


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
    :func:`~.perturbation.perturbation_for` on the rate network, LIF's
    :class:`~.lif_perturb.LIFNodeNoise`, the MLP's :class:`~.mlp.LayeredPerturbation`),
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
        ell_b = None  # the losses of the last baseline rows
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
            dl = (ell_a - ell_b).reshape(ch.n, ch.width)  # perturbed row i ↔ replica i mod R_b
            rec = pert.chunk_record(ch, dl)
            if rec is not None:
                state = pert.feed(rule, state, rec, ctx)
            dS[ch.rows] += dl.sum(0)
            if keep_outputs:
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
