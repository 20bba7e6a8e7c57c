"""Batched rollout of the LIF network (:mod:`.lif`) over a sequence.

The background membrane noise is a standard-normal ξ_t [B, N] per step (slices of a given
realisation, fresh draws from a generator, or none), entering as the current g_v ξ_t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ...random import torch_generator
from .lif import LIFConsts, LIFParams, LIFState, external_drive, init_state, lif_step, readout
from .rollout import noise_source

Tensor = torch.Tensor


class LIFRollout(NamedTuple):
    v: Tensor | None  # [T, B, N] membrane potential after reset, when kept
    s: Tensor | None  # [T, B, N] spikes, when kept
    r: Tensor | None  # [T, B, N] filtered spike trains, when kept
    J: Tensor | None  # [T, B, N] synaptic drive, when kept
    o: Tensor | None  # [T, B, n_out], when kept
    final: LIFState


def rollout(
    p: LIFParams,
    c: LIFConsts,
    inputs: Tensor,
    xi: Callable[[int], Tensor | None],
    *,
    v0: Tensor | None = None,
    keep_states: bool = True,
    keep_outputs: bool = True,
    spike_fn: str = "heaviside",
    detach_every: int | None = None,
) -> LIFRollout:
    """Steps t = 0 … T−1 on ``inputs`` [T, B, n_in]; ``xi(t)`` the background ξ_t or None.

    ``spike_fn``: "heaviside" (the model), "surrogate" (BPTT), "smooth" (surrogate model).
    ``detach_every=k`` cuts the state's graph every k steps (truncated BPTT).
    """
    T, B = inputs.shape[0], inputs.shape[1]
    ext = external_drive(p, c, inputs)
    st = init_state(p, c, B, v0)
    vs, ss, rs, Js, os = [], [], [], [], []
    for t in range(T):
        if detach_every is not None and t % detach_every == 0:
            st = LIFState(*(a.detach() for a in st))
        x = xi(t)
        st, J = lif_step(p, c, st, ext[t], None if x is None else c.g_v * x, spike_fn)
        if keep_states:
            vs.append(st.v)
            ss.append(st.s)
            rs.append(st.r)
            Js.append(J)
        if keep_outputs:
            os.append(readout(p, st.r))

    def stack(a: list[Tensor]) -> Tensor | None:
        return torch.stack(a) if a else None

    return LIFRollout(stack(vs), stack(ss), stack(rs), stack(Js), stack(os), st)


def background(
    c: LIFConsts,
    shape: tuple[int, int],
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Callable[[int], Tensor | None]:
    """ξ_t source for the background noise (none when σ_v = 0 and no realisation is given)."""
    if noise is None and c.g_v == 0:
        return lambda t: None
    return noise_source(shape, noise=noise, generator=generator, device=device, dtype=dtype)


def eval_outputs(p: LIFParams, c: LIFConsts, inputs: Tensor, seed: int = 0) -> Tensor:
    """Outputs [T, B, n_out] of the unperturbed network (no η, no readout noise) with a
    *fixed* background-noise realisation (seeded by ``seed``), so that evaluations at
    different training steps see the same noise: the LIF network's fluctuation-driven
    regime needs σ_v > 0, so "clean" means unperturbed, not noise-free."""
    B, N = inputs.shape[1], p.W_rec.shape[0]
    gen = torch_generator(seed, "lif", "eval_noise", device=inputs.device)
    xi = background(c, (B, N), generator=gen, device=inputs.device, dtype=inputs.dtype)
    with torch.no_grad():
        return rollout(p, c, inputs, xi, keep_states=False).o
