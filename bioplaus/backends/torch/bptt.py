"""Exact gradients by backpropagation through time (autograd), full or truncated.

BPTT      : ∂L/∂θ through all T steps
TBPTT(k)  : the state's graph is cut every k steps (k = 1: each ℓ_t reaches only the
            step that produced x_t — the baseline the RNN seed paper's code ran)
"""

from __future__ import annotations

import torch

from ...loss import mean_loss
from .perturb import PassResult
from .rate import RateConsts, RateParams, decorrelate
from .rollout import noise_source, rollout

Tensor = torch.Tensor
LEARNABLE = ("W_in", "W_rec", "W_out", "b", "b_out")


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
    leaves = {
        name: getattr(p, name).detach().clone().requires_grad_(True)
        for name in LEARNABLE
        if getattr(p, name) is not None
    }
    q = p._replace(**leaves)
    B = inputs.shape[1]
    xi = noise_source(
        (B, p.W_rec.shape[0]), generator=generator, device=inputs.device, dtype=inputs.dtype
    )
    with torch.enable_grad():
        out = rollout(q, c, inputs, xi, x0=x0, keep_states=bool(decor), detach_every=k)
        L = mean_loss(loss_kind, out.o, targets, mask)
        grads = torch.autograd.grad(L, list(leaves.values()))
    stats = {}
    T = inputs.shape[0]
    with torch.no_grad():
        if "D_in" in decor:
            u_hat = decorrelate(p.D_in, inputs.reshape(T * B, -1))
            stats["D_in"] = (u_hat.T @ u_hat, float(T * B))
        if "D_rec" in decor:
            r = out.r_hat.detach().reshape(T * B, -1)
            stats["D_rec"] = (r.T @ r, float(T * B))
    return PassResult(
        grads=dict(zip(leaves, grads, strict=True)),
        loss=float(L.detach()),
        loss_perturbed=float("nan"),
        outputs=out.o.detach() if keep_outputs else None,
        decor=stats,
    )
