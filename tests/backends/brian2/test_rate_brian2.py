"""The brian2 rate back-end against the torch reference (DESIGN §1) and OU theory.

Exact agreement (tests a, b, d). brian2 integrates ``dx/dt = (−x + I_rec + I_in + b)/τ + …``
with ``method='euler'`` at dt; its step is the torch update
x_t = (1−α)x_{t−1} + α(W_rec r̂_{t−1} + W_in û_t + b) + σ√α ξ_t term for term, so the two
differ only by floating-point association (sympy's arrangement of the Euler expression,
W_rec·D_rec formed once, BLAS summation order): a few ulp, ~1e-16·|x|, per step. With the
weights used here (‖W_rec D_rec‖ ≈ 1, T = 40 steps) such errors are not amplified beyond
~1e-14 (measured: ≤ 3e-15). RTOL = ATOL = 1e-9 leaves four orders of margin for other BLAS
builds yet sits seven orders below any modelling error: a one-step shift of the input or of
the recurrence, a wrong α or a wrong noise scale all change x by ≳ 1e-2 here.
"""

from __future__ import annotations

import numpy as np
import pytest

import bioplaus as bp

brian2 = pytest.importorskip("brian2")

from bioplaus.backends.brian2.context import brian2_scope  # noqa: E402
from bioplaus.backends.brian2.equations import (  # noqa: E402
    phi_expression,
    rate_equations,
    recurrent_synapses_model,
)
from bioplaus.backends.brian2.rate import simulate_rate  # noqa: E402

RTOL = ATOL = 1e-9  # see the module docstring
Z = 5.0  # sampling tolerances are Z standard errors (two-sided false alarm ≈ 6e-7 per check)


def _spec(alpha: float, nonlinearity: str = "tanh", sigma: float = 0.0, **kw) -> bp.RateSpec:
    base = dict(
        n_in=3,
        n_rec=16,
        n_out=2,
        tau=0.02,
        dt=0.02 * alpha,
        sigma=sigma,
        nonlinearity=nonlinearity,
        bias=True,
        decorrelate_input=True,
        decorrelate_rec=True,
    )
    base.update(kw)
    return bp.RateSpec(**base)


def _params(spec: bp.RateSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """init_params with non-zero biases and non-identity decorrelators."""
    rng = np.random.default_rng(seed)
    p = bp.init_params(spec, seed=seed)
    p["b"] = 0.3 * rng.standard_normal(spec.n_rec)
    p["D_in"] = np.eye(spec.n_in) + 0.2 * rng.standard_normal((spec.n_in, spec.n_in))
    p["D_rec"] = np.eye(spec.n_rec) + 0.1 * rng.standard_normal((spec.n_rec, spec.n_rec))
    return p


def _pair(spec, u, p, recurrence, **kw) -> tuple[np.ndarray, np.ndarray]:
    x_torch = bp.simulate(spec, u, params=p, backend="torch", dtype="float64", **kw)
    x_brian = bp.simulate(spec, u, params=p, backend="brian2", recurrence=recurrence, **kw)
    return x_brian, x_torch


# (a) deterministic trajectories ------------------------------------------------------


@pytest.mark.parametrize("recurrence", ["matmul", "synapses"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("alpha", [1.0, 0.1])
def test_sigma_zero_matches_torch(alpha, nonlinearity, recurrence):
    spec = _spec(alpha, nonlinearity)
    p = _params(spec, seed=1)
    u = np.random.default_rng(2).standard_normal((40, 3, 3))
    x_b, x_t = _pair(spec, u, p, recurrence)
    assert x_b.shape == (40, 3, 16) and x_b.dtype == np.float64
    assert np.abs(x_t).max() > 0.5  # a non-trivial trajectory
    np.testing.assert_allclose(x_b, x_t, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("recurrence", ["matmul", "synapses"])
@pytest.mark.parametrize("nonlinearity", ["softplus", "sigmoid"])
def test_initial_state_feeds_first_recurrent_input(nonlinearity, recurrence):
    """φ(0) ≠ 0 for softplus/sigmoid and x0 ≠ 0: step 0 must see W_rec D_rec φ(x0)."""
    spec = _spec(0.5, nonlinearity)
    p = _params(spec, seed=3)
    rng = np.random.default_rng(4)
    u, x0 = rng.standard_normal((20, 2, 3)), rng.standard_normal((2, 16))
    x_b, x_t = _pair(spec, u, p, recurrence, x0=x0)
    np.testing.assert_allclose(x_b, x_t, rtol=RTOL, atol=ATOL)
    x_b0, x_t0 = _pair(spec, u, p, recurrence)  # x_{−1} = 0, still φ(0) ≠ 0
    np.testing.assert_allclose(x_b0, x_t0, rtol=RTOL, atol=ATOL)


# (b) one shared external noise realisation -------------------------------------------


@pytest.mark.parametrize("recurrence", ["matmul", "synapses"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("alpha", [1.0, 0.1])
def test_shared_noise_matches_torch(alpha, nonlinearity, recurrence):
    spec = _spec(alpha, nonlinearity, sigma=0.3)
    p = _params(spec, seed=5)
    rng = np.random.default_rng(6)
    u, xi = rng.standard_normal((40, 3, 3)), rng.standard_normal((40, 3, 16))
    x_b, x_t = _pair(spec, u, p, recurrence, noise=xi)
    np.testing.assert_allclose(x_b, x_t, rtol=RTOL, atol=ATOL)
    # the noise really enters (σ√α ξ_t ≫ tolerance)
    x_clean = bp.simulate(spec.model_copy(update={"sigma": 0.0}), u, params=p, backend="brian2")
    assert np.abs(x_b - x_clean).max() > 1e-2


# (c) intrinsic noise: statistics -------------------------------------------------------


def _ar1_stats(x: np.ndarray) -> tuple[float, float, float]:
    """Pooled mean, second central moment and lag-1 autocorrelation of x [T, B, N].

    The autocorrelation averages the n−1 lagged products and the n squares separately
    (a ratio of sums would be biased by −ρ/n, ≈ 3 standard errors at the sizes used)."""
    m = x.mean()
    d = x - m
    return float(m), float((d**2).mean()), float((d[1:] * d[:-1]).mean() / (d**2).mean())


def test_intrinsic_noise_matches_ornstein_uhlenbeck_closed_form():
    """Zero weights: x_t = (1−α)x_{t−1} + σ√α ξ_t, an AR(1)/OU process with ρ = 1−α,
    Var = σ²α/(1−ρ²) = σ²/(2−α), lag-1 autocorrelation ρ, mean 0.

    K independent chains (B copies × N units) of n steps after burn-in give standard errors
    (AR(1) large-sample formulas): mean √(Var/(Kn)·(1+ρ)/(1−ρ)); second moment
    Var·√(2/(Kn)·(1+ρ²)/(1−ρ²)); lag-1 autocorrelation √((1−ρ²)/(Kn))."""
    alpha, sigma = 0.1, 0.5
    spec = bp.RateSpec(
        n_in=1, n_rec=16, n_out=1, tau=0.02, dt=0.02 * alpha, sigma=sigma, nonlinearity="tanh"
    )
    p = bp.init_params(spec, seed=0)
    p["W_rec"][:] = 0.0
    burn, n, B = 100, 400, 64  # (1−α)^100 ≈ 3e-5 of x_{−1} = 0 left: no bias at this size
    u = np.zeros((burn + n, B, 1))
    rho = 1 - alpha
    var = sigma**2 * alpha / (1 - rho**2)
    K = B * spec.n_rec
    se_mean = np.sqrt(var / (K * n) * (1 + rho) / (1 - rho))
    se_var = var * np.sqrt(2 / (K * n) * (1 + rho**2) / (1 - rho**2))
    se_rho = np.sqrt((1 - rho**2) / (K * n))
    for backend, kw in (("brian2", {}), ("torch", {"dtype": "float64"})):
        x = bp.simulate(spec, u, params=p, backend=backend, seed=11, **kw)[burn:]
        m, v, r = _ar1_stats(x)
        assert abs(m) < Z * se_mean, (backend, m, se_mean)
        assert abs(v - var) < Z * se_var, (backend, v, var, se_var)
        assert abs(r - rho) < Z * se_rho, (backend, r, rho, se_rho)


def test_intrinsic_noise_statistics_match_torch_on_a_weakly_coupled_network():
    """Small recurrent weights and biases (tanh, nearly linear): per-unit stationary mean,
    variance and lag-1 autocorrelation agree between brian2 (xi) and torch (own generator).

    The B copies are independent, so the spread of the per-copy estimates over copies gives
    each estimate's standard error directly, including the correlations over time and across
    units the coupling introduces; a difference must lie within Z·√(se_b² + se_t²)."""
    alpha, sigma, N, B = 0.1, 0.3, 16, 256
    spec = bp.RateSpec(n_in=1, n_rec=N, n_out=1, tau=0.02, dt=0.02 * alpha, sigma=sigma, bias=True)
    rng = np.random.default_rng(8)
    p = bp.init_params(spec, seed=0)
    W = rng.standard_normal((N, N))
    p["W_rec"] = 0.3 * W / np.max(np.abs(np.linalg.eigvals(W)))
    p["b"] = 0.3 * rng.standard_normal(N)
    burn, n = 100, 200  # both start from x_{−1} = 0: what is left of the transient is shared
    u = np.zeros((burn + n, B, 1))

    def per_copy(x: np.ndarray) -> np.ndarray:  # [3, B, N]: mean, variance, lag-1 corr.
        d = x - x.mean(axis=0)
        return np.stack(
            [x.mean(axis=0), (d**2).mean(axis=0), (d[1:] * d[:-1]).mean(0) / (d**2).mean(0)]
        )

    est = {}
    for backend, kw in (("brian2", {}), ("torch", {"dtype": "float64"})):
        s = per_copy(bp.simulate(spec, u, params=p, backend=backend, seed=9, **kw)[burn:])
        est[backend] = (s.mean(axis=1), s.std(axis=1, ddof=1) / np.sqrt(B))
    (mb, sb), (mt, st) = est["brian2"], est["torch"]
    assert np.all(np.abs(mb - mt) < Z * np.sqrt(sb**2 + st**2)), (mb - mt) / np.hypot(sb, st)
    # sanity: the statistics are not trivially equal (noise present, means differ per unit)
    assert np.all(mb[1] > 0.5 * sigma**2 / 2) and np.ptp(mb[0]) > 0.1


def test_intrinsic_noise_is_seeded_and_leaves_global_random_state_alone():
    spec = _spec(0.2, sigma=0.2)
    p = _params(spec)
    u = np.zeros((30, 2, 3))
    before = np.random.get_state()[1].copy()
    a = simulate_rate(spec, u, p, seed=3)
    b = simulate_rate(spec, u, p, seed=3)
    c = simulate_rate(spec, u, p, seed=4)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.array_equal(np.random.get_state()[1], before)


# (d) brian2 global state is contained ------------------------------------------------


def test_consecutive_runs_with_different_dt_and_state_restored():
    from brian2 import defaultclock, ms, prefs

    old_dt, old_target = defaultclock.dt, prefs["codegen.target"]
    try:
        defaultclock.dt = 0.37 * ms
        prefs["codegen.target"] = "cython"  # a sentinel; nothing is run with it here
        u = np.random.default_rng(10).standard_normal((30, 2, 3))
        for alpha in (0.1, 1.0, 0.25):  # dt = 2 ms, 20 ms, 5 ms in a row
            spec = _spec(alpha, sigma=0.2)
            p = _params(spec, seed=11)
            xi = np.random.default_rng(12).standard_normal((30, 2, 16))
            x_b, x_t = _pair(spec, u, p, "matmul", noise=xi)
            np.testing.assert_allclose(x_b, x_t, rtol=RTOL, atol=ATOL)
            assert float(defaultclock.dt) == pytest.approx(0.37e-3, rel=1e-12)
            assert prefs["codegen.target"] == "cython"
        with pytest.raises(RuntimeError, match="boom"), brian2_scope(0.01, seed=1):
            assert float(defaultclock.dt) == pytest.approx(0.01)
            raise RuntimeError("boom")
        assert float(defaultclock.dt) == pytest.approx(0.37e-3, rel=1e-12)
        assert prefs["codegen.target"] == "cython"
    finally:
        defaultclock.dt = old_dt
        prefs["codegen.target"] = old_target


def test_bad_options_are_rejected_before_brian2_runs():
    spec = _spec(1.0)
    p, u = _params(spec), np.zeros((5, 1, 3))
    with pytest.raises(ValueError, match="target"):
        simulate_rate(spec, u, p, target="genn")
    with pytest.raises(ValueError, match="recurrence"):
        simulate_rate(spec, u, p, recurrence="sparse")
    with pytest.raises(ValueError, match="recurrence"):
        simulate_rate(spec, u, p, target="cpp_standalone", recurrence="matmul")
    with pytest.raises(ValueError, match="x0"):
        simulate_rate(spec, u, p, x0=np.zeros((2, 16)))
    with pytest.raises(ValueError, match="noise"):
        simulate_rate(spec.model_copy(update={"sigma": 0.1}), u, p, noise=np.zeros((5, 1, 3)))


def test_generated_equations_use_fixed_names_only():
    """Only fixed names reach brian2: state names, namespace names and brian2 built-ins."""
    builtins = {"t", "i", "xi", "sqrt"}
    spec = _spec(0.5, "softplus", sigma=0.1)
    for kind, external in (("none", set()), ("intrinsic", set()), ("external", {"eta"})):
        eqs = brian2.Equations(rate_equations(spec, kind))
        assert set(eqs.names) == {"x", "I_rec", "b"}
        assert (
            eqs.identifiers - builtins
            == {"tau", "I_in"} | ({"sigma"} if kind != "none" else set()) | external
        )
    assert brian2.Equations(rate_equations(spec, "intrinsic")).stochastic_variables == {"xi"}
    assert "x_pre" in recurrent_synapses_model(spec)
    with pytest.raises(ValueError):
        phi_expression("tanh", "x); import os; (")
    with pytest.raises(ValueError):
        phi_expression("__import__", "x")


# slow: compiled targets -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cython", "cpp_standalone"])
def test_compiled_targets_match_torch(target):
    spec = _spec(0.1, "tanh", sigma=0.3)
    p = _params(spec, seed=13)
    rng = np.random.default_rng(14)
    u, xi = rng.standard_normal((40, 3, 3)), rng.standard_normal((40, 3, 16))
    x_t = bp.simulate(spec, u, params=p, noise=xi, dtype="float64")
    x_b = bp.simulate(spec, u, params=p, noise=xi, backend="brian2", target=target)
    np.testing.assert_allclose(x_b, x_t, rtol=RTOL, atol=ATOL)
    x1 = bp.simulate(spec, u, params=p, backend="brian2", target=target, seed=2)
    x2 = bp.simulate(spec, u, params=p, backend="brian2", target=target, seed=2)
    assert np.array_equal(x1, x2)
