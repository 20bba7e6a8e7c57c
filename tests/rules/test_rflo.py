"""RFLO (rules/rflo.py): Murray's trace, its relation to rate e-prop, registry and options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bioplaus as bp
from bioplaus.backends.torch.rate import consts_of, to_torch
from bioplaus.backends.torch.rate.online import online_pass
from bioplaus.rules import RuleSpec, make_online, rule_entry
from bioplaus.rules.rflo import RFLO
from bioplaus.spec import SpecError

D = torch.float64


def _setup(tau=0.05, dt=0.01, nonlinearity="tanh", N=7, seed=0, T=15, B=3, **kw):
    spec = bp.RateSpec(n_in=2, n_rec=N, n_out=2, tau=tau, dt=dt, sigma=0.0,
                       nonlinearity=nonlinearity, bias=True, **kw)  # fmt: skip
    p = bp.init_params(spec, seed=seed)
    rng = np.random.default_rng(seed)
    u, y = rng.standard_normal((T, B, 2)), rng.standard_normal((T, B, 2))
    m = (rng.random((T, B)) < 0.7).astype(float)
    return spec, p, u, y, m


@pytest.mark.parametrize(
    ("tau", "nonlinearity"), [(0.01, "tanh"), (0.05, "linear"), (0.01, "softplus")]
)
def test_symmetric_rflo_equals_symmetric_eprop_where_the_traces_agree(tau, nonlinearity):
    """α = 1 (τ = dt: no leak) or φ linear (φ' constant): P_t = φ'(x_t) ε_t exactly."""
    spec, p, u, y, m = _setup(tau=tau, nonlinearity=nonlinearity)
    e = bp.estimate("e-prop", spec, p, u, y, mask=m, dtype="float64")
    r = bp.estimate("rflo", spec, p, u, y, mask=m, dtype="float64", feedback="symmetric")
    for k in e:
        assert np.abs(e[k]).max() > 1e-4, k
        np.testing.assert_allclose(r[k], e[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_rflo_differs_from_eprop_by_the_documented_term():
    """With a leak (α < 1) and tanh, and W_rec = 0 (e-prop = BPTT exactly), RFLO − e-prop =
    Σ_t L_t Σ_s α(1−α)^{t−s} (φ'(x_s) − φ'(x_t)) z_s; the readouts agree exactly."""
    spec, p, u, y, m = _setup(tau=0.04, T=12)
    p["W_rec"] = np.zeros_like(p["W_rec"])
    e = bp.estimate("e-prop", spec, p, u, y, mask=m, dtype="float64")
    g = bp.estimate("bptt", spec, p, u, y, mask=m, dtype="float64")
    r = bp.estimate("rflo", spec, p, u, y, mask=m, dtype="float64", feedback="symmetric")
    np.testing.assert_allclose(r["W_out"], g["W_out"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(e["W_in"], g["W_in"], rtol=1e-9, atol=1e-14)
    assert not np.allclose(r["W_in"], e["W_in"], rtol=1e-3)
    # the difference, written out
    a = spec.dt / spec.tau
    T, B = u.shape[:2]
    x = np.zeros((B, 7))
    xs, zs, Ls = [], [], []
    W = np.concatenate([p["W_in"], p["W_rec"], p["b"][:, None]], 1)
    for t in range(T):
        z = np.concatenate([u[t], np.tanh(x), np.ones((B, 1))], 1)
        x = (1 - a) * x + a * z @ W.T
        g_t = (np.tanh(x) @ p["W_out"].T - y[t]) * m[t][:, None] / m.sum()
        xs.append(x), zs.append(z), Ls.append(g_t @ p["W_out"])
    dpsi = lambda x: 1 - np.tanh(x) ** 2  # noqa: E731
    diff = np.zeros((7, 10))
    for t in range(T):
        for s in range(t + 1):
            w = a * (1 - a) ** (t - s) * (dpsi(xs[s]) - dpsi(xs[t]))
            diff += np.einsum("bj,bi->ji", Ls[t] * w, zs[s])
    np.testing.assert_allclose(r["W_in"] - e["W_in"], diff[:, :2], rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(r["W_rec"] - e["W_rec"], diff[:, 2:9], rtol=1e-8, atol=1e-14)


def test_rflo_pass_matches_murrays_equations():
    """P = (1−α) P + α φ'(x) zᵀ, ΔW/η = −Σ (B g) P, readout by the delta rule."""
    spec, pn, u, y, m = _setup(tau=0.03, N=5, T=8)
    p, c = to_torch(pn, dtype=D), consts_of(spec)
    tt = lambda v: torch.as_tensor(v, dtype=D)  # noqa: E731
    Bfb = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=D)
    out = online_pass(p, c, RFLO("random"), Bfb, tt(u), tt(y), tt(m), "mse",
                      torch.Generator().manual_seed(0))  # fmt: skip
    a = c.alpha
    W = np.concatenate([pn["W_in"], pn["W_rec"], pn["b"][:, None]], 1)
    x = np.zeros((3, 5))
    P = np.zeros((3, 5, 8))
    G_h, G_o = np.zeros((5, 8)), np.zeros((2, 5))
    for t in range(8):
        z = np.concatenate([u[t], np.tanh(x), np.ones((3, 1))], 1)
        x = (1 - a) * x + a * z @ W.T
        r = np.tanh(x)
        g = (r @ pn["W_out"].T - y[t]) * m[t][:, None] / m.sum()
        P = (1 - a) * P + a * (1 - r**2)[:, :, None] * z[:, None, :]
        G_h += np.einsum("bi,bij->ij", g @ Bfb.numpy().T, P)
        G_o += g.T @ r
    gr = out.result.grads
    np.testing.assert_allclose(gr["W_in"].numpy(), G_h[:, :2], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gr["W_rec"].numpy(), G_h[:, 2:7], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gr["b"].numpy(), G_h[:, 7], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gr["W_out"].numpy(), G_o, rtol=1e-10, atol=1e-15)


def test_random_rflo_is_aligned_with_bptt():
    """Measured cosines to BPTT (N = 8, T = 30, rec_gain 1, seed 1): W_in 0.55, W_rec 0.50."""
    spec, p, u, y, _ = _setup(N=8, seed=1, T=30, B=4, rec_gain=1.0)
    g = bp.estimate("bptt", spec, p, u, y, dtype="float64")
    r = bp.estimate("rflo", spec, p, u, y, dtype="float64")
    np.testing.assert_allclose(r["W_out"], g["W_out"], rtol=1e-10, atol=1e-14)
    for k in ("W_in", "W_rec"):
        c = float(r[k].ravel() @ g[k].ravel() / np.linalg.norm(r[k]) / np.linalg.norm(g[k]))
        assert c > 0.2, (k, c)


def test_registry_and_options():
    entry = rule_entry("rflo")
    assert entry.mechanism == "online" and entry.networks == ("rate",)
    assert RuleSpec(name="rflo").feedback == "random"
    assert isinstance(make_online(RuleSpec(name="rflo"), "rate", 0.01), RFLO)
    spec, p, u, y, _ = _setup()
    for bad, key in (({"feedback": "mirror"}, "rule.feedback"), ({"c_reg": 1.0}, "c_reg")):
        with pytest.raises((SpecError, TypeError), match=key) as info:
            bp.estimate("rflo", spec, p, u, y, **bad)
        assert "\n" not in str(info.value)
