"""Batched rollout of the rate network over a sequence.

``rollout`` keeps the states and outputs it is asked to keep; with ``keep_states=False``
its memory does not grow with T (only outputs [T, B, n_out] are kept, and even those
can be dropped by passing ``on_step``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from .rate import RateConsts, RateParams, RateState, init_state, input_drive, rate_step, readout

Tensor = torch.Tensor


class Rollout(NamedTuple):
    x: Tensor | None  # [T, B, N] states, when kept
    r_hat: Tensor | None  # [T, B, N] decorrelated rates, when kept
    o: Tensor | None  # [T, B, n_out] outputs, when kept
    final: RateState


def noise_source(
    shape: tuple[int, ...],
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Callable[[int], Tensor | None]:
    """ξ_t for step t: slices of a given [T, B, N] array, fresh draws from ``generator``,
    or None (no noise) when neither is given."""
    if noise is not None:
        return lambda t: noise[t]
    if generator is None:
        return lambda t: None
    return lambda t: torch.randn(shape, generator=generator, device=device, dtype=dtype)


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
    """Run steps t = 0 … T−1 on ``inputs`` [T, B, n_in].

    ``detach_every=k`` cuts the autograd graph of the state every k steps (TBPTT(k)).
    ``on_step(t, state, o_t)`` is called after each step.
    """
    T, B = inputs.shape[0], inputs.shape[1]
    # one matmul for all steps; unbind (not drive[t]) so that autograd's backward through
    # the slices is one stack, not T full-size zero tensors (which made BPTT O(T²))
    drive = input_drive(p, inputs).unbind(0)
    state = init_state(p, c, B, x0)
    xs, rs, os = [], [], []
    for t in range(T):
        if detach_every is not None and t % detach_every == 0:
            state = RateState(state.x.detach(), state.r_hat.detach())
        state = rate_step(p, c, state, drive[t], xi(t))
        o = readout(p, state.r_hat)
        if keep_states:
            xs.append(state.x)
            rs.append(state.r_hat)
        if keep_outputs:
            os.append(o)
        if on_step is not None:
            on_step(t, state, o)
    return Rollout(
        torch.stack(xs) if keep_states else None,
        torch.stack(rs) if keep_states else None,
        torch.stack(os) if keep_outputs else None,
        state,
    )
