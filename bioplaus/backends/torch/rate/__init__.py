"""The rate network on torch, one package: here its parameters, constants, pure step,
readout and the step's in-place form; beside it the time loops (``rollout.py``: the
reference rollout on the one time loop of ``scan.py``, and the fused no-autograd rollout),
BPTT (``bptt.py``), what its paired passes perturb and its entry points
(``perturb.py``: node and weight noise step by step, ``perturbation_estimate``,
``generic_estimate``; ``perturb_fast.py``: the chunked fast path; both run by the one driver
of ``../perturb.py``), and its object in the one online loop with the trainer's online
handle (``online.py``, run by ``../online.py``).

Pure step function of the rate network (DESIGN §1), Norse style: state in, state out.

Euler–Maruyama with α = dt/τ::

    x_t = (1 − α) x_{t−1} + α (W_rec r̂_{t−1} + W_in û_t + b) + σ √α ξ_t ,   ξ_t ~ N(0, I)
    r̂_t = D_rec φ(x_t) ,   û_t = D_in u_t ,   o_t = W_out r̂_t + b_out

Tensors are batched on the first axis ([B, N]); weights act as ``z @ W.T`` (W is [out, in]).

This module (the package's ``__init__``) is the one place the torch back-end writes the
equation: :func:`rate_step`, the step with autograd (BPTT, the online drivers, the generic
paired passes), and next to it its in-place form for the no-autograd engines
(``rollout.rollout_fast``, ``perturb_fast.ChunkedNodeNoise``): :func:`fused_weights`
folds α (and, for the paired engine, φ's affine form and D_rec) into the weights once,
:func:`fused_drive_` writes the input drive and noise of a chunk of steps with one GEMM, and
:func:`fused_step_` is one step on preallocated buffers (an in-place add and an in-place
GEMM, then φ). The two forms round differently; tests/backends/torch/rate/test_rate_torch.py pins
their agreement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch

from ....nonlinearities import PHI as _PHI
from ....spec import RateSpec
from ..tensors import (  # noqa: F401  (param_tensor, to_numpy, to_torch: re-exported)
    RecurrentParams,
    decorrelate,
    param_tensor,
    to_numpy,
    to_torch,
)

Tensor = torch.Tensor

#: φ by name: the neutral table of bioplaus.nonlinearities (re-exported for the back-end)
PHI = _PHI


#: torch tensors of one rate network (the shared recurrent parameters, tensors.py)
RateParams = RecurrentParams


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


def init_state(p: RateParams, c: RateConsts, batch: int, x0: Tensor | None = None) -> RateState:
    """x_{−1} = 0 (or x0), r̂_{−1} = D_rec φ(x_{−1})."""
    if x0 is None:
        x0 = p.W_rec.new_zeros((batch, p.W_rec.shape[0]))
    return RateState(x0, decorrelate(p.D_rec, c.phi(x0)))


def input_drive(p: RateParams, u: Tensor) -> Tensor:
    """W_in D_in u (+ b) for any leading shape; precomputed for all steps in one matmul."""
    drive = decorrelate(p.D_in, u) @ p.W_in.T
    return drive if p.b is None else drive + p.b


def noise_gain(alpha: float, sigma: float) -> float:
    """σ √α: the factor of ξ_t in the Euler–Maruyama step."""
    return sigma * alpha**0.5


def rate_step(
    p: RateParams,
    c: RateConsts,
    state: RateState,
    drive_t: Tensor,
    xi_t: Tensor | None,
    *,
    added_t: Tensor | None = None,
) -> RateState:
    """One Euler–Maruyama step (the autograd form; :func:`fused_step_` is the same step in
    place). ``drive_t`` = W_in û_t + b; ``xi_t`` standard normal or None; ``added_t`` an
    exploration term added to x as it is (the three-factor rule's kicks)::

        x_t = (1 − α) x_{t−1} + α (W_rec r̂_{t−1} + drive_t) + σ √α ξ_t (+ added_t)
        r̂_t = D_rec φ(x_t)
    """
    pre = torch.addmm(drive_t, state.r_hat, p.W_rec.T)
    return integrate(p, c, state.x, pre, xi_t, added_t=added_t)


def integrate(
    p: RateParams,
    c: RateConsts,
    x_prev: Tensor,
    pre_t: Tensor,
    xi_t: Tensor | None,
    *,
    added_t: Tensor | None = None,
) -> RateState:
    """The step from a given pre-activation ``pre_t`` = W_rec r̂_{t−1} + W_in û_t + b (what
    :func:`rate_step` computes; weight perturbation brings its own, with per-row ΔW)::

        x_t = (1 − α) x_{t−1} + α pre_t + σ √α ξ_t (+ added_t),   r̂_t = D_rec φ(x_t)
    """
    pre_t = pre_t.to(x_prev.dtype)  # a no-op, except under bf16 autocast (../precision.py)
    x = torch.lerp(x_prev, pre_t, c.alpha) if c.alpha != 1.0 else pre_t
    if xi_t is not None and c.sigma > 0:
        x = x + noise_gain(c.alpha, c.sigma) * xi_t
    if added_t is not None:
        x = x + added_t
    return RateState(x, decorrelate(p.D_rec, c.phi(x)))


# -- the same step in place: the no-autograd engines (rollout_fast, perturb_fast) -----------
#
# :func:`rate_step` above is the reference; the functions below write the same equation for
# in-place work on preallocated buffers, with α folded into the weights once
# (:func:`fused_weights`). They round differently from rate_step (α W instead of a lerp), so
# tests/backends/torch/rate/test_rate_torch.py pins their agreement to float64 rounding.

#: evaluate tanh as 2 σ(2x) − 1 in the no-grad fast paths on CPU (see :func:`phi_affine`)
FAST_TANH = True


class PhiAffine(NamedTuple):
    """φ(x) = a · g(k x) + c, with g cheap to evaluate (:func:`phi_affine`)."""

    k: float
    a: float
    c: float
    g: Callable[..., Tensor]


def phi_affine(phi: Callable[[Tensor], Tensor], device: torch.device) -> PhiAffine:
    """φ as a · g(k x) + c. On CPU, tanh(x) = 2 σ(2x) − 1: the same function, and torch's CPU
    sigmoid is several times faster than its tanh (|error| ≤ 2e-7 in float32, ≤ 4e-16 in
    float64); otherwise g = φ (k = a = 1, c = 0). Read at call time (``FAST_TANH``)."""
    if phi is torch.tanh and device.type == "cpu" and FAST_TANH:
        return PhiAffine(2.0, 2.0, -1.0, torch.sigmoid)
    return PhiAffine(1.0, 1.0, 0.0, phi)


def g_into(g: Callable[..., Tensor], x: Tensor, out: Tensor) -> Tensor:
    """out ← g(x), without a temporary where torch offers ``out=``."""
    if g is torch.sigmoid or g is torch.tanh:
        return g(x, out=out)
    return out.copy_(g(x))


def phi_into(f: PhiAffine, x: Tensor, out: Tensor) -> Tensor:
    """out ← a · g(k x) + c = φ(x) (:func:`phi_affine`) without temporaries (no autograd)."""
    if f.k != 1.0:
        x = torch.mul(x, f.k, out=out)
    if f.g is torch.sigmoid or f.g is torch.tanh:  # g_into, inlined: one call per step
        f.g(x, out=out)
    else:
        out.copy_(f.g(x))
    if f.a != 1.0:
        out.mul_(f.a)
    if f.c != 0.0:
        out.add_(f.c)
    return out


class FusedRate(NamedTuple):
    """The rate equation with α folded into the weights (:func:`fused_weights`), for the
    in-place :func:`fused_drive_` and :func:`fused_step_`. The carried state is v = k x
    (k = 1 when carrying x itself), z_t = D_post f(v_t) the rate the recurrence reads::

        v_t = û_t WinT + bias + xi_gain ξ_t + (1 − α) v_{t−1} + λ (D_pre z_{t−1}) RT
        z_t = D_post f(v_t)
    """

    alpha: float
    xi_gain: float  # k σ√α, the factor of ξ_t in v_t
    WinT: Tensor  # (k α W_in)ᵀ
    bias: Tensor | None  # k α (b + c W_rec D_rec 1), None when zero
    RT: Tensor  # (α W_rec)ᵀ carrying x; (W_rec D_rec)ᵀ or W_recᵀ carrying k x
    rec_scale: float  # λ: 1 carrying x; k α a carrying k x
    D_pre: Tensor | None  # D_rec applied to z_{t−1} before the recurrent GEMM, or None
    D_post: Tensor | None  # D_rec applied to f(v_t) to form z_t, or None
    f: PhiAffine  # z_t = D_post f(v_t): φ carrying x; g carrying k x
    phi: PhiAffine  # φ = a g(k ·) + c
    scratch: Tensor | None  # [rows, N], for the step's D_rec product (None without one)


def fused_weights(
    p: RateParams,
    c: RateConsts,
    rows: int,
    *,
    sigma: float | None = None,
    carry: Literal["x", "kx"] = "x",
    fold_rec: bool = False,
) -> FusedRate:
    """The weights of the in-place step, prepared once per rollout (call under no_grad), and
    its scratch for steps of ``rows`` rows. ``sigma`` defaults to the model's σ. With
    φ(x) = a g(k x) + c (:func:`phi_affine`):

    ``carry="x"`` (``rollout_fast``): the state x and r̂ = D_rec φ(x), α in every weight::

        x_t = [α W_in û_t + α b + σ√α ξ_t] + (1 − α) x_{t−1} + (α W_rec) r̂_{t−1}

    ``carry="kx"`` (``perturb_fast``): y = k x and s = g(y), so W_rec r̂ = a W_rec D_rec s
    + c W_rec D_rec 1; D_rec folded into W_rec (``fold_rec``) or applied to s per step, φ's a
    and c folded into the weights::

        y_t = [kα W_in û_t + kα (b + c W_rec D_rec 1) + k σ√α ξ_t]
              + (1 − α) y_{t−1} + kαa (W_rec D_rec) s_{t−1}
    """
    a = float(c.alpha)
    gain = noise_gain(a, c.sigma if sigma is None else sigma)
    phi = phi_affine(c.phi, p.W_rec.device)
    D = p.D_rec
    scratch = None
    if D is not None and (carry == "x" or not fold_rec):
        scratch = p.W_rec.new_empty(rows, p.W_rec.shape[0])
    if carry == "x":
        b = None if p.b is None else p.b * a
        RT = (p.W_rec * a).T
        return FusedRate(a, gain, (p.W_in * a).T, b, RT, 1.0, None, D, phi, phi, scratch)
    if carry != "kx":
        raise ValueError(f"carry: 'x' or 'kx' (got {carry!r})")
    k_, a_, c_, g = phi
    R = p.W_rec @ D if D is not None and fold_rec else p.W_rec  # W_rec D (or D per step)
    bias = None
    if c_ != 0.0:  # c W_rec D 1
        bias = (p.W_rec.sum(1) if D is None else p.W_rec @ D.sum(1)) * (c_ * k_ * a)
    if p.b is not None:
        bias = p.b * (k_ * a) if bias is None else bias + p.b * (k_ * a)
    D_pre = None if D is None or fold_rec else D
    g_only = PhiAffine(1.0, 1.0, 0.0, g)
    WinT = (p.W_in * (k_ * a)).T
    return FusedRate(a, k_ * gain, WinT, bias, R.T, k_ * a * a_, D_pre, None, g_only, phi, scratch)


def fused_drive_(out: Tensor, u_hat: Tensor, fw: FusedRate, *, noise: bool = False) -> Tensor:
    """The input part of :func:`fused_step_` for a chunk of steps, in place (one GEMM)::

        out_t ← û_t WinT + bias  (+ xi_gain ξ_t when ``noise``: ``out`` holds ξ_t on entry)

    ``out`` [n, B, N], ``u_hat`` = D_in u [n, B, n_in]."""
    of = out.view(-1, out.shape[-1])
    uf = u_hat.reshape(-1, u_hat.shape[-1])
    if noise:
        of.addmm_(uf, fw.WinT, beta=fw.xi_gain)  # k σ√α ξ + kα W_in û (β = 0 ignores ξ)
    else:
        torch.mm(uf, fw.WinT, out=of)
    if fw.bias is not None:
        out.add_(fw.bias)
    return out


def fused_step_(
    v: Tensor, v_prev: Tensor, z_prev: Tensor, z: Tensor, fw: FusedRate, xi_t: Tensor | None = None
) -> Tensor:
    """:func:`rate_step` in place, on the weights of :func:`fused_weights` (the same
    equation, rounded differently). On entry ``v`` holds the step's drive
    (:func:`fused_drive_`); ``xi_t`` is given when that drive was formed without the noise::

        v_t ← v_t (+ xi_gain ξ_t) + (1 − α) v_{t−1} + λ (D_pre z_{t−1}) RT
        z_t ← D_post f(v_t)      (carrying x: v = x_t, z = r̂_t = D_rec φ(x_t))
    """
    if xi_t is not None:
        v.add_(xi_t, alpha=fw.xi_gain)
    if fw.alpha != 1.0:
        v.add_(v_prev, alpha=1.0 - fw.alpha)
    if fw.D_pre is not None:
        z_prev = torch.mm(z_prev, fw.D_pre.T, out=fw.scratch)
    v.addmm_(z_prev, fw.RT, alpha=fw.rec_scale)
    if fw.D_post is None:
        phi_into(fw.f, v, z)
    else:
        torch.mm(phi_into(fw.f, v, fw.scratch), fw.D_post.T, out=z)
    return v


def readout(p: RateParams, r_hat: Tensor) -> Tensor:
    """o = W_out r̂ + b_out."""
    o = r_hat @ p.W_out.T
    return o if p.b_out is None else o + p.b_out
