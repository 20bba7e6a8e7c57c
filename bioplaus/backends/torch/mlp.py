"""Feed-forward multi-layer network on torch: forward pass, exact gradient (BP), and the
stacked paired-pass driver of the perturbation family (DESIGN §2, algorithms.md §2).

Forward, layers l = 0 … L−1 (batch on the first axis, weights act as ``z @ W.T``)::

    ẑ_l = D_l h_{l−1}   (h_{−1} = x)        a_l = W_l ẑ_l + b_l + σ ξ_l (noisy pass)
    h_l = φ(a_l) (l < L−1),  output o = a_{L−1}
    ℓ = −Σ_k y_k log softmax(o)_k  (softmax_ce)  or  ½‖o − y‖² (linear_mse);  L = mean_b ℓ_b

The driver stacks [baseline rows | perturbed rows] in one batch. NP/ANP/WP: K·B perturbed
rows, every layer perturbed. INP: K·L·B rows, each group perturbs one layer. The baseline
is the clean pass (B rows) or, with ``baseline="noisy"``, an independent noisy pass for
every perturbed row with the same layer pattern. Resamples run in chunks of rows so memory
stays bounded for large K.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np
import torch

from ...loss import step_loss
from ...rules.base import check_pass_options
from ...rules.layered import LayeredContext, LayerRecord, WeightRecord
from ...spec import MLPSpec
from .pass_common import noise_sigma
from .rate import param_tensor

Tensor = torch.Tensor


class MLPParams(NamedTuple):
    """Per-layer tensors; b[l] / D[l] are None when absent."""

    W: list[Tensor]
    b: list[Tensor | None]
    D: list[Tensor | None]


class MLPConsts(NamedTuple):
    phi: Callable[[Tensor], Tensor]
    sigma: float
    loss: str  # "ce" | "mse"


class MLPPass(NamedTuple):
    z: list[Tensor]  # ẑ_l [S, m_l]
    a: list[Tensor]  # a_l [S, n_l]
    out: Tensor  # o = a_{L−1}


class MLPResult(NamedTuple):
    grads: dict[str, Tensor]  # W{l}, b{l}
    loss: float  # L of the baseline pass (clean loss with a clean baseline)
    loss_perturbed: float
    decor: dict[str, tuple[Tensor, float]]  # D{l}: (Σ ẑ ẑᵀ, count) of the baseline's first B rows


def mlp_consts(spec: MLPSpec) -> MLPConsts:
    slope = spec.negative_slope
    phis: dict[str, Callable[[Tensor], Tensor]] = {
        "leaky_relu": lambda a: torch.nn.functional.leaky_relu(a, slope),
        "tanh": torch.tanh,
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "linear": lambda a: a,
    }
    return MLPConsts(phis[spec.nonlinearity], spec.sigma, spec.loss)


def mlp_to_torch(
    params: Mapping[str, np.ndarray | Tensor],
    n_layers: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> MLPParams:
    def conv(key: str) -> Tensor | None:
        return param_tensor(params, key, device, dtype)

    L = range(n_layers)
    return MLPParams(
        [conv(f"W{l}") for l in L], [conv(f"b{l}") for l in L], [conv(f"D{l}") for l in L]
    )


def mlp_to_numpy(p: MLPParams) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for l in range(len(p.W)):
        for key, v in ((f"W{l}", p.W[l]), (f"b{l}", p.b[l]), (f"D{l}", p.D[l])):
            if v is not None:
                out[key] = v.detach().cpu().double().numpy()
    return out


def forward(
    p: MLPParams,
    c: MLPConsts,
    x: Tensor,
    noise: list[Tensor | None] | None = None,
    dW: list[Tensor] | None = None,
    db: list[Tensor | None] | None = None,
) -> MLPPass:
    """One pass on x [S, n_in]; ``noise[l]`` [S, n_l] is added to a_l (already scaled by σ);
    ``dW[l]`` [S, n_l, m_l] / ``db[l]`` [S, n_l] are per-row weight perturbations."""
    h = x
    zs, as_ = [], []
    L = len(p.W)
    for l in range(L):
        z = h if p.D[l] is None else h @ p.D[l].T
        a = z @ p.W[l].T
        if p.b[l] is not None:
            a = a + p.b[l]
        if dW is not None:
            a = a + torch.bmm(dW[l], z[:, :, None])[:, :, 0]
            if db is not None and db[l] is not None:
                a = a + db[l]
        if noise is not None and noise[l] is not None:
            a = a + noise[l]
        zs.append(z)
        as_.append(a)
        h = c.phi(a) if l < L - 1 else a
    return MLPPass(zs, as_, as_[-1])


def predict(p: MLPParams, c: MLPConsts, x: Tensor) -> Tensor:
    """Clean outputs o [B, n_out]."""
    with torch.no_grad():
        return forward(p, c, x).out


def grad_keys(p: MLPParams) -> list[str]:
    keys = []
    for l in range(len(p.W)):
        keys.append(f"W{l}")
        if p.b[l] is not None:
            keys.append(f"b{l}")
    return keys


def _decor_stats(p: MLPParams, zs: list[Tensor], B: int) -> dict[str, tuple[Tensor, float]]:
    return {
        f"D{l}": (zs[l][:B].T @ zs[l][:B], float(B)) for l in range(len(p.W)) if p.D[l] is not None
    }


def mlp_gradient(
    p: MLPParams, c: MLPConsts, x: Tensor, y: Tensor, *, decor: bool = False
) -> MLPResult:
    """Exact ∂L/∂θ by autograd (BP; DBP when the D_l are present: gradients at ẑ = D h)."""
    leaves = [w.detach().clone().requires_grad_(True) for w in p.W]
    bl = [None if b is None else b.detach().clone().requires_grad_(True) for b in p.b]
    q = MLPParams(leaves, bl, p.D)
    with torch.enable_grad():
        fp = forward(q, c, x)
        L = step_loss(c.loss, fp.out, y).mean()
        flat = [t for pair in zip(leaves, bl, strict=True) for t in pair if t is not None]
        gs = torch.autograd.grad(L, flat)
    grads = dict(zip(grad_keys(p), gs, strict=True))
    with torch.no_grad():
        stats = _decor_stats(p, [z.detach() for z in fp.z], x.shape[0]) if decor else {}
    return MLPResult(grads, float(L.detach()), float("nan"), stats)


def mlp_perturbation_estimate(
    p: MLPParams,
    c: MLPConsts,
    rule,
    x: Tensor,
    y: Tensor,
    generator: torch.Generator,
    *,
    sigma: float | None = None,
    K: int = 1,
    baseline: str = "clean",
    decor: bool = False,
    max_rows: int = 65536,
) -> MLPResult:
    """A perturbation rule's estimate of ∂L at the current weights (module docstring)."""
    sigma = noise_sigma(sigma, c.sigma)
    check_pass_options(sigma, baseline, K)
    B = x.shape[0]
    L = len(p.W)
    dev, dt = x.device, x.dtype
    weight = getattr(rule, "perturbs", "nodes") == "weights"  # the WeightRecord contract
    G = L if rule.iterative else 1  # groups of perturbed passes per resample
    noisy_base = baseline == "noisy"
    ctx = LayeredContext(sigma, 2.0 if noisy_base else 1.0)
    shapes = [tuple(w.shape) for w in p.W]
    state = rule.init(shapes, p.W[0])
    # resamples per chunk: perturbed rows K_c·G·B (doubled with a noisy baseline)
    per = G * B * (2 if noisy_base else 1)
    Kc = max(1, min(K, max_rows // max(per, 1)))
    sum_lb = sum_la = 0.0
    n_lb = 0
    stats: dict[str, tuple[Tensor, float]] = {}
    with torch.no_grad():
        clean = None if noisy_base else forward(p, c, x)
        if clean is not None:
            ell_clean = step_loss(c.loss, clean.out, y)
            if decor:
                stats = _decor_stats(p, clean.z, B)
        done = 0
        while done < K:
            k = min(Kc, K - done)
            P = k * G * B
            src = torch.arange(P, device=dev) % B
            grp = (torch.arange(P, device=dev) // B) % G  # group (perturbed layer, INP)
            active = (
                [(grp == l).to(dt) for l in range(L)] if rule.iterative else None
            )  # fmt: skip
            rows = 2 * P if noisy_base else P
            xs, ys = x[src], y[src]
            if noisy_base:
                xs, ys = xs.repeat(2, 1), ys.repeat(2, 1)
            if weight:
                dW = [
                    sigma * torch.randn((rows, *w.shape), generator=generator, device=dev, dtype=dt)
                    for w in p.W
                ]
                db = [
                    None
                    if b is None
                    else sigma
                    * torch.randn((rows, b.shape[0]), generator=generator, device=dev, dtype=dt)
                    for b in p.b
                ]
                fp = forward(p, c, xs, dW=dW, db=db)
            else:
                noise = []
                for l, w in enumerate(p.W):
                    xi = sigma * torch.randn(
                        rows, w.shape[0], generator=generator, device=dev, dtype=dt
                    )
                    if active is not None:
                        m = active[l].repeat(2) if noisy_base else active[l]
                        xi = xi * m[:, None]
                    noise.append(xi)
                fp = forward(p, c, xs, noise=noise)
            ell = step_loss(c.loss, fp.out, ys)
            if noisy_base:
                A, Bs = slice(P, 2 * P), slice(0, P)
                ell_a, ell_b = ell[A], ell[Bs]
                z = [zz[Bs] for zz in fp.z]
                if decor and not stats:
                    stats = _decor_stats(p, z, B)
                sum_lb += float(ell_b.sum())
                n_lb += P
            else:
                ell_a, ell_b = ell, ell_clean[src]
                z = [zz[src] for zz in clean.z]
            dl = ell_a - ell_b
            if weight:
                rec = WeightRecord(
                    z,
                    [d[A] - d[Bs] for d in dW] if noisy_base else dW,
                    [None if d is None else (d[A] - d[Bs] if noisy_base else d) for d in db],
                    dl,
                )
            elif noisy_base:
                rec = LayerRecord(
                    z,
                    [a[A] - a[Bs] for a in fp.a],
                    [n[A] - n[Bs] for n in noise],
                    dl,
                    active,
                    [n[A] for n in noise],
                )
            else:
                rec = LayerRecord(
                    z, [a - ca[src] for a, ca in zip(fp.a, clean.a, strict=True)], noise, dl, active
                )
            state = rule.accumulate(state, rec, ctx)
            sum_la += float(ell_a.sum())
            done += k
        est = rule.finalize(state, float(K * B))
    grads: dict[str, Tensor] = {}
    for l in range(L):
        grads[f"W{l}"] = est.W[l]
        if p.b[l] is not None:
            grads[f"b{l}"] = est.b[l]
    loss = float(ell_clean.mean()) if not noisy_base else sum_lb / max(n_lb, 1)
    lp = sum_la / (K * G * B)
    return MLPResult(grads, loss, lp if math.isfinite(lp) else float("nan"), stats)
