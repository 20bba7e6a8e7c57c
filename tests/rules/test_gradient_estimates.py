"""Every rule's estimate against the exact gradient it targets (DESIGN §2).

Measured on this network (n_rec=16, T=20, B=8, float64; python /tmp-free numbers are
printed by `pytest -s`): with K=400 noise draws the time-local NP estimate has cosine 0.99
with TBPTT(1) and ANP 0.93 (α=1) / 0.98 (α=0.2); reward-to-go NP has 0.92 with full BPTT and
keeps rising with K. The thresholds below sit below those values by a margin that covers
the seed-to-seed spread, and well above what a wrong sign, scale or time index would give
(cosine ≈ 0 or negative).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import cosine, flat

import bioplaus as bp


def problem(alpha=1.0, bias=False, nonlinearity="tanh"):
    spec = bp.RateSpec(
        n_in=3,
        n_rec=16,
        n_out=2,
        tau=1.0,
        dt=alpha,
        sigma=1e-3,
        bias=bias,
        out_bias=bias,
        nonlinearity=nonlinearity,
    )
    p = bp.init_params(spec, seed=0)
    rng = np.random.default_rng(0)
    if bias:
        p["b"] = 0.1 * rng.standard_normal(16)
        p["b_out"] = 0.1 * rng.standard_normal(2)
    u = rng.standard_normal((20, 8, 3))
    y = rng.standard_normal((20, 8, 2))
    return spec, p, u, y


def loss_of(spec, p, u, y, mask=None):
    x = bp.simulate(spec, u, params=p, noise=np.zeros(u.shape[:2] + (spec.n_rec,)), dtype="float64")
    r = np.tanh(x) if spec.nonlinearity == "tanh" else np.maximum(x, 0)
    o = r @ p["W_out"].T + p.get("b_out", 0.0)
    ell = 0.5 * ((o - y) ** 2).sum(-1)
    return ell.mean() if mask is None else (ell * mask).sum() / mask.sum()


@pytest.mark.parametrize("alpha,bias", [(1.0, False), (0.3, True)])
def test_bptt_matches_finite_differences(alpha, bias):
    spec, p, u, y = problem(alpha, bias)
    mask = (np.arange(20)[:, None] % 3 == 0) * np.ones((1, 8))
    g = bp.estimate("bptt", spec, p, u, y, mask=mask, dtype="float64")
    rng = np.random.default_rng(1)
    h = 1e-6
    for key in g:
        for _ in range(4):
            idx = tuple(rng.integers(0, n) for n in p[key].shape)
            pp, pm = {k: v.copy() for k, v in p.items()}, {k: v.copy() for k, v in p.items()}
            pp[key][idx] += h
            pm[key][idx] -= h
            fd = (loss_of(spec, pp, u, y, mask) - loss_of(spec, pm, u, y, mask)) / (2 * h)
            assert g[key][idx] == pytest.approx(fd, rel=1e-5, abs=1e-9), (key, idx)


def test_tbptt_k_equal_T_is_bptt_and_k1_differs():
    spec, p, u, y = problem()
    g = bp.estimate("bptt", spec, p, u, y, dtype="float64")
    assert cosine(bp.estimate("tbptt", spec, p, u, y, k=20, dtype="float64"), g) == pytest.approx(
        1.0
    )
    assert cosine(bp.estimate("tbptt", spec, p, u, y, k=1, dtype="float64"), g) < 0.95


@pytest.mark.parametrize("alpha", [1.0, 0.2])
def test_time_local_np_estimates_the_one_step_gradient(alpha):
    spec, p, u, y = problem(alpha)
    g1 = bp.estimate("tbptt", spec, p, u, y, k=1, dtype="float64")
    e = bp.estimate("np", spec, p, u, y, seed=3, K=2000, dtype="float64")
    c = cosine(e, g1)
    print(f"NP local vs TBPTT(1), alpha={alpha}: cosine {c:.4f}")
    assert c > 0.98
    assert np.linalg.norm(flat(e)) / np.linalg.norm(flat(g1)) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("alpha,threshold", [(1.0, 0.88), (0.2, 0.95)])
def test_time_local_anp_aligns_with_one_step_gradient(alpha, threshold):
    spec, p, u, y = problem(alpha)
    g1 = bp.estimate("tbptt", spec, p, u, y, k=1, dtype="float64")
    e = bp.estimate("anp", spec, p, u, y, seed=3, K=400, dtype="float64")
    c = cosine(e, g1)
    print(f"ANP local vs TBPTT(1), alpha={alpha}: cosine {c:.4f}")
    assert c > threshold


def test_anp_and_np_align_with_full_bptt():
    """The issue's check: averaged over many draws, NP and ANP point along the BPTT gradient
    (measured 0.82 and 0.77 here; they target the one-step gradient, whose cosine with the
    full gradient is 0.84 on this network)."""
    spec, p, u, y = problem()
    g = bp.estimate("bptt", spec, p, u, y, dtype="float64")
    for rule in ("np", "anp"):
        c = cosine(bp.estimate(rule, spec, p, u, y, seed=5, K=400, dtype="float64"), g)
        print(f"{rule} vs BPTT: cosine {c:.3f}")
        assert c > 0.7


def test_reward_to_go_np_converges_to_full_bptt():
    spec, p, u, y = problem(0.5)
    g = bp.estimate("bptt", spec, p, u, y, dtype="float64")
    cs = [
        cosine(bp.estimate("rtg-np", spec, p, u, y, seed=11, K=K, dtype="float64"), g)
        for K in (10, 300, 3000)
    ]
    print("rtg-NP vs BPTT, K = 10, 300, 3000:", np.round(cs, 3))
    assert cs[0] < cs[1] < cs[2]
    assert cs[2] > 0.97


def test_estimates_are_unbiased_under_resampling_and_noisy_baseline():
    spec, p, u, y = problem()
    g1 = bp.estimate("tbptt", spec, p, u, y, k=1, dtype="float64")
    e = bp.estimate("np", spec, p, u, y, seed=2, K=2000, baseline="noisy", dtype="float64")
    assert cosine(e, g1) > 0.95
    assert np.linalg.norm(flat(e)) / np.linalg.norm(flat(g1)) == pytest.approx(1.0, abs=0.15)


def test_estimate_is_reproducible_and_seed_dependent():
    spec, p, u, y = problem()
    a = bp.estimate("anp", spec, p, u, y, seed=1)
    b = bp.estimate("anp", spec, p, u, y, seed=1)
    c = bp.estimate("anp", spec, p, u, y, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.allclose(flat(a), flat(c))


def test_estimate_rejects_bad_options():
    spec, p, u, y = problem()
    with pytest.raises(bp.SpecError, match="name"):
        bp.estimate("backprop", spec, p, u, y)
    with pytest.raises(bp.SpecError, match="K"):
        bp.estimate("anp", spec, p, u, y, K=0)
    with pytest.raises(bp.SpecError, match="'K' does not apply"):
        bp.estimate("bptt", spec, p, u, y, K=3)
    with pytest.raises(bp.SpecError, match="targets"):
        bp.estimate("anp", spec, p, u, y[:, :, :1])
