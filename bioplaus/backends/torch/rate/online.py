"""The rate network of the one online loop (:func:`~.online.online_trials`):
:class:`RateOnline`, what the loop needs of it (state, û_t and the input drive, the step
with the rule's exploration, the readout, the local signals), the rate network's pass
(:func:`online_pass`) and the trainer's handle on an online rule for it
(:class:`OnlineHandle`, the shared :class:`~.online.OnlineRuleHandle` whose ``network`` is
:class:`RateOnline`). One pass of B trials is
``online_trials(RateOnline(p, c, rule, sigma, generator, inputs, x0), state, targets, …)``.

The rate network (:class:`RateOnline`), the Euler–Maruyama step of DESIGN §1::

    x_t = (1 − α) x_{t−1} + α (W_rec r̂_{t−1} + W_in û_t + b) + n_t
    n_t = rule.explore(…): σ √α ξ_t (gaussian) or κ_t ⊙ U(−A, A) (kicks, Miconi 2017)
    o_t = W_out r̂_t + b_out + σ ξ^o_t

with the local signals a_t = x_t, ψ_t = φ'(x_t), decay 1 − α, gain α,
z_hid = [û_t, r̂_{t−1}, 1], z_out = [r̂_t, 1].
"""

from __future__ import annotations

from typing import Any

import torch

from ....nonlinearities import phi_prime
from ....rules.three_factor import ThreeFactor
from ..online import CHUNK, Local, OnlineNetwork, OnlineResult, OnlineRuleHandle, online_trials
from . import (
    RateConsts,
    RateParams,
    RateState,
    decorrelate,
    init_state,
    input_drive,
    rate_step,
    readout,
)

Tensor = torch.Tensor


class RateOnline(OnlineNetwork):
    """The rate network (module docstring): exploration n_t added to x_t, no background
    noise; a_t = x_t, ψ_t = φ'(x_t), decay 1 − α, gain α, pre = r̂_{t−1}."""

    name = "rate"

    def __init__(
        self,
        p: RateParams,
        c: RateConsts,
        rule: Any,
        sigma: float | None,
        generator: torch.Generator,
        inputs: Tensor,
        x0: Tensor | None = None,
    ) -> None:
        super().__init__(p, c, rule, sigma, generator, inputs)
        self.x0 = x0
        self.drive: Tensor | None = None

    def init_state(self) -> RateState:
        """x_{−1} = 0 (or x0), r̂_{−1} = D_rec φ(x_{−1})."""
        return init_state(self.p, self.c, self.B, self.x0)

    def u_hat(self, t: int) -> Tensor:
        """û_t = D_in u_t; at the start of each chunk, W_in û + b of its CHUNK steps."""
        if t % CHUNK == 0:  # the input drive, CHUNK steps at a time: memory O(1) in T
            self.drive = None  # (freed before the next chunk is formed)
            self.drive = input_drive(self.p, self.inputs[t : t + CHUNK])
        return decorrelate(self.p.D_in, self.inputs[t])

    def step(self, t: int, s: RateState) -> tuple[RateState, Tensor]:
        """Draw n_t (a rule that explores) and take the Euler step; a_t = x_t."""
        added = (
            exploration(self.rule, (self.B, self.N), self.c, self.sigma, self.generator,
                        self.dev, self.dtype)
            if self.rule.explores else None
        )  # fmt: skip
        s = rate_step(self.p, self.c, s, self.drive[t % CHUNK], None, added_t=added)
        return s, s.x

    def readout(self, s: RateState) -> Tensor:
        """o_t = W_out r̂_t + b_out."""
        return readout(self.p, s.r_hat)

    def pre(self, s_prev: RateState) -> Tensor:
        """r̂_{t−1}."""
        return s_prev.r_hat

    def local(self, s_prev: RateState, s: RateState, a: Tensor) -> Local:
        """ψ_t = φ'(x_t) (rules that need it), decay 1 − α, gain α."""
        psi = phi_prime(self.c.phi, s.x) if "psi" in self.needs else None
        return psi, 1.0 - self.c.alpha, self.c.alpha, None


def exploration(
    rule: ThreeFactor,
    shape: tuple[int, ...],
    c: RateConsts,
    sigma: float,
    generator: torch.Generator,
    device: torch.device | str,
    dtype: torch.dtype,
) -> Tensor:
    """The exploratory term n_t added to x_t of the rate network (see the module
    docstring): Gaussian σ √α ξ_t or sparse kicks."""
    return rule.explore(shape, sigma * c.alpha**0.5, generator, device, dtype)


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
    """B trials of the rate network (:class:`RateOnline`, ``x0`` [B, N] its initial x) run
    by :func:`online_trials`; the other arguments are the loop's."""
    return online_trials(
        RateOnline(p, c, rule, sigma, generator, inputs, x0), state, targets, mask, loss_kind,
        types=types, keep_outputs=keep_outputs, decor=decor, n_types=n_types, dt=dt,
    )  # fmt: skip


#: the name of the driver when it only ran the three-factor rule
three_factor_pass = online_pass


class OnlineHandle(OnlineRuleHandle):
    """The trainer's handle on an online rule (:class:`~.online.OnlineRuleHandle`) for the
    rate network."""

    network = RateOnline


#: the handle's name when it only held the three-factor rule
OnlineThreeFactor = OnlineHandle
