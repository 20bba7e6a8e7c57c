"""Batched rollout of the rate network over a sequence.

``rollout`` keeps the states and outputs it is asked to keep; with ``keep_states=False``
its memory does not grow with T (only outputs [T, B, n_out] are kept, and even those
can be dropped by passing ``on_step``). Under autograd it is the back-end's one time loop
(:func:`.scan.scan`) around the pure step :func:`.rate.rate_step` and the readout
o_t = W_out r̂_t (+ b_out).

Without autograd (no_grad, or no tensor that requires grad) and without ``on_step``, a fast
path (:func:`rollout_fast`) runs the same Euler–Maruyama steps with in-place work on
preallocated buffers, through the in-place form of the step in
:mod:`~bioplaus.backends.torch.rate` (``fused_weights`` with α folded into the weights,
``fused_drive_``, ``fused_step_``; the
equation is written there): the input drive and the noise for a chunk of steps at once (one
matmul, the noise drawn step by step from the same stream), then per step one in-place add,
one in-place GEMM and φ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ..scan import Keep, scan
from ..tensors import NoiseSource, noise_source  # noqa: F401  (noise_source re-exported)
from . import (
    RateConsts,
    RateParams,
    RateState,
    decorrelate,
    fused_drive_,
    fused_step_,
    fused_weights,
    init_state,
    input_drive,
    rate_step,
    readout,
)

Tensor = torch.Tensor


class Rollout(NamedTuple):
    x: Tensor | None  # [T, B, N] states, when kept
    r_hat: Tensor | None  # [T, B, N] decorrelated rates, when kept
    o: Tensor | None  # [T, B, n_out] outputs, when kept
    final: RateState


def rollout(
    p: RateParams,
    c: RateConsts,
    inputs: Tensor,
    xi: Callable[[int], Tensor | None],
    *,
    x0: Tensor | None = None,
    keep_states: bool = True,
    keep_outputs: bool = True,
    detach_every: int | None = None,
    on_step: Callable[[int, RateState, Tensor], None] | None = None,
) -> Rollout:
    """Run steps t = 0 … T−1 on ``inputs`` [T, B, n_in]: (x_t, r̂_t) = rate_step(x_{t−1},
    r̂_{t−1}, W_in û_t + b, ξ_t), o_t = W_out r̂_t (+ b_out), through :func:`.scan.scan`
    (or :func:`rollout_fast` without autograd and ``on_step``: the same states).

    ``detach_every=k`` cuts the autograd graph of the state every k steps (TBPTT(k)).
    ``on_step(t, state, o_t)`` is called after each step.
    """
    if on_step is None and not _needs_grad(p, inputs, x0):
        return rollout_fast(p, c, inputs, xi, x0=x0, keep_states=keep_states,
                            keep_outputs=keep_outputs)  # fmt: skip
    B = inputs.shape[1]

    def step(s: RateState, drive_t: Tensor, xi_t: Tensor | None) -> tuple[RateState, Tensor]:
        s = rate_step(p, c, s, drive_t, xi_t)
        return s, readout(p, s.r_hat)

    keep = (_STATES if keep_states else {}) | (_OUTPUTS if keep_outputs else {})
    # one matmul for all steps, unbound along time (scan.py: keeps BPTT O(T))
    drive = input_drive(p, inputs).unbind(0)
    run = scan(step, init_state(p, c, B, x0), drive, xi, keep=keep, detach_every=detach_every,
               on_step=on_step)  # fmt: skip
    kept = run.kept
    return Rollout(kept.get("x"), kept.get("r_hat"), kept.get("o"), run.final)


# what the rate rollout keeps of step t, from (state, o_t)
_STATES: dict[str, Keep] = {"x": lambda s, o: s.x, "r_hat": lambda s, o: s.r_hat}
_OUTPUTS: dict[str, Keep] = {"o": lambda s, o: o}


def _needs_grad(p: RateParams, inputs: Tensor, x0: Tensor | None) -> bool:
    if not torch.is_grad_enabled():
        return False
    ts = [v for v in p if v is not None] + [inputs] + ([] if x0 is None else [x0])
    return any(v.requires_grad for v in ts)


def rollout_fast(
    p: RateParams,
    c: RateConsts,
    inputs: Tensor,
    xi: Callable[[int], Tensor | None],
    *,
    x0: Tensor | None = None,
    keep_states: bool = True,
    keep_outputs: bool = True,
    chunk: int | None = None,
) -> Rollout:
    """The no-autograd rollout (module docstring): the same states as :func:`rollout`."""
    T, B = inputs.shape[0], inputs.shape[1]
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    new = dict(device=inputs.device, dtype=inputs.dtype)
    Tc = max(1, min(T, chunk or max(1, min(64, 4096 // max(B, 1)))))
    with torch.no_grad():
        fw = fused_weights(p, c, B)  # α folded into W_in, b, W_rec
        WoT = p.W_out.T
        xs = torch.empty(T, B, N, **new) if keep_states else None
        rs = torch.empty(T, B, N, **new) if keep_states else None
        os = torch.empty(T, B, n_out, **new) if keep_outputs else None
        abuf = None if keep_states else torch.empty(Tc, B, N, **new)
        ring = None if keep_states else torch.empty(2, B, N, **new)
        carry = None if keep_states else torch.empty(B, N, **new)
        s = init_state(p, c, B, x0)
        x_prev, r_prev = s.x, s.r_hat
        chunked = isinstance(xi, NoiseSource)  # else ξ_t = xi(t), added step by step
        filled = chunked and xi.active
        for t0 in range(0, T, Tc):
            n = min(Tc, T - t0)
            A = xs[t0 : t0 + n] if keep_states else abuf[:n]
            if filled:
                xi.fill(t0, A)  # ξ, scaled and added to the drive by its GEMM
            fused_drive_(A, decorrelate(p.D_in, inputs[t0 : t0 + n]), fw, noise=filled)
            for k in range(n):
                t = t0 + k
                xt = None if chunked else xi(t)
                r = rs[t] if keep_states else ring[t % 2]
                x = fused_step_(A[k], x_prev, r_prev, r, fw, xt if c.sigma > 0 else None)
                if keep_outputs:
                    if p.b_out is None:
                        torch.mm(r, WoT, out=os[t])
                    else:
                        torch.addmm(p.b_out, r, WoT, out=os[t])
                x_prev, r_prev = x, r
            if not keep_states:  # the next chunk overwrites abuf
                x_prev = carry.copy_(x_prev)
        final = RateState(x_prev, r_prev) if keep_states else RateState(x_prev, r_prev.clone())
    return Rollout(xs, rs, os, final)
