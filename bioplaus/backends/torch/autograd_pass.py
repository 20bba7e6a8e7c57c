"""What BPTT on the rate network and surrogate BPTT on the LIF network share: the learnable
leaves, one autograd pass of L = mean loss over the outputs, and the decorrelation statistics
Σ ŷ ŷᵀ of the layer inputs that the D rule (DESIGN §2) consumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ...loss import mean_loss
from ...params import LEARNABLE
from ...records import PassResult

Tensor = torch.Tensor


class Forward(NamedTuple):
    """What a differentiable forward pass returns: outputs [T, B, n_out], and the
    decorrelated recurrent rates r̂ [T, B, N] when the D_rec statistics are wanted."""

    o: Tensor
    r_hat: Tensor | None


def autograd_estimate(
    p: NamedTuple,
    forward: Callable[[NamedTuple], Forward],
    inputs: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    *,
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
) -> PassResult:
    """∂L/∂θ by autograd for every learnable θ of ``p`` that is present, where
    L = mean_loss(forward(θ).o, targets, mask); plus Σ_{t,b} û û ᵀ and Σ_{t,b} r̂ r̂ᵀ for the
    layers named in ``decor`` (û = D_in u)."""
    leaves = {
        name: getattr(p, name).detach().clone().requires_grad_(True)
        for name in LEARNABLE
        if getattr(p, name) is not None
    }
    with torch.enable_grad():
        out = forward(p._replace(**leaves))
        L = mean_loss(loss_kind, out.o, targets, mask)
        grads = torch.autograd.grad(L, list(leaves.values()))
    stats: dict[str, tuple[Tensor, float]] = {}
    T, B = inputs.shape[0], inputs.shape[1]
    with torch.no_grad():
        if "D_in" in decor:
            u = inputs.reshape(T * B, -1)
            u_hat = u if p.D_in is None else u @ p.D_in.T
            stats["D_in"] = (u_hat.T @ u_hat, float(T * B))
        if "D_rec" in decor:
            if out.r_hat is None:
                raise ValueError("decor: the forward pass kept no rates for the D_rec statistics")
            r = out.r_hat.detach().reshape(T * B, -1)
            stats["D_rec"] = (r.T @ r, float(T * B))
    return PassResult(
        grads=dict(zip(leaves, grads, strict=True)),
        loss=float(L.detach()),
        loss_perturbed=float("nan"),
        outputs=out.o.detach() if keep_outputs else None,
        decor=stats,
    )
