"""Fixed and slow points of a trained rate network (Sussillo & Barak 2013).

At a constant input u*, one Euler step of the rate network (DESIGN §1, noise-free) is the map

    F(x) = (1 − α) x + α (W_rec D_rec φ(x) + W_in D_in u* + b)

and its fixed points x* = F(x*) are the zeros of τ dx/dt. From many initial states x₀
(sampled from the network's own trajectories, plus a little jitter) we minimise

    q(x) = ½ ‖F(x) − x‖² = ½ α² ‖−x + W_rec D_rec φ(x) + W_in D_in u* + b‖²

by L-BFGS (we minimise q/α², the squared speed of the continuous-time flow, which is
better scaled for small α). Minima with q ≈ 0 are fixed points; local minima with small
q > 0 are slow points. Stability comes from the eigenvalues λ of the Jacobian

    J(x*) = ∂F/∂x = (1 − α) I + α W_rec D_rec diag(φ'(x*))

(stable iff max |λ| < 1; equivalently the continuous-time eigenvalues (λ − 1)/α have
negative real parts). For a linear network (φ(x) = x) the fixed point is unique,
x* = (I − W_rec D_rec)⁻¹ (W_in D_in u* + b), which the tests check.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..spec import ModelSpec


class FixedPoints(NamedTuple):
    x: np.ndarray  # [K, N] unique points found (sorted by q)
    q: np.ndarray  # [K] q(x) = ½‖F(x) − x‖²
    speed: np.ndarray  # [K] ‖F(x) − x‖ / α  (‖τ dx/dt‖)
    eigvals: np.ndarray  # [K, N] complex eigenvalues of J(x), by decreasing modulus
    is_fixed: np.ndarray  # [K] bool: q below fixed_tol
    stable: np.ndarray  # [K] bool: max |λ| < 1
    counts: np.ndarray  # [K] how many initial states converged to this point
    n_init: int


def _phi(name: str):
    from ..nonlinearities import PHI

    return PHI[name]


def _map(spec: ModelSpec, params: dict[str, np.ndarray], u_star: np.ndarray):
    """F as a torch function of x [K, N] (float64), and α."""
    p = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64) for k, v in params.items()}
    W = p["W_rec"] @ p["D_rec"] if "D_rec" in p else p["W_rec"]
    u = torch.as_tensor(np.asarray(u_star, dtype=np.float64).reshape(-1))
    if u.shape[0] != spec.n_in:
        raise ValueError(f"u_star: expected {spec.n_in} values (got {u.shape[0]})")
    if "D_in" in p:
        u = p["D_in"] @ u
    drive = p["W_in"] @ u + p.get("b", torch.zeros(()))
    phi = _phi(spec.nonlinearity)
    alpha = spec.alpha

    def velocity(x: torch.Tensor) -> torch.Tensor:  # (F(x) − x)/α = −x + W φ(x) + drive
        return -x + phi(x) @ W.T + drive

    return velocity, alpha


def find_fixed_points(
    spec: ModelSpec,
    params: dict[str, np.ndarray],
    u_star: np.ndarray,
    init_states: np.ndarray,
    n_init: int = 64,
    jitter: float = 0.01,
    seed: int = 0,
    max_iter: int = 500,
    newton_steps: int = 20,
    fixed_tol: float = 1e-12,
    slow_tol: float = 1e-4,
    unique_tol: float = 1e-3,
) -> FixedPoints:
    """Minimise q from ``n_init`` states drawn from ``init_states`` ([..., N]) plus
    Gaussian jitter of std ``jitter`` × the states' std; keep minima with q < ``slow_tol``,
    merge those closer than ``unique_tol`` × (1 + ‖x‖), and classify them.

    ``fixed_tol``, ``slow_tol`` are on q = ½‖F(x) − x‖² (the discrete map). After L-BFGS,
    up to ``newton_steps`` Newton steps x ← x − J_v⁻¹ v(x) (v = (F(x) − x)/α) polish each
    candidate, a step kept only where it lowers ‖v‖: true fixed points converge
    quadratically, slow points (minima with q > 0) stay where L-BFGS left them.
    """
    velocity, alpha = _map(spec, params, u_star)
    rng = np.random.default_rng(seed)
    pool = np.asarray(init_states, dtype=np.float64).reshape(-1, spec.n_rec)
    idx = rng.choice(len(pool), size=n_init, replace=len(pool) < n_init)
    x0 = pool[idx] + jitter * (pool.std() + 1e-12) * rng.standard_normal((n_init, spec.n_rec))
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [x],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-14,
        tolerance_change=1e-18,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.5 * (velocity(x) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    xs = _newton_polish(velocity, x.detach().clone(), newton_steps)
    with torch.no_grad():
        v = velocity(torch.as_tensor(xs))
        q = (0.5 * alpha**2 * (v**2).sum(1)).numpy()
    keep = np.where(np.isfinite(q) & (q < slow_tol))[0]
    keep = keep[np.argsort(q[keep])]
    uniq: list[int] = []
    counts: list[int] = []
    for i in keep:
        for j, u in enumerate(uniq):
            if np.linalg.norm(xs[i] - xs[u]) < unique_tol * (1 + np.linalg.norm(xs[u])):
                counts[j] += 1
                break
        else:
            uniq.append(int(i))
            counts.append(1)
    xu = xs[uniq] if uniq else np.zeros((0, spec.n_rec))
    eig = np.array([jacobian_eigvals(spec, params, u_star, xi) for xi in xu]).reshape(
        len(xu), spec.n_rec
    )
    qu = q[uniq] if uniq else np.zeros(0)
    return FixedPoints(
        x=xu,
        q=qu,
        speed=np.sqrt(2 * qu) / alpha,
        eigvals=eig,
        is_fixed=qu < fixed_tol,
        stable=np.abs(eig).max(1) < 1 if len(xu) else np.zeros(0, bool),
        counts=np.array(counts, dtype=int),
        n_init=n_init,
    )


def _newton_polish(velocity, x: torch.Tensor, steps: int) -> np.ndarray:
    """Damped-free Newton on v(x) = 0 per point, accepting only steps that lower ‖v‖."""
    from torch.func import jacrev, vmap

    jac = vmap(jacrev(lambda z: velocity(z[None])[0]))
    with torch.no_grad():
        for _ in range(steps):
            v = velocity(x)
            J = jac(x)
            try:
                dx = torch.linalg.solve(J, v.unsqueeze(-1)).squeeze(-1)
            except RuntimeError:  # a singular Jacobian somewhere: stop polishing
                break
            xn = x - dx
            better = (velocity(xn) ** 2).sum(1) < (v**2).sum(1)
            if not bool(better.any()):
                break
            x = torch.where(better[:, None], xn, x)
    return x.numpy()


def jacobian(
    spec: ModelSpec, params: dict[str, np.ndarray], u_star: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """J = ∂F/∂x = (1 − α) I + α W_rec D_rec diag(φ'(x)) at one state x [N] (autograd)."""
    velocity, alpha = _map(spec, params, u_star)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    Jv = torch.autograd.functional.jacobian(lambda z: velocity(z[None])[0], xt)
    return (np.eye(spec.n_rec) + alpha * Jv.numpy()).astype(np.float64)


def jacobian_eigvals(
    spec: ModelSpec, params: dict[str, np.ndarray], u_star: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """Eigenvalues of J(x), sorted by decreasing modulus."""
    ev = np.linalg.eigvals(jacobian(spec, params, u_star, x))
    return ev[np.argsort(-np.abs(ev))]
