"""What every network package on torch shares about its tensors: the recurrent networks'
parameters (:class:`RecurrentParams`, the same entries for rate and LIF), the conversions
from and to numpy dicts, the decorrelating transform ẑ = D z, and the source of the white
noise ξ_t a rollout steps through. The network packages (``rate/``, ``lif/``) and the MLP
import these from here, not from each other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch

Tensor = torch.Tensor

__all__ = [
    "NoiseSource",
    "RecurrentParams",
    "decorrelate",
    "noise_source",
    "param_tensor",
    "to_numpy",
    "to_torch",
]


class RecurrentParams(NamedTuple):
    """Torch tensors of one recurrent network (rate or LIF: ``RateParams``, ``LIFParams``).
    Optional entries are None when absent."""

    W_in: Tensor
    W_rec: Tensor
    W_out: Tensor
    b: Tensor | None = None
    b_out: Tensor | None = None
    D_in: Tensor | None = None
    D_rec: Tensor | None = None


def to_torch(
    params: Mapping[str, np.ndarray | Tensor],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> RecurrentParams:
    """numpy (or torch) parameter dict → :class:`RecurrentParams` on ``device``."""
    return RecurrentParams(
        *(param_tensor(params, k, device, dtype) for k in RecurrentParams._fields)
    )


def param_tensor(
    params: Mapping[str, np.ndarray | Tensor],
    key: str,
    device: str | torch.device,
    dtype: torch.dtype,
) -> Tensor | None:
    """``params[key]`` (numpy or torch) as a tensor on ``device``, or None when absent."""
    v = params.get(key)
    if v is None:
        return None
    return torch.as_tensor(np.asarray(v) if not isinstance(v, Tensor) else v).to(
        device=device, dtype=dtype
    )


def to_numpy(params: RecurrentParams) -> dict[str, np.ndarray]:
    """:class:`RecurrentParams` → dict of float64 numpy arrays (absent entries dropped)."""
    return {
        k: v.detach().cpu().double().numpy() for k, v in params._asdict().items() if v is not None
    }


def decorrelate(D: Tensor | None, z: Tensor) -> Tensor:
    """ẑ = D z (identity when D is None)."""
    return z if D is None else z @ D.T


class NoiseSource:
    """ξ_t for step t (see :func:`noise_source`); callable as ``xi(t)``. The fast no-grad
    rollout fills its chunk buffers through :meth:`fill` (the same values as ``xi(t)``)."""

    def __init__(self, shape, noise, generator, device, dtype) -> None:
        self.shape, self.noise, self.generator = tuple(shape), noise, generator
        self.device, self.dtype = device, dtype

    @property
    def active(self) -> bool:
        return self.noise is not None or self.generator is not None

    def __call__(self, t: int) -> Tensor | None:
        if self.noise is not None:
            return self.noise[t]
        if self.generator is None:
            return None
        return torch.randn(
            self.shape, generator=self.generator, device=self.device, dtype=self.dtype
        )

    def fill(self, t0: int, out: Tensor) -> None:
        """out[k] ← ξ_{t0+k} for k < len(out) (the generator's stream, step by step)."""
        if self.noise is not None:
            out.copy_(self.noise[t0 : t0 + out.shape[0]])
        else:
            for k in range(out.shape[0]):
                out[k].normal_(generator=self.generator)


def noise_source(
    shape: tuple[int, ...],
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> NoiseSource:
    """ξ_t for step t: slices of a given [T, B, N] array, fresh draws from ``generator``,
    or None (no noise) when neither is given."""
    return NoiseSource(shape, noise, generator, device, dtype)
