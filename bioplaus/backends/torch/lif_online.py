"""Online three-factor learning on the LIF network: one exploratory pass, no clean pass.

B networks with shared weights run B trials. The exploration is the rule's noise added to
each neuron's synaptic drive J_t (Gaussian σ ξ_t, or Miconi's sparse kicks), on top of the
background membrane noise; the readout gets σ ξ^o. The post-synaptic signal handed to
:class:`~bioplaus.rules.three_factor.ThreeFactor` is the drive J_t (its fluctuation
J_t − J̄_t is the eligibility's post factor), the presynaptic one z_t = [û_t, κ q_{t−1}, 1]
— the pair of ANP's ``delta = "drive"`` (:mod:`.lif_perturb`). No surrogate.
"""

from __future__ import annotations

import torch

from ...loss import step_loss
from ...rules.three_factor import Baseline, ThreeFactor
from .lif import LIFConsts, LIFParams, decorrelate, external_drive, init_state, lif_step, readout
from .online import OnlineResult, OnlineThreeFactor, end_trials, explore
from .pass_common import add_decor_, decor_sums, noise_sigma

Tensor = torch.Tensor


def lif_three_factor_pass(
    p: LIFParams,
    c: LIFConsts,
    rule: ThreeFactor,
    base: Baseline,
    inputs: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    generator: torch.Generator,
    *,
    sigma: float | None = None,
    types: Tensor | None = None,
    decor: tuple[str, ...] = (),
) -> OnlineResult:
    """B exploratory trials → the rule's update as a gradient (−ΔW/η), as
    :func:`.online.three_factor_pass` for the rate network."""
    sigma = noise_sigma(sigma, c.sigma)
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    dev, dt = inputs.device, inputs.dtype
    with torch.no_grad():
        ones_h = [torch.ones(B, 1, device=dev, dtype=dt)] if p.b is not None else []
        ones_o = [torch.ones(B, 1, device=dev, dtype=dt)] if p.b_out is not None else []
        M_h = p.W_in.shape[1] + N + len(ones_h)
        ts = rule.init_trial(B, N, M_h, n_out, N + len(ones_o), p.W_rec)
        st = init_state(p, c, B)
        ext = external_drive(p, c, inputs)
        u_hat_all = decorrelate(p.D_in, inputs)
        loss_sum = torch.zeros(B, device=dev, dtype=dt)
        yy = decor_sums(decor, p.W_in.shape[1], N, p.W_rec)
        step_base = base if rule.reward == "step" else None
        for t in range(T):
            if c.precise:  # ξ^bg as the exact OU increment, U_t the bridge-crossing draw
                bg = torch.randn(B, N, generator=generator, device=dev, dtype=dt)
                un = torch.rand(B, N, generator=generator, device=dev, dtype=dt)
                noise = explore(rule, (B, N), sigma, generator, dev, dt)
                kw = {"bg": bg, "uniform": un if c.needs_uniform else None}
            else:
                noise = c.g_v * torch.randn(B, N, generator=generator, device=dev, dtype=dt)
                noise = noise + explore(rule, (B, N), sigma, generator, dev, dt)
                kw = {}
            q_prev = st.q
            st, J = lif_step(p, c, st, ext[t], noise, **kw)
            r_hat = decorrelate(p.D_rec, st.r)
            o = readout(p, st.r)
            if sigma > 0:
                o = o + sigma * torch.randn(B, n_out, generator=generator, device=dev, dtype=dt)
            ell = step_loss(loss_kind, o, targets[t])
            m = None if mask is None else mask[t]
            loss_sum += ell if m is None else ell * m
            z_hid = torch.cat([u_hat_all[t], c.kappa * q_prev, *ones_h], 1)
            z_out = torch.cat([r_hat, *ones_o], 1)
            ts, step_base = rule.step(ts, J, z_hid, o, z_out, step_base, -ell, m)
            add_decor_(yy, u_hat_all[t], r_hat)
    return end_trials(rule, ts, base, step_base, loss_sum, mask, T, types, sigma, p, yy, [])


class LIFOnlineThreeFactor(OnlineThreeFactor):
    """:class:`.online.OnlineThreeFactor` for the LIF network (same state and checkpoint)."""

    trial_pass = staticmethod(lif_three_factor_pass)
