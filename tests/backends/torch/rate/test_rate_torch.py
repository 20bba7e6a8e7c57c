"""The torch rate step against hand-written references and Ornstein–Uhlenbeck theory, and
its in-place form (the fused engines' step) against the step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import solve_discrete_lyapunov

import bioplaus as bp
from bioplaus.backends.torch import rate


def _spec(**kw):
    base = dict(n_in=3, n_rec=12, n_out=2, tau=0.02, dt=0.02, sigma=0.1, nonlinearity="tanh")
    base.update(kw)
    return bp.RateSpec(**base)


def test_alpha_one_equals_discrete_rnn_of_the_seed_paper():
    """a_t = W_in D_in u_t + W_rec x̂_{t−1} + ε_t ,  x̂_t = D tanh(a_t)  (x̂_{−1} = 0)."""
    spec = _spec(decorrelate_input=True, decorrelate_rec=True)
    rng = np.random.default_rng(1)
    p = bp.init_params(spec, seed=3)
    p["D_in"] = np.eye(3) + 0.1 * rng.standard_normal((3, 3))
    p["D_rec"] = np.eye(12) + 0.05 * rng.standard_normal((12, 12))
    T, B = 25, 4
    u = rng.standard_normal((T, B, 3))
    xi = rng.standard_normal((T, B, 12))
    x = bp.simulate(spec, u, params=p, noise=xi, dtype="float64")
    xhat = np.zeros((B, 12))
    for t in range(T):
        a = u[t] @ (p["W_in"] @ p["D_in"]).T + xhat @ p["W_rec"].T + spec.sigma * xi[t]
        np.testing.assert_allclose(x[t], a, rtol=1e-12, atol=1e-12)
        xhat = np.tanh(a) @ p["D_rec"].T


@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_euler_maruyama_step_with_biases(alpha):
    spec = _spec(dt=0.02 * alpha, nonlinearity="softplus", bias=True)
    rng = np.random.default_rng(2)
    p = bp.init_params(spec, seed=0)
    p["b"] = rng.standard_normal(12)
    T, B = 10, 3
    u, xi = rng.standard_normal((T, B, 3)), rng.standard_normal((T, B, 12))
    x0 = rng.standard_normal((B, 12))
    x = bp.simulate(spec, u, params=p, noise=xi, x0=x0, dtype="float64")
    prev = x0
    for t in range(T):
        drive = p["W_rec"] @ np.log1p(np.exp(prev.T)) + p["W_in"] @ u[t].T + p["b"][:, None]
        nxt = (1 - alpha) * prev + alpha * drive.T + spec.sigma * np.sqrt(alpha) * xi[t]
        np.testing.assert_allclose(x[t], nxt, rtol=1e-12, atol=1e-12)
        prev = nxt


@pytest.mark.parametrize("alpha", [1.0, 0.2, 0.02])
def test_stationary_covariance_matches_ornstein_uhlenbeck(alpha):
    """Linear network: x_t = A x_{t−1} + σ√α ξ_t with A = (1−α)I + αW, so the stationary
    covariance solves Σ = A Σ Aᵀ + σ²α I (continuous-time OU in the limit α → 0)."""
    N = 6
    spec = bp.RateSpec(
        n_in=1, n_rec=N, n_out=1, tau=1.0, dt=alpha, sigma=0.5, nonlinearity="linear"
    )
    rng = np.random.default_rng(4)
    W = rng.standard_normal((N, N))
    W *= 0.6 / np.max(np.abs(np.linalg.eigvals(W)))
    p = bp.init_params(spec, seed=0)
    p["W_rec"] = W
    A = (1 - alpha) * np.eye(N) + alpha * W
    Sigma = solve_discrete_lyapunov(A, spec.sigma**2 * alpha * np.eye(N))
    burn = int(10 / alpha)
    T, B = burn + 400, 2000
    x = bp.simulate(spec, np.zeros((T, B, 1)), params=p, seed=7, dtype="float64")[burn:]
    emp = np.einsum("tbi,tbj->ij", x, x) / (x.shape[0] * B)
    # samples are correlated over ~1/(α(1−ρ)) steps; 2000 independent chains per step keep
    # the relative sampling error of each entry at a few percent
    scale = np.sqrt(np.outer(np.diag(Sigma), np.diag(Sigma)))
    np.testing.assert_allclose(emp / scale, Sigma / scale, atol=0.06)
    np.testing.assert_allclose(np.diag(emp), np.diag(Sigma), rtol=0.06)


def test_simulate_is_deterministic_given_seed_and_differs_across_seeds():
    spec = _spec()
    u = np.ones((20, 2, 3))
    a = bp.simulate(spec, u, seed=5)
    b = bp.simulate(spec, u, seed=5)
    c = bp.simulate(spec, u, seed=6)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_simulate_rejects_bad_shapes():
    spec = _spec()
    with pytest.raises(bp.SpecError, match="inputs: expected shape"):
        bp.simulate(spec, np.zeros((5, 2, 4)))
    with pytest.raises(bp.SpecError, match="noise: expected shape"):
        bp.simulate(spec, np.zeros((5, 2, 3)), noise=np.zeros((5, 2, 11)))
    with pytest.raises(bp.SpecError, match="backend"):
        bp.simulate(spec, np.zeros((5, 2, 3)), backend="nest")


@pytest.mark.parametrize("carry", ["x", "kx", "kx-fold"])
@pytest.mark.parametrize("noise_in_drive", [True, False])
@pytest.mark.parametrize(
    ("alpha", "phi", "decor", "bias"),
    [(0.25, "tanh", True, True), (1.0, "tanh", False, False), (0.1, "softplus", True, False),
     (0.5, "relu", False, True), (0.3, "sigmoid", True, True)],
)  # fmt: skip
def test_in_place_step_is_the_rate_step(carry, noise_in_drive, alpha, phi, decor, bias):
    """fused_weights / fused_drive_ / fused_step_ (the no-autograd engines' step: α folded
    into the weights, in place) give the states of rate_step to float64 rounding, carrying
    x (rollout_fast) or y = k x (perturb_fast; D_rec folded into W_rec or applied per
    step), with the noise in the chunk's drive GEMM or added step by step."""
    F64 = torch.float64
    spec = _spec(
        dt=0.02 * alpha, nonlinearity=phi, decorrelate_rec=decor, decorrelate_input=decor,
        bias=bias,
    )  # fmt: skip
    g = torch.Generator().manual_seed(4)
    p = rate.to_torch(bp.init_params(spec, seed=1), dtype=F64)
    if decor:
        p = p._replace(
            D_rec=p.D_rec + 0.05 * torch.randn(12, 12, generator=g, dtype=F64),
            D_in=p.D_in + 0.1 * torch.randn(3, 3, generator=g, dtype=F64),
        )
    if bias:
        p = p._replace(b=0.1 * torch.randn(12, generator=g, dtype=F64))
    c = rate.consts_of(spec)
    T, B = 6, 4
    u = torch.randn(T, B, 3, generator=g, dtype=F64)
    xi = torch.randn(T, B, 12, generator=g, dtype=F64)
    x_init = torch.randn(B, 12, generator=g, dtype=F64)
    s = rate.init_state(p, c, B, x_init)
    drive = rate.input_drive(p, u)
    ref = []
    for t in range(T):
        s = rate.rate_step(p, c, s, drive[t], xi[t])
        ref.append(s)

    with torch.no_grad():
        kw = {} if carry == "x" else dict(carry="kx", fold_rec=carry == "kx-fold")
        fw = rate.fused_weights(p, c, B, **kw)
        k, a_, c_, _ = fw.phi if carry != "x" else (1.0, 1.0, 0.0, None)
        v = xi.clone() if noise_in_drive else torch.empty(T, B, 12, dtype=F64)
        rate.fused_drive_(v, rate.decorrelate(p.D_in, u), fw, noise=noise_in_drive)
        z = torch.empty(T, B, 12, dtype=F64)
        v_prev = x_init * k
        z_prev = rate.init_state(p, c, B, x_init).r_hat  # carrying x: r̂ = D φ(x)
        if carry != "x":  # carrying y = k x: s = g(y)
            z_prev = rate.g_into(fw.phi.g, v_prev, torch.empty(B, 12, dtype=F64))
        for t in range(T):
            xi_t = None if noise_in_drive else xi[t]
            rate.fused_step_(v[t], v_prev, z_prev, z[t], fw, xi_t)
            v_prev, z_prev = v[t], z[t]
    x = v / k
    r_hat = z if carry == "x" else rate.decorrelate(p.D_rec, a_ * z + c_)
    for t in range(T):
        torch.testing.assert_close(x[t], ref[t].x, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r_hat[t], ref[t].r_hat, rtol=1e-12, atol=1e-12)


def test_in_place_tanh_is_tanh():
    """phi_into's CPU tanh, 2 σ(2x) − 1, is tanh to float64 rounding; FAST_TANH off (or
    another φ) evaluates φ itself."""
    x = torch.linspace(-8, 8, 1001, dtype=torch.float64)
    out = torch.empty_like(x)
    cpu = torch.device("cpu")
    assert rate.phi_affine(torch.tanh, cpu) == (2.0, 2.0, -1.0, torch.sigmoid)
    torch.testing.assert_close(
        rate.phi_into(rate.phi_affine(torch.tanh, cpu), x, out), torch.tanh(x), rtol=0,
        atol=1e-15,
    )  # fmt: skip
    rate.FAST_TANH = False
    try:
        f = rate.phi_affine(torch.tanh, cpu)
        assert f == (1.0, 1.0, 0.0, torch.tanh)
        assert torch.equal(rate.phi_into(f, x, out), torch.tanh(x))
    finally:
        rate.FAST_TANH = True
