"""Decorrelation by learned lateral inhibition (DESIGN §2).

For a decorrelating matrix D with output y = D z:

    ΔD = −η_D · offdiag(⟨y yᵀ⟩) · D

with ⟨·⟩ the mean over batch and steps of the clean pass. The statistics are gathered by
the back-end (Σ y yᵀ and the count); this module only turns them into the update.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def offdiag(C: Tensor) -> Tensor:
    """C with its diagonal set to zero."""
    return C - torch.diag_embed(torch.diagonal(C))


def decorrelation_update(D: Tensor, yy_sum: Tensor, count: float, lr: float) -> Tensor:
    """New D = D − η offdiag(Σ y yᵀ / count) D."""
    return D - lr * (offdiag(yy_sum / max(count, 1.0)) @ D)


def mean_offdiag_correlation(y: Tensor) -> float:
    """Mean |correlation coefficient| over distinct pairs of the columns of y [S, n]."""
    yc = y - y.mean(0, keepdim=True)
    sd = yc.pow(2).mean(0).sqrt().clamp_min(1e-12)
    R = (yc.T @ yc / y.shape[0]) / (sd[:, None] * sd[None, :])
    n = R.shape[0]
    return float(offdiag(R).abs().sum() / max(n * (n - 1), 1))
