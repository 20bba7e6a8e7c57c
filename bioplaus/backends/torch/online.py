"""The online driver of the rate network: one pass, weights fixed, every online rule.

B networks with shared weights run B independent trials side by side (the rows of the
batch). Each step is the Euler–Maruyama step of DESIGN §1; a rule that explores
(``rule.explores``, the three-factor rule) has its exploration n_t added to x and the
readout its own Gaussian noise::

    x_t = (1 − α) x_{t−1} + α (W_rec r̂_{t−1} + W_in û_t + b) + n_t
    n_t = rule.explore(…): σ √α ξ_t (gaussian) or κ_t ⊙ U(−A, A) (kicks, Miconi 2017)
    o_t = W_out r̂_t + b_out + σ ξ^o_t

(a rule that does not explore — e-prop, RFLO — sees the network without noise, as BPTT
does). Every step the rule gets the local signals of :class:`~bioplaus.rules.online.StepSignals`
(a_t = x_t, ψ_t = φ'(x_t), decay 1 − α, gain α, z_hid = [û_t, r̂_{t−1}, 1],
z_out = [r̂_t, 1], o_t, y_t, ∂ℓ_t/∂o_t, ℓ_t, m_t) and keeps its own traces: memory is
independent of T (no history is stored). The driver names no rule
(:mod:`bioplaus.rules.online` is the contract).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ...loss import normaliser, step_loss, step_loss_grad
from ...nonlinearities import phi_prime
from ...records import PassResult
from ...rules.online import StepSignals, TrialEnd, TrialInfo
from ...rules.three_factor import ThreeFactor
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

#: steps of input drive formed at once (one matmul per chunk; the same values as one
#: matmul over all T, and memory independent of T; small, so that the buffer stays below
#: the allocator's mmap threshold and is reused rather than mapped anew)
CHUNK = 16


class OnlineResult(NamedTuple):
    result: PassResult  # grads = −ΔW/η (autograd sign convention), loss of the pass
    baseline: Any  # the rule's state after these trials (three-factor: the reward baseline)
    reward: float  # mean reward of the trials, −(masked mean loss)
    modulator: Tensor  # M_b per trial (three-factor reward "trial"; else empty)


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
    return rule.explore(shape, sigma * c.alpha**0.5, generator, device, dtype)


def trial_info(
    network: str,
    p: RateParams,
    inputs: Tensor,
    mask: Tensor | None,
    readout_decay: float,
    dt: float,
    types: Tensor | None,
    n_types: int,
    generator: torch.Generator,
) -> TrialInfo:
    """The :class:`~bioplaus.rules.online.TrialInfo` of a batch (both drivers)."""
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    W_eff = p.W_out if p.D_rec is None else p.W_out @ p.D_rec
    return TrialInfo(
        network, B, N, p.W_in.shape[1], n_out,
        p.W_in.shape[1] + N + (p.b is not None), N + (p.b_out is not None),
        T, dt, normaliser(mask, T, B), readout_decay, W_eff, types, n_types, generator, p.W_rec,
    )  # fmt: skip


def end_trials(
    rule: Any,
    trial: Any,
    loss_sum: Tensor,
    mask: Tensor | None,
    T: int,
    types: Tensor | None,
    sigma: float,
    p: NamedTuple,
    decor_sums: dict[str, Tensor],
    outputs: list[Tensor],
) -> OnlineResult:
    """End of B trials: the rule's update ΔW/η (``rule.finish``) returned as a gradient
    −ΔW/η, its new state, and the trials' mean reward R_b = −(masked mean over t of ℓ_t)."""
    B = loss_sum.shape[0]
    n_scored = loss_sum.new_full((B,), float(T)) if mask is None else mask.sum(0)
    R = -loss_sum / n_scored.clamp_min(1.0)
    norm = normaliser(mask, T, B)
    up = rule.finish(trial, TrialEnd(loss_sum, n_scored, norm, types, sigma))
    res = PassResult(
        grads=split_grads(p, -up.d_hid, -up.d_out),
        loss=float(loss_sum.sum()) / norm,
        loss_perturbed=float(loss_sum.sum()) / norm,
        outputs=torch.stack(outputs) if outputs else None,
        decor={k: (v, float(T * B)) for k, v in decor_sums.items()},
    )
    return OnlineResult(res, up.state, float(R.mean()), up.modulator)


def online_pass(
    p: RateParams,
    c: RateConsts,
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
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
    x0: Tensor | None = None,
    n_types: int = 1,
    dt: float | None = None,
) -> OnlineResult:
    """Run B trials of the rate network and return the online rule's update as a gradient
    (−ΔW/η).

    ``state`` is the rule's state before these trials (None: ``rule.init_state``; for the
    three-factor rule the reward baseline, [n_types] for reward "trial", [B] for "step");
    ``types`` [B] the trial types (None: all type 0); ``dt`` the model step (s).
    """
    sigma = noise_sigma(sigma, c.sigma) if rule.explores else 0.0
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    dev, dt_ = inputs.device, inputs.dtype
    needs = rule.needs
    with torch.no_grad():
        info = trial_info(
            "rate", p, inputs, mask, 0.0, 1.0 if dt is None else dt, types, n_types, generator
        )
        if state is None:
            state = rule.init_state(info)
        trial = rule.begin(state, info)
        ones_h = [torch.ones(B, 1, device=dev, dtype=dt_)] if p.b is not None else []
        ones_o = [torch.ones(B, 1, device=dev, dtype=dt_)] if p.b_out is not None else []
        s = init_state(p, c, B, x0)
        loss_sum = torch.zeros(B, device=dev, dtype=dt_)
        outs = []
        yy = decor_sums(decor, p.W_in.shape[1], N, p.W_rec)
        decay, gain = 1.0 - c.alpha, c.alpha
        for t in range(T):
            if t % CHUNK == 0:  # the input drive, CHUNK steps at a time: memory O(1) in T
                drive = None  # (freed before the next chunk is formed)
                drive = input_drive(p, inputs[t : t + CHUNK])
            r_prev = s.r_hat
            added = (
                exploration(rule, (B, N), c, sigma, generator, dev, dt_) if rule.explores else None
            )
            s = rate_step(p, c, s, drive[t % CHUNK], None, added_t=added)
            x, r_hat = s.x, s.r_hat
            o = readout(p, r_hat)
            if sigma > 0:
                o = o + sigma * torch.randn(B, n_out, generator=generator, device=dev, dtype=dt_)
            ell = step_loss(loss_kind, o, targets[t])
            m = None if mask is None else mask[t]
            loss_sum += ell if m is None else ell * m
            u_hat = decorrelate(p.D_in, inputs[t])
            z_hid = torch.cat([u_hat, r_prev, *ones_h], 1)
            z_out = torch.cat([r_hat, *ones_o], 1)
            sig = StepSignals(
                t, x, z_hid, o, z_out, targets[t], ell, m, decay, gain,
                psi=phi_prime(c.phi, x) if "psi" in needs else None,
                dl_do=step_loss_grad(loss_kind, o, targets[t]) if "dl_do" in needs else None,
            )  # fmt: skip
            trial = rule.observe(trial, sig)
            if keep_outputs:
                outs.append(o)
            add_decor_(yy, u_hat, r_hat)
    return end_trials(rule, trial, loss_sum, mask, T, types, sigma, p, yy, outs)


#: the name of the driver when it only ran the three-factor rule
three_factor_pass = online_pass


class OnlineHandle:
    """The trainer's handle on an online rule: the rule, its exploration σ, and the rule's
    state carried from one batch of trials to the next (checkpointed with the run; for the
    three-factor rule the reward baseline R̄, for random-feedback e-prop / RFLO the feedback
    matrix B)."""

    def __init__(
        self, rule: Any, sigma: float | None, n_types: int, batch: int, dt: float | None = None
    ):
        self.rule, self.sigma = rule, sigma
        self.n_types, self.batch, self.dt = n_types, batch, dt
        self.base: Any = None

    @property
    def n(self) -> int:
        """Size of the rule's per-type state (three-factor: entries of R̄)."""
        size = getattr(self.rule, "state_size", None)
        return size(self.n_types, self.batch) if size is not None else self.n_types

    #: B trials of the network → :class:`OnlineResult` (the LIF subclass swaps it)
    trial_pass = staticmethod(online_pass)

    def estimate(
        self,
        p: RateParams,
        c: Any,
        inputs: Tensor,
        targets: Tensor,
        mask: Tensor | None,
        loss_kind: str,
        generator: torch.Generator,
        types: Tensor | None = None,
        decor: tuple[str, ...] = (),
    ) -> PassResult:
        out = type(self).trial_pass(
            p, c, self.rule, self.base, inputs, targets, mask, loss_kind, generator,
            sigma=self.sigma, types=types, decor=decor, n_types=self.n_types, dt=self.dt,
        )  # fmt: skip
        self.base = out.baseline
        return out.result

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The rule's state between batches (``rule.state_dict``; traces restart every trial)."""
        return self.rule.state_dict(self.base)

    def load_state_dict(self, sd: dict[str, torch.Tensor], like: Tensor) -> None:
        self.base = self.rule.load_state(sd, like)


#: the handle's name when it only held the three-factor rule
OnlineThreeFactor = OnlineHandle
