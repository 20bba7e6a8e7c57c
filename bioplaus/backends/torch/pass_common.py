"""What every torch driver (paired passes, online passes) shares: the noise level of a pass,
the decorrelation statistics of its baseline rows, and the split of the stacked estimate.

    σ of a pass = the rule's σ, or the model's when the rule leaves it unset (None)
    Σ y yᵀ      for y = û_t (D_in) and y = r̂_t (D_rec) of the baseline rows, over the trial
"""

from __future__ import annotations

import torch

from ...rules.options import noise_sigma  # noqa: F401  (the drivers import it from here)
from .tensors import RecurrentParams

Tensor = torch.Tensor


def decor_sums(keys: tuple[str, ...], n_in: int, N: int, like: Tensor) -> dict[str, Tensor]:
    """Zeroed Σ y yᵀ accumulators: [n_in, n_in] for ``D_in``, [N, N] for ``D_rec``."""
    size = {"D_in": n_in, "D_rec": N}
    return {k: like.new_zeros((size[k], size[k])) for k in keys}


def add_decor_(yy: dict[str, Tensor], u_hat: Tensor, r_hat: Tensor) -> None:
    """Σ y yᵀ += yᵀ y for the step's baseline rows (û_t [B, n_in], r̂_t [B, N])."""
    if "D_in" in yy:
        yy["D_in"].addmm_(u_hat.T, u_hat)
    if "D_rec" in yy:
        yy["D_rec"].addmm_(r_hat.T, r_hat)


def split_grads(p: RecurrentParams, G_hid: Tensor, G_out: Tensor) -> dict[str, Tensor]:
    """[N, n_in + N (+1)] and [n_out, N (+1)] → W_in, W_rec, (b), W_out, (b_out), for the
    parameters ``p`` of a recurrent network (rate or LIF: W_in, W_rec, b, b_out)."""
    n_in, N = p.W_in.shape[1], p.W_rec.shape[0]
    g = {"W_in": G_hid[:, :n_in], "W_rec": G_hid[:, n_in : n_in + N], "W_out": G_out[:, :N]}
    if p.b is not None:
        g["b"] = G_hid[:, n_in + N]
    if p.b_out is not None:
        g["b_out"] = G_out[:, N]
    return g
