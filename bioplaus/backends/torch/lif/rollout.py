"""Batched rollout of the LIF network (:mod:`.lif`) over a sequence.

The background membrane noise is a standard-normal ξ_t [B, N] per step (slices of a given
realisation, fresh draws from a generator, or none), entering as the current g_v ξ_t (with
precise spiking, as the exact OU increment over the free part of the step); precise spiking
with σ_v > 0 also takes one uniform U_t [B, N] per step, the bridge-crossing draw.

:func:`rollout` is the back-end's one time loop (:func:`.scan.scan`) around the pure step
:func:`.lif_step` and the readout o_t = W_out D_rec r_t (+ b_out).
:func:`simulate_fast` is the no-autograd path of ``bp.simulate``: it keeps only what it is
asked to return, in preallocated [T, B, N] buffers; with precise spiking it is the same
loop, recording each step into them, and on the grid it runs the step with in-place work
(the same map as :func:`.lif_step`; tests pin the equality).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ....random import torch_generator
from ..scan import Keep, scan
from ..tensors import noise_source
from . import LIFConsts, LIFParams, LIFState, external_drive, init_state, lif_step, readout

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
    """Steps t = 0 … T−1 on ``inputs`` [T, B, n_in] through :func:`.scan.scan`: (state_t,
    J_t) = lif_step(state_{t−1}, W_in û_t + b + I_0, ξ_t, U_t), o_t = W_out D_rec r_t (+ b_out);
    ``xi(t)`` the background ξ_t or None; ``uniform(t)`` the bridge-crossing U_t of precise
    spiking (needed when σ_v > 0), drawn after ξ_t.

    ``spike_fn``: "heaviside" (the model), "surrogate" (BPTT), "smooth" (surrogate model).
    ``detach_every=k`` cuts the state's graph every k steps (truncated BPTT).
    """
    if c.needs_uniform and uniform is None:
        raise ValueError("uniform: precise spiking with sigma_v > 0 needs a uniform source")
    T, B = inputs.shape[0], inputs.shape[1]
    ext = external_drive(p, c, inputs)
    # under autograd every r_t is kept by the graph anyway: one readout matmul for all steps
    batched_readout = torch.is_grad_enabled()
    pre_noise = batched_readout and not c.precise
    if pre_noise:  # the same draws in the same order, added to the drive in one op
        xs = [xi(t) for t in range(T)]
        if xs and xs[0] is not None:
            ext = ext + c.g_v * torch.stack(xs)
    keep = dict(_STATES) if keep_states else {}
    if keep_outputs and batched_readout:
        keep["r"] = _STATES["r"]  # for the one readout after the loop
    elif keep_outputs:
        keep["o"] = lambda st, J: readout(p, st.r)

    def draws(t: int) -> Draws:  # ξ_t, then U_t
        return (None if pre_noise else xi(t)), (uniform(t) if c.needs_uniform else None)

    # unbound along time (scan.py: keeps BPTT O(T))
    run = scan(_step(p, c, spike_fn), init_state(p, c, B, v0), ext.unbind(0), draws,
               keep=keep, detach_every=detach_every)  # fmt: skip
    k = run.kept
    o = readout(p, k["r"]) if keep_outputs and batched_readout else k.get("o")
    r = k.get("r") if keep_states else None
    return LIFRollout(k.get("v"), k.get("s"), r, k.get("J"), o, run.final)


Draws = tuple[Tensor | None, Tensor | None]  # (ξ_t, U_t) of one step
# what the LIF rollout keeps of step t, from (state, J_t)
_STATES: dict[str, Keep] = {
    "v": lambda st, J: st.v,
    "s": lambda st, J: st.s,
    "r": lambda st, J: st.r,
    "J": lambda st, J: J,
}


def _step(
    p: LIFParams, c: LIFConsts, spike_fn: str = "heaviside"
) -> Callable[[LIFState, Tensor, Draws], tuple[LIFState, Tensor]]:
    """:func:`.lif_step` as :func:`.scan.scan` runs it: (state, e_t, (ξ_t, U_t)) →
    (state, J_t), with e_t = W_in û_t + b + I_0 and no perturbation η."""

    def step(st: LIFState, e_t: Tensor, draws: Draws) -> tuple[LIFState, Tensor]:
        return lif_step(p, c, st, e_t, None, spike_fn, bg=draws[0], uniform=draws[1])

    return step


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

            def record(t: int, st: LIFState, J: Tensor) -> None:
                for k, buf in out.items():
                    buf[t].copy_(getattr(st, k))

            def draws(t: int) -> Draws:  # U_t, then ξ_t: the order of bp.simulate's seeded stream
                un = uniform(t) if c.needs_uniform else None
                return xi(t), un

            scan(_step(p, c), init_state(p, c, B, v0), ext.unbind(0), draws,
                 on_step=record)  # fmt: skip
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
