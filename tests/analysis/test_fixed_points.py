"""Fixed points: the analytic fixed point of a linear network, and stability."""

from __future__ import annotations

import numpy as np
import pytest

import bioplaus as bp
from bioplaus.analysis.fixed_points import find_fixed_points, jacobian


def _linear_net(alpha_dt: float, decorrelate: bool):
    spec = bp.RateSpec(
        n_in=2,
        n_rec=12,
        n_out=1,
        tau=0.02,
        dt=alpha_dt,
        sigma=0.0,
        nonlinearity="linear",
        bias=True,
        decorrelate_rec=decorrelate,
    )
    p = bp.init_params(spec, seed=3)
    rng = np.random.default_rng(7)
    p["W_rec"] = 0.6 * p["W_rec"]
    p["b"] = 0.1 * rng.standard_normal(12)
    if decorrelate:
        p["D_rec"] = np.eye(12) + 0.05 * rng.standard_normal((12, 12))
    return spec, p


@pytest.mark.parametrize("dt,decorrelate", [(0.02, False), (0.005, True)])
def test_linear_network_fixed_point_is_analytic(dt, decorrelate):
    spec, p = _linear_net(dt, decorrelate)
    u = np.array([0.4, -0.8])
    W = p["W_rec"] @ p.get("D_rec", np.eye(12))
    x_star = np.linalg.solve(np.eye(12) - W, p["W_in"] @ u + p["b"])
    init = np.random.default_rng(0).standard_normal((40, 12))
    fp = find_fixed_points(spec, p, u, init, n_init=8, seed=1)
    assert len(fp.x) == 1 and fp.counts[0] == 8  # every start converges to the one point
    np.testing.assert_allclose(fp.x[0], x_star, atol=1e-8)
    assert fp.is_fixed[0] and fp.q[0] < 1e-20
    # J = (1 − α) I + α W; stable iff its spectral radius < 1
    alpha = spec.alpha
    J = (1 - alpha) * np.eye(12) + alpha * W
    np.testing.assert_allclose(jacobian(spec, p, u, fp.x[0]), J, atol=1e-12)
    ev = np.linalg.eigvals(J)
    np.testing.assert_allclose(np.abs(fp.eigvals[0]), np.sort(np.abs(ev))[::-1], atol=1e-10)
    assert fp.stable[0] == (np.abs(ev).max() < 1)


def test_tanh_network_origin_and_bistability():
    """A 1-unit tanh net x = w tanh(x): for w = 2 there are fixed points at 0 (unstable) and
    ±x* with x* = 2 tanh(x*) (stable)."""
    spec = bp.RateSpec(n_in=1, n_rec=1, n_out=1, tau=1.0, dt=1.0, sigma=0.0)
    p = {"W_in": np.zeros((1, 1)), "W_rec": np.array([[2.0]]), "W_out": np.ones((1, 1))}
    init = np.linspace(-3, 3, 61)[:, None]
    fp = find_fixed_points(spec, p, np.zeros(1), init, n_init=61, jitter=0.0, seed=0)
    xs = np.sort(fp.x[:, 0])
    assert len(xs) == 3
    root = 1.9150080481545  # solves x = 2 tanh(x)
    np.testing.assert_allclose(xs, [-root, 0.0, root], atol=1e-8)
    stab = dict(zip(np.round(fp.x[:, 0], 3), fp.stable, strict=True))
    assert not stab[0.0] and stab[round(root, 3)] and stab[round(-root, 3)]
