"""Online three-factor learning on the torch back-end: one noisy pass, no clean pass.

B networks with shared weights run B independent trials side by side (the rows of the
batch). Each step is the Euler–Maruyama step of DESIGN §1 with the rule's exploration
added to x, then the readout with its own Gaussian noise::

    x_t = (1 − α) x_{t−1} + α (W_rec r̂_{t−1} + W_in û_t + b) + n_t
    n_t = σ √α ξ_t                                          noise = "gaussian"
    n_t = κ_t ⊙ U(−A, A),  κ_t ~ Bernoulli(kick_rate · dt)  noise = "kicks" (Miconi 2017)
    o_t = W_out r̂_t + b_out + σ ξ^o_t

and hands (x_t, z_hid, o_t, z_out) to :class:`~bioplaus.rules.three_factor.ThreeFactor`,
which keeps the traces and baselines (memory independent of T: no history is stored).
The reward is −ℓ (``bioplaus.loss``): per step, or the trial's masked mean at its end.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ...loss import normaliser, step_loss
from ...records import PassResult
from ...rules.three_factor import Baseline, ThreeFactor
from .pass_common import add_decor_, decor_sums, noise_sigma, split_grads
from .rate import (
    RateConsts,
    RateParams,
    decorrelate,
    init_state,
    input_drive,
    rate_step,
    readout,
)

Tensor = torch.Tensor


class OnlineResult(NamedTuple):
    result: PassResult  # grads = −ΔW/η (autograd sign convention), loss of the noisy pass
    baseline: Baseline  # the reward baseline after these trials
    reward: float  # mean reward of the trials
    modulator: Tensor  # M_b per trial (reward "trial"; empty for "step")


def exploration(
    rule: ThreeFactor,
    shape: tuple[int, ...],
    c: RateConsts,
    sigma: float,
    generator: torch.Generator,
    device: torch.device | str,
    dtype: torch.dtype,
) -> Tensor:
    """The exploratory term n_t added to x_t (see the module docstring): Gaussian σ √α ξ_t
    or sparse kicks."""
    return explore(rule, shape, sigma * c.alpha**0.5, generator, device, dtype)


def explore(
    rule: ThreeFactor,
    shape: tuple[int, ...],
    std: float,
    generator: torch.Generator,
    device: torch.device | str,
    dtype: torch.dtype,
) -> Tensor:
    """std · ξ (noise "gaussian"), or κ ⊙ U(−A, A) with κ ~ Bernoulli(kick_rate · dt)
    (noise "kicks"); shared by the rate and LIF networks."""
    if rule.noise == "gaussian":
        return std * torch.randn(shape, generator=generator, device=device, dtype=dtype)
    p = rule.kick_rate * rule.dt
    hit = torch.rand(shape, generator=generator, device=device, dtype=dtype) < p
    amp = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return hit.to(dtype) * ((2.0 * amp - 1.0) * rule.kick_amplitude)


def end_trials(
    rule: ThreeFactor,
    ts: object,
    base: Baseline,
    step_base: Baseline | None,
    loss_sum: Tensor,
    mask: Tensor | None,
    T: int,
    types: Tensor | None,
    sigma: float,
    p: NamedTuple,
    decor_sums: dict[str, Tensor],
    outputs: list[Tensor],
) -> OnlineResult:
    """End of B trials: the trial reward R_b = −(masked mean over t of ℓ_t), the rule's
    update ΔW (per-step or per-trial reward) returned as a gradient −ΔW/η, and the new
    baseline. With σ = 0 the readout has no exploration of its own, so it stays fixed."""
    B = loss_sum.shape[0]
    n_scored = loss_sum.new_full((B,), float(T)) if mask is None else mask.sum(0)
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
        outputs=torch.stack(outputs) if outputs else None,
        decor={k: (v, float(T * B)) for k, v in decor_sums.items()},
    )
    return OnlineResult(res, new_base, float(R.mean()), M)


def three_factor_pass(
    p: RateParams,
    c: RateConsts,
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
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
    x0: Tensor | None = None,
) -> OnlineResult:
    """Run B trials with exploration and return the rule's update as a gradient (−ΔW/η).

    ``base`` is the reward baseline before these trials ([n_types] for reward "trial",
    [B] for "step"); ``types`` [B] the trial types (None: all type 0).
    """
    sigma = noise_sigma(sigma, c.sigma)
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    dev, dt = inputs.device, inputs.dtype
    with torch.no_grad():
        ones_h = [torch.ones(B, 1, device=dev, dtype=dt)] if p.b is not None else []
        ones_o = [torch.ones(B, 1, device=dev, dtype=dt)] if p.b_out is not None else []
        M_h = p.W_in.shape[1] + N + len(ones_h)
        M_o = N + len(ones_o)
        ts = rule.init_trial(B, N, M_h, n_out, M_o, p.W_rec)
        s = init_state(p, c, B, x0)
        drive = input_drive(p, inputs)
        loss_sum = torch.zeros(B, device=dev, dtype=dt)
        outs = []
        yy = decor_sums(decor, p.W_in.shape[1], N, p.W_rec)
        step_base = base if rule.reward == "step" else None
        for t in range(T):
            r_prev = s.r_hat
            s = rate_step(
                p, c, s, drive[t], None,
                added_t=exploration(rule, (B, N), c, sigma, generator, dev, dt),
            )  # fmt: skip
            x, r_hat = s.x, s.r_hat
            o = readout(p, r_hat)
            if sigma > 0:
                o = o + sigma * torch.randn(B, n_out, generator=generator, device=dev, dtype=dt)
            ell = step_loss(loss_kind, o, targets[t])
            m = None if mask is None else mask[t]
            loss_sum += ell if m is None else ell * m
            u_hat = decorrelate(p.D_in, inputs[t])
            z_hid = torch.cat([u_hat, r_prev, *ones_h], 1)
            z_out = torch.cat([r_hat, *ones_o], 1)
            ts, step_base = rule.step(ts, x, z_hid, o, z_out, step_base, -ell, m)
            if keep_outputs:
                outs.append(o)
            add_decor_(yy, u_hat, r_hat)
    return end_trials(
        rule, ts, base, step_base, loss_sum, mask, T, types, sigma, p, yy, outs
    )  # fmt: skip


class OnlineThreeFactor:
    """The trainer's handle on the rule: the rule, its options, and the reward baseline
    carried from one batch of trials to the next (checkpointed with the run)."""

    def __init__(self, rule: ThreeFactor, sigma: float | None, n_types: int, batch: int):
        self.rule, self.sigma = rule, sigma
        self.n = batch if rule.reward == "step" else n_types
        self.base: Baseline | None = None

    #: B exploratory trials of the network → :class:`OnlineResult` (the LIF subclass swaps it)
    trial_pass = staticmethod(three_factor_pass)

    def estimate(
        self,
        p: RateParams,
        c: RateConsts,
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
        out = type(self).trial_pass(
            p, c, self.rule, self.base, inputs, targets, mask, loss_kind, generator,
            sigma=self.sigma, types=types if self.rule.reward == "trial" else None, decor=decor,
        )  # fmt: skip
        self.base = out.baseline
        return out.result

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The rule's state between trials: R̄ and its "set" flags. (Eligibility traces and
        activity baselines start from zero at every trial, so they are empty here.)"""
        if self.base is None:
            return {}
        return {"rbar": self.base.rbar.cpu().clone(), "seen": self.base.seen.cpu().clone()}

    def load_state_dict(self, sd: dict[str, torch.Tensor], like: Tensor) -> None:
        if not sd:
            self.base = None
            return
        self.base = Baseline(
            sd["rbar"].to(like.device, like.dtype), sd["seen"].to(like.device, torch.bool)
        )
