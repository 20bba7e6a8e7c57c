"""Paired-pass driver for the node-perturbation family on the rate network.

Pass B (the baseline: clean, or a second noisy pass) and pass A (K noisy resamples) run
stacked in one batch of B_b + K·B rows, so every step is one matmul. The rule sees one
:class:`~bioplaus.rules.base.StepRecord` per step and accumulates its estimate online:
memory is independent of the sequence length T (outputs are kept only when asked).

Row layout:  [ baseline rows (B, or P when noisy) | perturbed rows (P = K·G·B) ];
perturbed row i pairs with baseline row i mod B (clean) or i (noisy). G = 1, except for INP
(iterative NP), where G = 2 groups of passes perturb only the hidden layer (group 0) or only
the readout (group 1); a noisy baseline row carries the same pattern as its partner.

Every node-perturbation rule with a clean baseline (any K, any credit signal) takes the
chunked fast path of perturb_fast.py (the same estimator, fed to the rule in blocks of steps).

Weight perturbation (rule "wp") runs the same layout with per-row weight noise ΔW instead
of node noise (:func:`weight_perturbation_estimate`).
"""

from __future__ import annotations

import torch

from ...loss import normaliser, step_loss
from ...records import PassResult  # the record lives in bioplaus/records.py
from ...rules.base import Context, PerturbationRule, StepRecord, check_pass_options
from ...rules.weight_perturbation import WPRecord
from .pass_common import add_decor_, decor_sums, noise_sigma, split_grads
from .rate import RateConsts, RateParams, RateState, decorrelate, init_state, rate_step, readout

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
) -> PassResult:
    """Run the paired passes over ``inputs`` [T, B, n_in] and return the rule's estimate."""
    if getattr(rule, "perturbs", "nodes") == "weights":  # the WPRecord contract
        return weight_perturbation_estimate(
            p, c, rule, inputs, targets, mask, loss_kind, generator, sigma=sigma, K=K,
            baseline=baseline, keep_outputs=keep_outputs, decor=decor, x0=x0,
        )  # fmt: skip
    sigma = noise_sigma(sigma, c.sigma)
    check_pass_options(sigma, baseline, K)
    if has_fast_path(rule, K, baseline):
        from .perturb_fast import local_estimate_fast  # imports this module

        return local_estimate_fast(
            p, c, rule, inputs, targets, mask, loss_kind, generator, sigma=sigma, K=K,
            keep_outputs=keep_outputs, decor=decor, x0=x0,
        )  # fmt: skip
    return generic_estimate(
        p, c, rule, inputs, targets, mask, loss_kind, generator, sigma=sigma, K=K,
        baseline=baseline, keep_outputs=keep_outputs, decor=decor, x0=x0,
    )  # fmt: skip


def has_fast_path(rule: PerturbationRule, K: int, baseline: str) -> bool:
    """The chunked loop of perturb_fast.py serves every node-perturbation rule with a clean
    baseline and one perturbed pass per resample (any K, any credit signal): it hands the
    rule blocks of steps (``accumulate_block``, or step by step for a rule without it).
    A noisy baseline and iterative (per-layer) passes run the generic loop."""
    return (
        baseline == "clean"
        and getattr(rule, "perturbs", "nodes") == "nodes"
        and not bool(getattr(rule, "iterative", False))
    )


def generic_estimate(
    p: RateParams,
    c: RateConsts,
    rule: PerturbationRule,
    inputs: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    generator: torch.Generator,
    *,
    sigma: float,
    K: int = 1,
    baseline: str = "clean",
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
    x0: Tensor | None = None,
) -> PassResult:
    """The step-by-step loop for every rule: one :class:`StepRecord` per step, handed to
    ``rule.accumulate``. Arguments as :func:`perturbation_estimate` (already checked)."""
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    dev, dt = inputs.device, inputs.dtype
    iterative = bool(getattr(rule, "iterative", False))
    G = 2 if iterative else 1
    P = K * G * B
    noisy_base = baseline == "noisy"
    Bb = P if noisy_base else B
    S = Bb + P
    src = torch.arange(S, device=dev) % B  # input/target row for every stacked row
    src_pert = src[Bb:]
    pair = torch.arange(P, device=dev) % Bb  # baseline row of each perturbed row
    simple = K == 1 and not noisy_base and not iterative  # rows pair one-to-one: slices
    hid_on = out_on = None
    if iterative:
        grp = (torch.arange(P, device=dev) // B) % G
        hid_on, out_on = (grp == 0).to(dt), (grp == 1).to(dt)
    gain = sigma * c.alpha**0.5

    with torch.no_grad():
        cc = c._replace(sigma=0.0)
        c_pass = c._replace(sigma=sigma)  # the pass's σ; baseline rows get ξ = 0 (clean)
        ones_h = [torch.ones(P, 1, device=dev, dtype=dt)] if p.b is not None else []
        ones_o = [torch.ones(P, 1, device=dev, dtype=dt)] if p.b_out is not None else []
        M_h = p.W_in.shape[1] + N + len(ones_h)
        M_o = N + len(ones_o)
        state_rule = rule.init(P, M_h, N, M_o, n_out, p.W_rec)
        ctx = Context(c.alpha, sigma, 2.0 if noisy_base else 1.0)
        s = init_state(p, cc, S, None if x0 is None else x0[src])
        zeros_b = torch.zeros(Bb, N, device=dev, dtype=dt)
        zeros_bo = torch.zeros(Bb, n_out, device=dev, dtype=dt)
        dS = torch.zeros(P, device=dev, dtype=dt)
        sum_lb = torch.zeros((), device=dev, dtype=dt)
        sum_la = torch.zeros((), device=dev, dtype=dt)
        outs = []
        yy = decor_sums(decor, p.W_in.shape[1], N, p.W_rec)
        for t in range(T):
            u_hat = decorrelate(p.D_in, inputs[t])  # [B, n_in]
            drive_b = u_hat @ p.W_in.T
            if p.b is not None:
                drive_b = drive_b + p.b
            drive = drive_b.repeat(2, 1) if simple else drive_b[src]
            xi_a = torch.randn(P, N, generator=generator, device=dev, dtype=dt)
            xi_b = (
                torch.randn(Bb, N, generator=generator, device=dev, dtype=dt)
                if noisy_base
                else zeros_b
            )
            if iterative:
                xi_a = xi_a * hid_on[:, None]
                if noisy_base:
                    xi_b = xi_b * hid_on[:, None]
            r_prev = s.r_hat
            s = rate_step(p, c_pass, s, drive, torch.cat([xi_b, xi_a]))  # σ √α ξ row-wise
            x, r_hat = s.x, s.r_hat
            xo_a = torch.randn(P, n_out, generator=generator, device=dev, dtype=dt)
            xo_b = (
                torch.randn(Bb, n_out, generator=generator, device=dev, dtype=dt)
                if noisy_base
                else zeros_bo
            )
            if iterative:
                xo_a = xo_a * out_on[:, None]
                if noisy_base:
                    xo_b = xo_b * out_on[:, None]
            o = readout(p, r_hat) + sigma * torch.cat([xo_b, xo_a])
            y = targets[t]
            ell = step_loss(loss_kind, o, y.repeat(2, 1) if simple else y[src])
            m = None if mask is None else mask[t]
            ell_b, ell_a = ell[:Bb], ell[Bb:]
            if m is not None:
                ell_b = ell_b * (m if Bb == B else m[src[:Bb]])
                ell_a = ell_a * (m if simple else m[src_pert])
            sum_lb += ell_b.sum()
            sum_la += ell_a.sum()
            if simple:
                xb, ob, rb_prev, rb = x[:B], o[:B], r_prev[:B], r_hat[:B]
                xib, xob, dl = xi_b, xo_b, ell_a - ell_b
                z_u = u_hat
            else:
                xb, ob, rb_prev, rb = (
                    x[:Bb][pair],
                    o[:Bb][pair],
                    r_prev[:Bb][pair],
                    r_hat[:Bb][pair],
                )
                xib, xob, dl = xi_b[pair], xo_b[pair], ell_a - ell_b[pair]
                z_u = u_hat[src_pert]
            rec = StepRecord(
                t=t,
                z_hid=torch.cat([z_u, rb_prev, *ones_h], 1),
                z_out=torch.cat([rb, *ones_o], 1),
                dx=x[Bb:] - xb,
                do=o[Bb:] - ob,
                eps_x=gain * (xi_a - xib),
                eps_o=sigma * (xo_a - xob),
                dl=dl,
                hid_on=hid_on,
                out_on=out_on,
            )
            state_rule = rule.accumulate(state_rule, rec, ctx)
            dS += dl
            if keep_outputs:
                outs.append(o[:B])
            add_decor_(yy, u_hat, r_hat[:B])
        norm_b = normaliser(mask, T, B)
        est = rule.finalize(state_rule, dS, norm_b * K)
    return PassResult(
        grads=split_grads(p, est.hid, est.out),
        loss=float(sum_lb) / (norm_b * Bb / B),
        loss_perturbed=float(sum_la) / (norm_b * K * G),
        outputs=torch.stack(outs) if keep_outputs else None,
        decor={k: (v, float(T * B)) for k, v in yy.items()},
    )


def weight_perturbation_estimate(
    p: RateParams,
    c: RateConsts,
    rule,
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
) -> PassResult:
    """WP on the rate RNN (rules/weight_perturbation.py): each perturbed row runs with its own
    weights W + ΔW_t, ΔW_t ~ N(0, σ²) entrywise, fresh every step, no node noise::

        x_t = (1 − α) x_{t−1} + α (W_hid + ΔW_t) [û_t; r̂_{t−1}; 1] ,  o_t = (W_o + ΔV_t) [r̂_t; 1]
    """
    sigma = noise_sigma(sigma, c.sigma)
    check_pass_options(sigma, baseline, K)
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    dev, dt = inputs.device, inputs.dtype
    P = K * B
    noisy_base = baseline == "noisy"
    Bb = P if noisy_base else B
    S = Bb + P
    src = torch.arange(S, device=dev) % B
    pair = torch.arange(P, device=dev) % Bb

    def randn(*shape: int) -> Tensor:
        return sigma * torch.randn(shape, generator=generator, device=dev, dtype=dt)

    with torch.no_grad():
        cc = c._replace(sigma=0.0)
        ones_h = [torch.ones(S, 1, device=dev, dtype=dt)] if p.b is not None else []
        ones_o = [torch.ones(S, 1, device=dev, dtype=dt)] if p.b_out is not None else []
        W_h = torch.cat([p.W_in, p.W_rec, *([p.b[:, None]] if p.b is not None else [])], 1)
        W_o = torch.cat([p.W_out, *([p.b_out[:, None]] if p.b_out is not None else [])], 1)
        M_h, M_o = W_h.shape[1], W_o.shape[1]
        state_rule = rule.init(P, M_h, N, M_o, n_out, p.W_rec)
        ctx = Context(c.alpha, sigma, 2.0 if noisy_base else 1.0)
        s = init_state(p, cc, S, None if x0 is None else x0[src])
        dS = torch.zeros(P, device=dev, dtype=dt)
        sum_lb = torch.zeros((), device=dev, dtype=dt)
        sum_la = torch.zeros((), device=dev, dtype=dt)
        outs = []
        yy = decor_sums(decor, p.W_in.shape[1], N, p.W_rec)
        lo = 0 if noisy_base else Bb  # first row that carries weight noise
        for t in range(T):
            u_hat = decorrelate(p.D_in, inputs[t])
            z_h = torch.cat([u_hat[src], s.r_hat, *ones_h], 1)
            dWh = randn(S - lo, N, M_h)
            pre = z_h @ W_h.T
            pre[lo:] += torch.bmm(dWh, z_h[lo:, :, None])[:, :, 0]
            x = torch.lerp(s.x, pre, c.alpha) if c.alpha != 1.0 else pre
            r_hat = decorrelate(p.D_rec, c.phi(x))
            s = RateState(x, r_hat)
            z_o = torch.cat([r_hat, *ones_o], 1)
            dWo = randn(S - lo, n_out, M_o)
            o = z_o @ W_o.T
            o[lo:] += torch.bmm(dWo, z_o[lo:, :, None])[:, :, 0]
            ell = step_loss(loss_kind, o, targets[t][src])
            if mask is not None:
                ell = ell * mask[t][src]
            ell_b, ell_a = ell[:Bb], ell[Bb:]
            sum_lb += ell_b.sum()
            sum_la += ell_a.sum()
            dl = ell_a - ell_b[pair]
            if noisy_base:
                dh, do_ = dWh[Bb:] - dWh[:Bb], dWo[Bb:] - dWo[:Bb]
            else:
                dh, do_ = dWh, dWo
            state_rule = rule.accumulate(state_rule, WPRecord(t, dh, do_, dl), ctx)
            dS += dl
            if keep_outputs:
                outs.append(o[:B])
            add_decor_(yy, u_hat, r_hat[:B])
        norm_b = normaliser(mask, T, B)
        est = rule.finalize(state_rule, dS, norm_b * K)
    return PassResult(
        grads=split_grads(p, est.hid, est.out),
        loss=float(sum_lb) / (norm_b * Bb / B),
        loss_perturbed=float(sum_la) / (norm_b * K),
        outputs=torch.stack(outs) if keep_outputs else None,
        decor={k: (v, float(T * B)) for k, v in yy.items()},
    )
