"""Per-step, per-trial losses ℓ_{t,b} and the mean loss L (DESIGN §1).

    mse:  ℓ_{t,b} = ½ Σ_k (o_{t,b,k} − y_{t,b,k})²
    ce:   ℓ_{t,b} = −Σ_k y_{t,b,k} log softmax(o_{t,b})_k
    L = Σ_{t,b} m_{t,b} ℓ_{t,b} / Σ_{t,b} m_{t,b}      (m = 1 everywhere when there is no mask)

so L is the mean over batch and scored steps; every rule's estimate uses the same normaliser.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor
LOSSES = ("mse", "ce")


def step_loss(kind: str, o: Tensor, y: Tensor) -> Tensor:
    """ℓ for outputs ``o`` and targets ``y`` of shape [..., n_out] → [...]."""
    if kind == "mse":
        return 0.5 * ((o - y) ** 2).sum(-1)
    if kind == "ce":
        return -(y * torch.log_softmax(o, dim=-1)).sum(-1)
    raise ValueError(f"loss: unknown loss {kind!r} (choose from {LOSSES})")


def step_loss_grad(kind: str, o: Tensor, y: Tensor) -> Tensor:
    """∂ℓ/∂o [..., n_out]: mse o − y; ce softmax(o) Σ_k y_k − y."""
    if kind == "mse":
        return o - y
    if kind == "ce":
        return torch.softmax(o, dim=-1) * y.sum(-1, keepdim=True) - y
    raise ValueError(f"loss: unknown loss {kind!r} (choose from {LOSSES})")


def mean_loss(kind: str, o: Tensor, y: Tensor, mask: Tensor | None) -> Tensor:
    """L over [T, B, n_out] outputs: the masked mean of ℓ_{t,b}."""
    ell = step_loss(kind, o, y)
    if mask is None:
        return ell.mean()
    return (ell * mask).sum() / mask.sum().clamp_min(1.0)


def normaliser(mask: Tensor | None, T: int, B: int) -> float:
    """Σ m (T·B without a mask): the denominator of L."""
    return float(T * B) if mask is None else max(float(mask.sum()), 1.0)
