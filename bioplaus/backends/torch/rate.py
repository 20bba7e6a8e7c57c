"""Pure step function of the rate network (DESIGN §1), Norse style: state in, state out.

Euler–Maruyama with α = dt/τ::

    x_t = (1 − α) x_{t−1} + α (W_rec r̂_{t−1} + W_in û_t + b) + σ √α ξ_t ,   ξ_t ~ N(0, I)
    r̂_t = D_rec φ(x_t) ,   û_t = D_in u_t ,   o_t = W_out r̂_t + b_out

Tensors are batched on the first axis ([B, N]); weights act as ``z @ W.T`` (W is [out, in]).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np
import torch

from ...nonlinearities import PHI as _PHI
from ...spec import RateSpec

Tensor = torch.Tensor

#: φ by name: the neutral table of bioplaus.nonlinearities (re-exported for the back-end)
PHI = _PHI


class RateParams(NamedTuple):
    """Torch tensors of one rate network. Optional entries are None when absent."""

    W_in: Tensor
    W_rec: Tensor
    W_out: Tensor
    b: Tensor | None = None
    b_out: Tensor | None = None
    D_in: Tensor | None = None
    D_rec: Tensor | None = None


class RateState(NamedTuple):
    """x: state [B, N]; r_hat: decorrelated rate D_rec φ(x) [B, N] (kept to avoid recomputing)."""

    x: Tensor
    r_hat: Tensor


class RateConsts(NamedTuple):
    alpha: float
    sigma: float
    phi: Callable[[Tensor], Tensor]


def consts_of(spec: RateSpec) -> RateConsts:
    return RateConsts(alpha=spec.alpha, sigma=spec.sigma, phi=PHI[spec.nonlinearity])


def to_torch(
    params: Mapping[str, np.ndarray | Tensor],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> RateParams:
    """numpy (or torch) parameter dict → :class:`RateParams` on ``device``."""
    return RateParams(*(param_tensor(params, k, device, dtype) for k in RateParams._fields))


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


def to_numpy(params: RateParams) -> dict[str, np.ndarray]:
    """:class:`RateParams` → dict of float64 numpy arrays (absent entries dropped)."""
    return {
        k: v.detach().cpu().double().numpy() for k, v in params._asdict().items() if v is not None
    }


def decorrelate(D: Tensor | None, z: Tensor) -> Tensor:
    """ẑ = D z (identity when D is None)."""
    return z if D is None else z @ D.T


def init_state(p: RateParams, c: RateConsts, batch: int, x0: Tensor | None = None) -> RateState:
    """x_{−1} = 0 (or x0), r̂_{−1} = D_rec φ(x_{−1})."""
    if x0 is None:
        x0 = p.W_rec.new_zeros((batch, p.W_rec.shape[0]))
    return RateState(x0, decorrelate(p.D_rec, c.phi(x0)))


def input_drive(p: RateParams, u: Tensor) -> Tensor:
    """W_in D_in u (+ b) for any leading shape; precomputed for all steps in one matmul."""
    drive = decorrelate(p.D_in, u) @ p.W_in.T
    return drive if p.b is None else drive + p.b


def rate_step(
    p: RateParams,
    c: RateConsts,
    state: RateState,
    drive_t: Tensor,
    xi_t: Tensor | None,
    *,
    added_t: Tensor | None = None,
) -> RateState:
    """One Euler–Maruyama step. ``drive_t`` = W_in û_t + b; ``xi_t`` standard normal or None;
    ``added_t`` an exploration term added to x as it is (the three-factor rule's kicks)::

        x_t = (1 − α) x_{t−1} + α (W_rec r̂_{t−1} + drive_t) + σ √α ξ_t (+ added_t)
        r̂_t = D_rec φ(x_t)
    """
    pre = torch.addmm(drive_t, state.r_hat, p.W_rec.T)
    pre = pre.to(state.x.dtype)  # a no-op, except under bf16 autocast (precision.py)
    x = torch.lerp(state.x, pre, c.alpha) if c.alpha != 1.0 else pre
    if xi_t is not None and c.sigma > 0:
        x = x + (c.sigma * c.alpha**0.5) * xi_t
    if added_t is not None:
        x = x + added_t
    return RateState(x, decorrelate(p.D_rec, c.phi(x)))


#: evaluate tanh as 2 σ(2x) − 1 in the no-grad fast paths on CPU (see :func:`phi_into`)
FAST_TANH = True


def phi_into(phi: Callable[[Tensor], Tensor], x: Tensor, out: Tensor) -> Tensor:
    """out ← φ(x) without temporaries (no autograd). On CPU, tanh is evaluated as
    2 σ(2x) − 1: the same function, and torch's CPU sigmoid is several times faster than its
    tanh (|error| ≤ 2e-7 in float32, ≤ 4e-16 in float64)."""
    if phi is torch.tanh and FAST_TANH and x.device.type == "cpu":
        torch.mul(x, 2.0, out=out)
        torch.sigmoid(out, out=out)
        return out.mul_(2.0).sub_(1.0)
    if phi is torch.tanh or phi is torch.sigmoid:
        return phi(x, out=out)
    return out.copy_(phi(x))


def readout(p: RateParams, r_hat: Tensor) -> Tensor:
    """o = W_out r̂ + b_out."""
    o = r_hat @ p.W_out.T
    return o if p.b_out is None else o + p.b_out
