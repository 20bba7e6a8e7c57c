"""Records shared by the back-ends and the trainer above them.

A neutral module: it imports no back-end, so both back-ends and the layers above them
(trainer, analysis) can name the same record types.

- :class:`PassResult` — what one estimate of a batch hands to the trainer: the gradient
  estimate per learnable parameter, the clean and perturbed losses, the baseline pass's
  outputs when kept, and the decorrelation statistics ⟨y yᵀ⟩.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # annotations only: importing this module does not import torch
    from torch import Tensor


class PassResult(NamedTuple):
    grads: dict[str, Tensor]  # estimate of ∂L for each learnable parameter
    loss: float  # L of the baseline pass (the clean loss with a clean baseline)
    loss_perturbed: float  # L of the perturbed pass(es)
    outputs: Tensor | None  # [T, B, n_out] of the baseline pass, when kept
    decor: dict[str, tuple[Tensor, float]]  # "D_in"/"D_rec": (Σ y yᵀ, count) of the baseline


__all__ = ["PassResult"]
