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
from .pass_common import add_decor_, decor_sums, noise_sigma, split_grads
from .perturbation import Perturbation, Step, perturbation_for
from .rate import RateConsts, RateParams

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
    on the chunked fast path where it serves the rule (:func:`has_fast_path`), else (or
    with ``loop``: the reference the fast path is tested against) the step-by-step loop of
    :func:`paired_passes`, one record per step (the perturbation's: StepRecord or WPRecord)
    handed to ``rule.accumulate``."""
    sigma = noise_sigma(sigma, c.sigma)
    check_pass_options(sigma, baseline, K)
    if not loop and has_fast_path(rule, K, baseline):
        from .perturb_fast import local_estimate_fast  # imports this module

        return local_estimate_fast(
            p, c, rule, inputs, targets, mask, loss_kind, generator, sigma=sigma, K=K,
            keep_outputs=keep_outputs, decor=decor, x0=x0,
        )  # fmt: skip
    with torch.no_grad():
        pert = perturbation_for(rule, p, c, sigma, K, baseline, generator, inputs)
    return paired_passes(
        pert, rule, targets, mask, loss_kind, keep_outputs=keep_outputs, decor=decor, x0=x0
    )


def has_fast_path(rule: PerturbationRule, K: int, baseline: str) -> bool:
    """The chunked loop of perturb_fast.py serves every node-perturbation rule with a clean
    baseline and one perturbed pass per resample (any K, any credit signal): it hands the
    rule blocks of steps (``accumulate_block``, or step by step for a rule without it).
    A noisy baseline, iterative (per-layer) passes and weight perturbation run the loop of
    :func:`paired_passes`."""
    return (
        baseline == "clean"
        and getattr(rule, "perturbs", "nodes") == "nodes"
        and not bool(getattr(rule, "iterative", False))
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
) -> PassResult:
    """The loop itself, for any network whose perturbation object ``pert`` (perturbation.py's
    protocol; rate: :func:`~.perturbation.perturbation_for`, LIF:
    :class:`~.lif_perturb.LIFNodeNoise`) holds the parameters, the inputs [T, B, n_in], σ, the
    rows and the generator. ``x0`` [B, N]: the initial state of each trial (its meaning is
    the network's: x for rate, v for LIF)."""
    p, rows, inputs = pert.p, pert.rows, pert.inputs
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    dev, dt = inputs.device, inputs.dtype
    Bb, P, simple = rows.Bb, rows.P, rows.simple
    src_base, src_pert = rows.src[:Bb], rows.src[Bb:]

    with torch.no_grad():
        M_h = p.W_in.shape[1] + N + (p.b is not None)
        M_o = N + (p.b_out is not None)
        state_rule = rule.init(P, M_h, N, M_o, n_out, p.W_rec)
        ctx = pert.context()
        s = pert.init_state(None if x0 is None else x0[rows.src])
        dS = torch.zeros(P, device=dev, dtype=dt)
        sum_lb = torch.zeros((), device=dev, dtype=dt)
        sum_la = torch.zeros((), device=dev, dtype=dt)
        outs = []
        yy = decor_sums(decor, p.W_in.shape[1], N, p.W_rec)
        for t in range(T):
            u_hat = pert.u_hat(t)  # [B, n_in]
            s_prev = s
            s, drawn_h = pert.hidden(t, s, u_hat)
            o, drawn_o = pert.readout(s)
            ell = step_loss(loss_kind, o, rows.stack(targets[t]))
            ell_b, ell_a = ell[:Bb], ell[Bb:]
            if mask is not None:
                m = mask[t]
                ell_b = ell_b * (m if Bb == B else m[src_base])
                ell_a = ell_a * (m if simple else m[src_pert])
            sum_lb += ell_b.sum()
            sum_la += ell_a.sum()
            dl = ell_a - (ell_b if simple else ell_b[rows.pair])
            rec = pert.record(Step(t, u_hat, s_prev, s, o, drawn_h, drawn_o, dl))
            state_rule = rule.accumulate(state_rule, rec, ctx)
            dS += dl
            if keep_outputs:
                outs.append(o[:B])
            add_decor_(yy, u_hat, s.r_hat[:B])
        norm_b = normaliser(mask, T, B)
        est = rule.finalize(state_rule, dS, norm_b * rows.K)
    return PassResult(
        grads=split_grads(p, est.hid, est.out),
        loss=float(sum_lb) / pert.loss_norm(norm_b),
        loss_perturbed=float(sum_la) / (norm_b * rows.K * rows.G),
        outputs=torch.stack(outs) if keep_outputs else None,
        decor={k: (v, float(T * B)) for k, v in yy.items()},
    )
