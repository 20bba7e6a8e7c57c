"""Batched rollout of the LIF network (:mod:`.lif`) over a sequence.

The background membrane noise is a standard-normal ξ_t [B, N] per step (slices of a given
realisation, fresh draws from a generator, or none), entering as the current g_v ξ_t (with
precise spiking, as the exact OU increment over the free part of the step); precise spiking
with σ_v > 0 also takes one uniform U_t [B, N] per step, the bridge-crossing draw.

:func:`simulate_fast` is the no-autograd path of ``bp.simulate``: it keeps only what it is
asked to return, in preallocated [T, B, N] buffers, and on the grid runs the step with
in-place work (the same map as :func:`.lif.lif_step`; tests pin the equality).
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
    uniform: Callable[[int], Tensor | None] | None = None,
) -> LIFRollout:
    """Steps t = 0 … T−1 on ``inputs`` [T, B, n_in]; ``xi(t)`` the background ξ_t or None;
    ``uniform(t)`` the bridge-crossing U_t of precise spiking (needed when σ_v > 0).

    ``spike_fn``: "heaviside" (the model), "surrogate" (BPTT), "smooth" (surrogate model).
    ``detach_every=k`` cuts the state's graph every k steps (truncated BPTT).
    """
    if c.needs_uniform and uniform is None:
        raise ValueError("uniform: precise spiking with sigma_v > 0 needs a uniform source")
    T, B = inputs.shape[0], inputs.shape[1]
    # unbind, not ext[t]: autograd's backward through T slices is then one stack, not T
    # full-size zero tensors (O(T²) in BPTT)
    ext = external_drive(p, c, inputs)
    # under autograd every r_t is kept by the graph anyway: one readout matmul for all steps
    batched_readout = torch.is_grad_enabled()
    pre_noise = batched_readout and not c.precise
    if pre_noise:  # the same draws in the same order, added to the drive in one op
        xs = [xi(t) for t in range(T)]
        if xs and xs[0] is not None:
            ext = ext + c.g_v * torch.stack(xs)
    ext = ext.unbind(0)
    st = init_state(p, c, B, v0)
    vs, ss, rs, Js, os = [], [], [], [], []
    for t in range(T):
        if detach_every is not None and t % detach_every == 0:
            st = LIFState(*(None if a is None else a.detach() for a in st))
        x = None if pre_noise else xi(t)
        un = uniform(t) if c.needs_uniform else None
        st, J = lif_step(p, c, st, ext[t], None, spike_fn, bg=x, uniform=un)
        if keep_states:
            vs.append(st.v)
            ss.append(st.s)
            rs.append(st.r)
            Js.append(J)
        if keep_outputs:
            if batched_readout:
                if not keep_states:
                    rs.append(st.r)
            else:
                os.append(readout(p, st.r))

    def stack(a: list[Tensor]) -> Tensor | None:
        return torch.stack(a) if a else None

    r_all = stack(rs)
    o_all = readout(p, r_all) if keep_outputs and batched_readout else stack(os)
    return LIFRollout(stack(vs), stack(ss), r_all if keep_states else None, stack(Js), o_all, st)


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


def uniform_source(
    c: LIFConsts,
    shape: tuple[int, int],
    *,
    uniform: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Callable[[int], Tensor | None] | None:
    """U_t source of precise spiking's bridge crossings: slices of a given [T, B, N] array or
    draws from ``generator`` (after that step's ξ_t when both share it); None when the model
    needs none (grid spiking, or σ_v = 0)."""
    if not c.needs_uniform:
        return None
    if uniform is not None:
        return lambda t: uniform[t]
    if generator is None:
        raise ValueError("uniform: precise spiking with sigma_v > 0 needs a generator or a "
                         "realisation of the bridge-crossing uniforms")  # fmt: skip
    return lambda t: torch.rand(shape, generator=generator, device=device, dtype=dtype)


def eval_outputs(p: LIFParams, c: LIFConsts, inputs: Tensor, seed: int = 0) -> Tensor:
    """Outputs [T, B, n_out] of the unperturbed network (no η, no readout noise) with a
    *fixed* background-noise realisation (seeded by ``seed``), so that evaluations at
    different training steps see the same noise: the LIF network's fluctuation-driven
    regime needs σ_v > 0, so "clean" means unperturbed, not noise-free."""
    B, N = inputs.shape[1], p.W_rec.shape[0]
    gen = torch_generator(seed, "lif", "eval_noise", device=inputs.device)
    xi = background(c, (B, N), generator=gen, device=inputs.device, dtype=inputs.dtype)
    un = uniform_source(c, (B, N), generator=gen, device=inputs.device, dtype=inputs.dtype)
    with torch.no_grad():
        return rollout(p, c, inputs, xi, keep_states=False, uniform=un).o


class Simulated(NamedTuple):
    v: Tensor | None  # [T, B, N] membrane potential after reset
    s: Tensor | None  # [T, B, N] spikes
    d: Tensor | None  # [T, B, N] spike offsets (steps from the spike to the step's end)


def simulate_fast(
    p: LIFParams,
    c: LIFConsts,
    inputs: Tensor,
    xi: Callable[[int], Tensor | None],
    *,
    v0: Tensor | None = None,
    uniform: Callable[[int], Tensor | None] | None = None,
    keep: tuple[str, ...] = ("v",),
    out_dtype: torch.dtype | None = None,
) -> Simulated:
    """The states ``keep`` ⊆ {"v", "s", "d"} of steps 0 … T−1, without autograd, written into
    preallocated [T, B, N] buffers of ``out_dtype`` (default: the inputs' dtype)."""
    T, B = inputs.shape[0], inputs.shape[1]
    N = p.W_rec.shape[0]
    od = out_dtype or inputs.dtype
    new = dict(device=inputs.device, dtype=od)
    with torch.no_grad():
        out = {k: torch.empty(T, B, N, **new) for k in keep}
        ext = external_drive(p, c, inputs)
        if c.precise:
            if c.needs_uniform and uniform is None:
                raise ValueError("uniform: precise spiking with sigma_v > 0 needs a uniform source")
            st = init_state(p, c, B, v0)
            for t in range(T):
                un = uniform(t) if c.needs_uniform else None
                st, _ = lif_step(p, c, st, ext[t], None, bg=xi(t), uniform=un)
                for k, buf in out.items():
                    buf[t].copy_(getattr(st, k))
            return Simulated(out.get("v"), out.get("s"), out.get("d"))
        # grid: J_t = e_t + κ q Wᵀ + g_v ξ_t; v ← v_rest + β_m (v − v_rest) + (1 − β_m) J_t
        WkT = (p.W_rec * c.kappa).T.contiguous()
        st = init_state(p, c, B, v0)
        v, q, cnt = st.v.clone(), st.q.clone(), st.c.clone()
        J = torch.empty_like(v)
        vt = torch.empty_like(v)
        spk = torch.empty(B, N, dtype=torch.bool, device=inputs.device)
        a, bm, off = 1.0 - c.beta_m, c.beta_m, c.v_rest * (1.0 - c.beta_m)
        for t in range(T):
            torch.addmm(ext[t], q, WkT, out=J)
            x = xi(t)
            if x is not None:
                J.add_(x, alpha=c.g_v)
            # v_free = β_m v + (1 − β_m) J (+ v_rest (1 − β_m))
            vt.copy_(v).mul_(bm).add_(J, alpha=a)
            if off != 0.0:
                vt.add_(off)
            if c.n_ref > 0:
                active = cnt <= 0
                torch.where(active, vt, v, out=vt)
                torch.ge(vt, c.theta, out=spk)
                spk.logical_and_(active)
                cnt.sub_(1).clamp_(min=0).masked_fill_(spk, float(c.n_ref))
            else:
                torch.ge(vt, c.theta, out=spk)
            v.copy_(vt).masked_fill_(spk, c.v_reset)
            q.mul_(c.beta_s).add_(spk.to(q.dtype))
            if "v" in out:
                out["v"][t].copy_(v)
            if "s" in out:
                out["s"][t].copy_(spk)
            if "d" in out:
                out["d"][t].zero_()
    return Simulated(out.get("v"), out.get("s"), out.get("d"))
