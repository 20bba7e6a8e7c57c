"""Exact gradients by backpropagation through time (autograd), full or truncated.

BPTT      : ∂L/∂θ through all T steps
TBPTT(k)  : the state's graph is cut every k steps (k = 1: each ℓ_t reaches only the
            step that produced x_t — the baseline the RNN seed paper's code ran)
"""

from __future__ import annotations

import torch

from ....records import PassResult
from ..autograd_pass import Forward, autograd_estimate
from . import RateConsts, RateParams
from .rollout import noise_source, rollout

Tensor = torch.Tensor


def bptt_estimate(
    p: RateParams,
    c: RateConsts,
    inputs: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    *,
    k: int | None = None,
    generator: torch.Generator | None = None,
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
    x0: Tensor | None = None,
) -> PassResult:
    """Gradient of L by autograd. With ``generator`` the pass carries intrinsic noise σ."""
    if k is not None and k < 1:
        raise ValueError(f"k: truncation must be >= 1 (got {k})")
    B = inputs.shape[1]
    xi = noise_source(
        (B, p.W_rec.shape[0]), generator=generator, device=inputs.device, dtype=inputs.dtype
    )

    def forward(q: RateParams) -> Forward:
        out = rollout(q, c, inputs, xi, x0=x0, keep_states=bool(decor), detach_every=k)
        return Forward(out.o, out.r_hat)

    return autograd_estimate(
        p, forward, inputs, targets, mask, loss_kind, keep_outputs=keep_outputs, decor=decor
    )
