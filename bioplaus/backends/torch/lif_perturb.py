"""Paired-pass driver of the node-perturbation family (NP, ANP/DANP) on the LIF network.

Pass B (baseline) and pass A (K perturbed resamples) run stacked in one batch of B + K·B
rows. Both share one realisation of the background membrane noise ξ^bg (per trial: the
network's own intrinsic noise, which keeps it fluctuation-driven), so their difference is
caused by the perturbation alone. Pass A adds a current η_t = σ ξ_t to every neuron's
synaptic drive J_t (v receives (1 − β_m) η_t) and σ ξ^o_t to the readout.

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

import torch

from ...loss import normaliser, step_loss
from ...records import PassResult
from ...rules.base import Context, PerturbationRule, StepRecord
from .lif import LIFConsts, LIFParams, decorrelate, external_drive, init_state, lif_step, readout
from .pass_common import add_decor_, decor_sums, noise_sigma, split_grads

Tensor = torch.Tensor


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
    if not sigma > 0:
        raise ValueError(f"sigma: a perturbation rule needs sigma > 0 (got {sigma})")
    if baseline != "clean":
        raise ValueError("baseline: the LIF driver supports only a 'clean' (unperturbed) baseline")
    if delta not in ("drive", "v", "spike"):
        raise ValueError(f"delta: must be 'drive', 'v' or 'spike' (got {delta!r})")
    if K < 1:
        raise ValueError(f"K: must be >= 1 (got {K})")
    if getattr(rule, "perturbs", "nodes") != "nodes" or getattr(rule, "iterative", False):
        raise ValueError(
            f"rule: {getattr(rule, 'name', rule)!r} is not implemented for LIF networks "
            "(node-perturbation rules with one perturbed pass, three-factor and bptt are)"
        )
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    dev, dt = inputs.device, inputs.dtype
    P = K * B
    S = B + P
    src = torch.arange(S, device=dev) % B
    with torch.no_grad():
        ones_h = [torch.ones(P, 1, device=dev, dtype=dt)] if p.b is not None else []
        ones_o = [torch.ones(P, 1, device=dev, dtype=dt)] if p.b_out is not None else []
        M_h = p.W_in.shape[1] + N + len(ones_h)
        M_o = N + len(ones_o)
        state_rule = rule.init(P, M_h, N, M_o, n_out, p.W_rec)
        ctx = Context(c.alpha if delta == "v" else 1.0, sigma, 1.0)
        st = init_state(p, c, S, None if x0 is None else x0[src])
        ext = external_drive(p, c, inputs)  # [T, B, N]
        u_hat_all = decorrelate(p.D_in, inputs)
        zeros_bo = torch.zeros(B, n_out, device=dev, dtype=dt)
        dS = torch.zeros(P, device=dev, dtype=dt)
        sum_lb = torch.zeros((), device=dev, dtype=dt)
        sum_la = torch.zeros((), device=dev, dtype=dt)
        outs = []
        yy = decor_sums(decor, p.W_in.shape[1], N, p.W_rec)
        for t in range(T):
            if c.precise:  # ξ^bg as the exact OU increment, and the shared bridge draws
                xi_bg = torch.randn(B, N, generator=generator, device=dev, dtype=dt)
                un = torch.rand(B, N, generator=generator, device=dev, dtype=dt)[src]
                eta = sigma * torch.randn(P, N, generator=generator, device=dev, dtype=dt)
                noise = torch.cat([torch.zeros(B, N, device=dev, dtype=dt), eta])
                kw = {"bg": xi_bg[src], "uniform": un if c.needs_uniform else None}
            else:
                xi_bg = torch.randn(B, N, generator=generator, device=dev, dtype=dt) * c.g_v
                eta = sigma * torch.randn(P, N, generator=generator, device=dev, dtype=dt)
                noise = torch.cat([xi_bg, xi_bg[src[B:] if K > 1 else slice(None)] + eta])
                kw = {}
            q_prev = st.q
            st, J = lif_step(p, c, st, ext[t][src] if K > 1 else ext[t].repeat(2, 1), noise, **kw)
            r_hat = decorrelate(p.D_rec, st.r)
            xo = sigma * torch.randn(P, n_out, generator=generator, device=dev, dtype=dt)
            o = readout(p, st.r) + torch.cat([zeros_bo, xo])
            ell = step_loss(loss_kind, o, targets[t][src])
            ell_b, ell_a = ell[:B], ell[B:]
            if mask is not None:
                ell_b = ell_b * mask[t]
                ell_a = ell_a * mask[t][src[B:]]
            sum_lb += ell_b.sum()
            sum_la += ell_a.sum()
            pair = src[B:]
            dl = ell_a - ell_b[pair]
            if delta == "drive":
                dx = J[B:] - J[:B][pair]
            elif delta == "v":
                dx = st.v[B:] - st.v[:B][pair]
            else:
                dx = st.s[B:] - st.s[:B][pair]
            rec = StepRecord(
                t=t,
                z_hid=torch.cat([u_hat_all[t][pair], c.kappa * q_prev[:B][pair], *ones_h], 1),
                z_out=torch.cat([r_hat[:B][pair], *ones_o], 1),
                dx=dx,
                do=o[B:] - o[:B][pair],
                eps_x=eta,
                eps_o=xo - zeros_bo[pair],
                dl=dl,
            )
            state_rule = rule.accumulate(state_rule, rec, ctx)
            dS += dl
            if keep_outputs:
                outs.append(o[:B])
            add_decor_(yy, u_hat_all[t], r_hat[:B])
        norm_b = normaliser(mask, T, B)
        est = rule.finalize(state_rule, dS, norm_b * K)
    return PassResult(
        grads=split_grads(p, est.hid, est.out),
        loss=float(sum_lb) / norm_b,
        loss_perturbed=float(sum_la) / (norm_b * K),
        outputs=torch.stack(outs) if keep_outputs else None,
        decor={k: (v, float(T * B)) for k, v in yy.items()},
    )
