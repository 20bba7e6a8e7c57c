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

from ...loss import normaliser, step_loss
from ...rules.three_factor import Baseline, ThreeFactor
from .lif import LIFConsts, LIFParams, decorrelate, external_drive, init_state, lif_step, readout
from .online import OnlineResult, OnlineThreeFactor
from .perturb import PassResult, split_grads

Tensor = torch.Tensor


def _exploration(rule: ThreeFactor, shape, sigma, generator, dev, dt) -> Tensor:
    if rule.noise == "gaussian":
        return sigma * torch.randn(shape, generator=generator, device=dev, dtype=dt)
    hit = torch.rand(shape, generator=generator, device=dev, dtype=dt) < rule.kick_rate * rule.dt
    amp = torch.rand(shape, generator=generator, device=dev, dtype=dt)
    return hit.to(dt) * ((2.0 * amp - 1.0) * rule.kick_amplitude)


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
    sigma = c.sigma if sigma is None else sigma
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
        yy = {
            k: torch.zeros((N, N) if k == "D_rec" else (p.W_in.shape[1],) * 2, device=dev, dtype=dt)
            for k in decor
        }
        step_base = base if rule.reward == "step" else None
        for t in range(T):
            noise = c.g_v * torch.randn(B, N, generator=generator, device=dev, dtype=dt)
            noise = noise + _exploration(rule, (B, N), sigma, generator, dev, dt)
            q_prev = st.q
            st, J = lif_step(p, c, st, ext[t], noise)
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
            if "D_in" in yy:
                yy["D_in"].addmm_(u_hat_all[t].T, u_hat_all[t])
            if "D_rec" in yy:
                yy["D_rec"].addmm_(r_hat.T, r_hat)
        n_scored = torch.full((B,), float(T), device=dev, dtype=dt) if mask is None else mask.sum(0)
        R = -loss_sum / n_scored.clamp_min(1.0)
        norm = normaliser(mask, T, B)
        if rule.reward == "step":
            d_hid, d_out, new_base, M = rule.end_trial(ts, step_base, norm=norm)
        else:
            d_hid, d_out, new_base, M = rule.end_trial(ts, base, R=R, types=types)
    if not sigma > 0:
        d_out = torch.zeros_like(d_out)
    res = PassResult(
        grads=split_grads(p, -d_hid, -d_out),
        loss=float(loss_sum.sum()) / norm,
        loss_perturbed=float(loss_sum.sum()) / norm,
        outputs=None,
        decor={k: (v, float(T * B)) for k, v in yy.items()},
    )
    return OnlineResult(res, new_base, float(R.mean()), M)


class LIFOnlineThreeFactor(OnlineThreeFactor):
    """:class:`.online.OnlineThreeFactor` for the LIF network (same state and checkpoint)."""

    def estimate(  # type: ignore[override]
        self,
        p: LIFParams,
        c: LIFConsts,
        inputs: Tensor,
        targets: Tensor,
        mask: Tensor | None,
        loss_kind: str,
        generator: torch.Generator,
        types: Tensor | None = None,
        decor: tuple[str, ...] = (),
    ) -> PassResult:
        if self.base is None:
            self.base = self.rule.init_baseline(self.n, p.W_rec)
        if types is not None and self.rule.reward == "trial" and int(types.max()) >= self.n:
            raise ValueError(f"trial type {int(types.max())} >= n_trial_types={self.n}")
        out = lif_three_factor_pass(
            p, c, self.rule, self.base, inputs, targets, mask, loss_kind, generator,
            sigma=self.sigma, types=types if self.rule.reward == "trial" else None, decor=decor,
        )  # fmt: skip
        self.base = out.baseline
        return out.result
