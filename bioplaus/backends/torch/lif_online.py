"""The online driver of the LIF network: one pass, weights fixed, every online rule.

B networks with shared weights run B trials. A rule that explores (``rule.explores``, the
three-factor rule) has its noise added to each neuron's synaptic drive J_t (Gaussian σ ξ_t,
or Miconi's sparse kicks), on top of the background membrane noise, and the readout gets
σ ξ^o; a rule that does not (e-prop) sees the model with its background noise only.

The local signals handed to the rule (:class:`~bioplaus.rules.online.StepSignals`): the
drive a_t = J_t (its fluctuation J_t − J̄_t is the three-factor rule's post factor), the
presynaptic z_t = [û_t, κ q_{t−1}, 1] (J_t = W z_t + noise: the pair of ANP's
``delta = "drive"``, :mod:`.lif_perturb`), z_out = [r̂_t, 1] with r̂ = D_rec r, and — for
rules that need it ("psi"), grid spiking only — the spike pseudo-derivative of surrogate
BPTT (:mod:`.lif_bptt`) at the membrane potential before the spike test ṽ_t::

    ψ_t = active_t / (1 + k |ṽ_t − θ|)²
    decay_t = w_t (1 − s_{t−1}) ,  gain_t = 1 − w_t ,  w_t = β_m if active_t else 1

(∂ṽ_t/∂W = decay_t ∂ṽ_{t−1}/∂W + gain_t z_t, holding z fixed; the reset to v_reset cuts the
trace). The readout filter of the hidden outputs is κ = β_r (o_t = W_out D_rec r_t,
r_t = β_r r_{t−1} + s_t). The driver names no rule (:mod:`bioplaus.rules.online`).
"""

from __future__ import annotations

from typing import Any

import torch

from ...loss import step_loss, step_loss_grad
from ...rules.online import StepSignals
from .lif import (
    LIFConsts,
    LIFParams,
    decorrelate,
    external_drive,
    init_state,
    lif_step,
    pre_spike_potential,
    readout,
    surrogate_derivative,
)
from .online import CHUNK, OnlineHandle, OnlineResult, end_trials, trial_info
from .pass_common import add_decor_, decor_sums, noise_sigma

Tensor = torch.Tensor


def lif_online_pass(
    p: LIFParams,
    c: LIFConsts,
    rule: Any,
    state: Any,
    inputs: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    generator: torch.Generator,
    *,
    sigma: float | None = None,
    types: Tensor | None = None,
    decor: tuple[str, ...] = (),
    n_types: int = 1,
    dt: float | None = None,
) -> OnlineResult:
    """B trials → the online rule's update as a gradient (−ΔW/η), as
    :func:`.online.online_pass` for the rate network."""
    sigma = noise_sigma(sigma, c.sigma) if rule.explores else 0.0
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    dev, dt_ = inputs.device, inputs.dtype
    needs = rule.needs
    if "psi" in needs and c.precise:
        raise ValueError(
            f"rule {rule.name!r} needs the spike pseudo-derivative, which the LIF driver has "
            "for spiking = 'grid' only"
        )
    with torch.no_grad():
        info = trial_info(
            "lif", p, inputs, mask, c.beta_r, c.dt if dt is None else dt, types, n_types,
            generator,
        )  # fmt: skip
        if state is None:
            state = rule.init_state(info)
        trial = rule.begin(state, info)
        ones_h = [torch.ones(B, 1, device=dev, dtype=dt_)] if p.b is not None else []
        ones_o = [torch.ones(B, 1, device=dev, dtype=dt_)] if p.b_out is not None else []
        st = init_state(p, c, B)
        loss_sum = torch.zeros(B, device=dev, dtype=dt_)
        yy = decor_sums(decor, p.W_in.shape[1], N, p.W_rec)
        for t in range(T):
            k = t % CHUNK
            if k == 0:  # the external drive, CHUNK steps at a time: memory O(1) in T
                ext = u_hat_all = None  # (freed before the next chunk is formed)
                ext = external_drive(p, c, inputs[t : t + CHUNK])
                u_hat_all = decorrelate(p.D_in, inputs[t : t + CHUNK])
            if c.precise:  # ξ^bg as the exact OU increment, U_t the bridge-crossing draw
                bg = torch.randn(B, N, generator=generator, device=dev, dtype=dt_)
                un = torch.rand(B, N, generator=generator, device=dev, dtype=dt_)
                noise = rule.explore((B, N), sigma, generator, dev, dt_) if rule.explores else None
                kw = {"bg": bg, "uniform": un if c.needs_uniform else None}
            else:
                noise = c.g_v * torch.randn(B, N, generator=generator, device=dev, dtype=dt_)
                if rule.explores:
                    noise = noise + rule.explore((B, N), sigma, generator, dev, dt_)
                kw = {}
            prev = st
            st, J = lif_step(p, c, st, ext[k], noise, **kw)
            r_hat = decorrelate(p.D_rec, st.r)
            o = readout(p, st.r)
            if sigma > 0:
                o = o + sigma * torch.randn(B, n_out, generator=generator, device=dev, dtype=dt_)
            ell = step_loss(loss_kind, o, targets[t])
            m = None if mask is None else mask[t]
            loss_sum += ell if m is None else ell * m
            z_hid = torch.cat([u_hat_all[k], c.kappa * prev.q, *ones_h], 1)
            z_out = torch.cat([r_hat, *ones_o], 1)
            psi, decay, gain = None, c.beta_m, 1.0 - c.beta_m
            if "psi" in needs:
                v_tilde, w, active = pre_spike_potential(c, prev.v, prev.c, J)
                psi = surrogate_derivative(v_tilde - c.theta, c.slope)
                if active is None:  # no refractory steps: w = β_m for every neuron
                    w = torch.full_like(v_tilde, w)
                else:
                    psi = psi * active.to(dt_)
                decay, gain = w * (1.0 - prev.s), 1.0 - w
            sig = StepSignals(
                t, J, z_hid, o, z_out, targets[t], ell, m, decay, gain, psi=psi,
                dl_do=step_loss_grad(loss_kind, o, targets[t]) if "dl_do" in needs else None,
                spikes=st.s,
            )  # fmt: skip
            trial = rule.observe(trial, sig)
            add_decor_(yy, u_hat_all[k], r_hat)
    return end_trials(rule, trial, loss_sum, mask, T, types, sigma, p, yy, [])


#: the name of the driver when it only ran the three-factor rule
lif_three_factor_pass = lif_online_pass


class LIFOnlineHandle(OnlineHandle):
    """:class:`.online.OnlineHandle` for the LIF network (same state and checkpoint)."""

    trial_pass = staticmethod(lif_online_pass)


#: the handle's name when it only held the three-factor rule
LIFOnlineThreeFactor = LIFOnlineHandle
