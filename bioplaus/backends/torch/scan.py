"""The one time loop of the torch back-end: a network's pure step, scanned over t = 0 … T−1.

Every network type's reference (autograd) rollout is this loop around its pure step — the
rate network's :func:`.rate.rate_step` (:func:`.rate.rollout.rollout`) and the LIF network's
:func:`.lif.lif_step` (:func:`.lif.rollout.rollout`, and the precise-spiking branch of
:func:`.lif.rollout.simulate_fast`). The state is the network's NamedTuple (``RateState``,
``LIFState``); what is kept of each step is the caller's choice::

    for t = 0 … T−1:
        s ← sg[s]                       if k divides t   (TBPTT(k): the graph is cut)
        s, y_t ← step(s, drive_t, noise(t))
        kept[name][t] ← f(s, y_t)       for each (name, f) in keep
        on_step(t, s, y_t)
    return s, {name: stack_t kept[name][t]}

``drive`` is the sequence of per-step drives, computed for all steps at once by the caller
(one matmul) and unbound along time — not indexed as ``drive[t]``, so that autograd's
backward through the T slices is one stack, not T full-size zero tensors (which made BPTT
O(T²)). ``noise(t)`` is drawn right before step t (the generator's order is the caller's:
it is one call per step). Kept tensors are stacked once, at the end.

The fused no-autograd engines (:func:`.rate.rollout.rollout_fast`, the grid branch of
:func:`.lif.rollout.simulate_fast`, ``rate.perturb_fast``) run the same steps in place on
preallocated buffers; they are performance paths and stay separate (tests pin them to the
step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import torch

Tensor = torch.Tensor
S = TypeVar("S", bound=tuple)  # a NamedTuple state; its fields are tensors or None
Y = TypeVar("Y")  # what a step returns besides the state (the rate readout o_t, LIF's J_t)

Keep = Callable[[Any, Any], Tensor]  # (state after step t, y_t) → the [B, …] tensor kept


class Scanned(NamedTuple):
    """The state after the last step, and the kept tensors [T, B, …] by the names of
    ``keep`` (a name is missing when T = 0)."""

    final: Any
    kept: dict[str, Tensor]


def detached(state: S) -> S:
    """sg[state]: every tensor field of the NamedTuple ``state`` cut from the graph (fields
    that are None stay None)."""
    return type(state)(*(None if a is None else a.detach() for a in state))


def scan(
    step: Callable[[S, Tensor, Any], tuple[S, Y]],
    state: S,
    drive: Sequence[Tensor],
    noise: Callable[[int], Any] | None = None,
    *,
    keep: Mapping[str, Keep] | None = None,
    detach_every: int | None = None,
    on_step: Callable[[int, S, Y], None] | None = None,
) -> Scanned:
    """Run ``state, y_t = step(state, drive[t], noise(t))`` for t = 0 … len(drive) − 1 (the
    loop of the module docstring; ``noise`` None passes None).

    ``keep``: name → ``f(state, y_t)``, the tensor kept of step t under that name; each is
    stacked into [T, …] at the end. ``detach_every=k`` cuts the state's
    graph before steps 0, k, 2k, … (TBPTT(k)). ``on_step(t, state, y_t)`` is called after
    each step (after the kept tensors are taken).
    """
    cols: list[tuple[str, Keep, list[Tensor]]] = [(n, f, []) for n, f in (keep or {}).items()]
    for t, drive_t in enumerate(drive):
        if detach_every is not None and t % detach_every == 0:
            state = detached(state)
        state, y = step(state, drive_t, None if noise is None else noise(t))
        for _, f, col in cols:
            col.append(f(state, y))
        if on_step is not None:
            on_step(t, state, y)
    return Scanned(state, {n: torch.stack(col) for n, _, col in cols if col})
