"""The three-factor rule's pure dynamics against their closed forms (rules/three_factor.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import bioplaus as bp
from bioplaus.rules import make_three_factor
from bioplaus.rules.three_factor import (
    Baseline,
    ThreeFactor,
    decay,
    eligibility_update,
    leaky_update,
    supralinear,
)

D = torch.float64


def test_activity_baseline_follows_the_ode_step_response():
    """τ_b dx̄/dt = x − x̄ with x held at 1 from 0: x̄(t) = 1 − exp(−t/τ_b) at the steps."""
    dt, tau = 0.01, 0.05
    lam = decay(dt, tau)
    xbar = torch.zeros(3, dtype=D)
    x = torch.tensor([1.0, -2.0, 0.5], dtype=D)
    for t in range(40):
        xbar = leaky_update(xbar, x, lam)
        want = x * (1 - math.exp(-(t + 1) * dt / tau))
        torch.testing.assert_close(xbar, want, rtol=1e-12, atol=1e-12)


def test_activity_baseline_relaxes_to_a_new_level():
    dt, tau = 0.002, 0.03
    lam = decay(dt, tau)
    xbar = torch.tensor([0.7], dtype=D)
    for t in range(100):
        xbar = leaky_update(xbar, torch.tensor([-0.3], dtype=D), lam)
        want = -0.3 + (0.7 + 0.3) * math.exp(-(t + 1) * dt / tau)
        assert float(xbar) == pytest.approx(want, rel=1e-12)


def test_eligibility_trace_rises_and_decays_as_the_ode():
    """τ_e de/dt = −e + h: h = post ⊗ pre on for n steps, then off: rise 1 − e^{−t/τ_e},
    then exponential decay e^{−(t − t_off)/τ_e}."""
    dt, tau = 0.01, 0.2
    lam = decay(dt, tau)
    post = torch.tensor([[1.0, -2.0]], dtype=D)
    pre = torch.tensor([[0.5, 3.0, -1.0]], dtype=D)
    h = post[0, :, None] * pre[0, None, :]
    e = torch.zeros(1, 2, 3, dtype=D)
    n_on = 30
    for t in range(n_on):
        eligibility_update(e, post, pre, lam)
        torch.testing.assert_close(e[0], h * (1 - math.exp(-(t + 1) * dt / tau)))
    peak = e[0].clone()
    for k in range(1, 50):
        eligibility_update(e, 0 * post, pre, lam)
        torch.testing.assert_close(e[0], peak * math.exp(-k * dt / tau))


def test_eligibility_without_tau_accumulates_the_trial():
    rng = torch.Generator().manual_seed(0)
    posts = torch.randn(20, 4, 3, generator=rng, dtype=D)
    pres = torch.randn(20, 4, 5, generator=rng, dtype=D)
    e = torch.zeros(4, 3, 5, dtype=D)
    for t in range(20):
        eligibility_update(e, posts[t], pres[t], None)
    torch.testing.assert_close(e, torch.einsum("tbn,tbm->bnm", posts, pres))


def test_supralinear_is_multiplicative_so_miconis_product_factorises():
    y = torch.linspace(-2, 2, 41, dtype=D)
    torch.testing.assert_close(supralinear(y, 3.0), y**3)
    torch.testing.assert_close(supralinear(y, None), y)
    a, b = torch.randn(7, dtype=D), torch.randn(5, dtype=D)
    for p in (3.0, 2.0, 1.5):
        prod = supralinear(a[:, None] * b[None, :], p)
        torch.testing.assert_close(prod, supralinear(a, p)[:, None] * supralinear(b, p)[None])


def _reference_trial(rule: ThreeFactor, xs, zs_h, os, zs_o):
    """Loop-by-loop numpy reference of x̄, ō, e for one network (float64)."""
    lb, le, p = rule.lam_b, rule.lam_e, rule.p
    S = (lambda v: v) if p is None else (lambda v: np.sign(v) * np.abs(v) ** p)
    xbar, obar = np.zeros(xs.shape[1]), np.zeros(os.shape[1])
    e_h = np.zeros((xs.shape[1], zs_h.shape[1]))
    e_o = np.zeros((os.shape[1], zs_o.shape[1]))
    for t in range(xs.shape[0]):
        h_h = S(np.outer(xs[t] - xbar, zs_h[t]))
        h_o = S(np.outer(os[t] - obar, zs_o[t]))
        if le is None:
            e_h, e_o = e_h + h_h, e_o + h_o
        else:
            e_h = le * e_h + (1 - le) * h_h
            e_o = le * e_o + (1 - le) * h_o
        xbar = lb * xbar + (1 - lb) * xs[t]
        obar = lb * obar + (1 - lb) * os[t]
    return xbar, obar, e_h, e_o


@pytest.mark.parametrize(("tau_e", "p"), [(None, 3.0), (0.05, None), (0.1, 2.0)])
def test_rule_step_matches_the_reference_loop(tau_e, p):
    rule = ThreeFactor(0.01, tau_e=tau_e, tau_b=0.03, supralinear=p)
    rng = np.random.default_rng(1)
    T, B, N, Mh, no, Mo = 12, 3, 4, 6, 2, 4
    xs, zh = rng.standard_normal((T, B, N)), rng.standard_normal((T, B, Mh))
    os_, zo = rng.standard_normal((T, B, no)), rng.standard_normal((T, B, Mo))
    like = torch.zeros(1, dtype=D)
    s = rule.init_trial(B, N, Mh, no, Mo, like)
    for t in range(T):
        s, _ = rule.step(s, *(torch.as_tensor(a[t]) for a in (xs, zh, os_, zo)), None, None, None)
    for b in range(B):
        xbar, obar, e_h, e_o = _reference_trial(rule, xs[:, b], zh[:, b], os_[:, b], zo[:, b])
        np.testing.assert_allclose(s.xbar[b].numpy(), xbar, rtol=1e-12)
        np.testing.assert_allclose(s.obar[b].numpy(), obar, rtol=1e-12)
        np.testing.assert_allclose(s.e_hid[b].numpy(), e_h, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(s.e_out[b].numpy(), e_o, rtol=1e-10, atol=1e-12)


def test_reward_baseline_is_a_running_mean_over_trials():
    """Constant reward R from R̄_0: R̄_n = R + (R̄_0 − R) λ_r^n, λ_r = exp(−1/τ_r)."""
    rule = ThreeFactor(0.01, tau_r=4.0)
    base = Baseline(torch.tensor([0.5], dtype=D), torch.tensor([True]))
    lam = math.exp(-1 / 4.0)
    for n in range(1, 20):
        base = rule.reward_baseline_update(base, torch.tensor([0]), torch.tensor([-1.0], dtype=D))
        assert float(base.rbar[0]) == pytest.approx(-1 + 1.5 * lam**n, rel=1e-12)


def test_a_batch_of_trials_updates_the_baseline_as_the_same_trials_one_by_one():
    rule = ThreeFactor(0.01, tau_r=3.0)
    R = torch.tensor([-0.2, -0.9, -0.4, -0.7, -0.1], dtype=D)
    types = torch.tensor([0, 1, 0, 1, 1])
    base0 = rule.init_baseline(2, torch.zeros(1, dtype=D))
    batch = rule.reward_baseline_update(base0, types, R)
    one = base0
    for i in range(5):
        one = rule.reward_baseline_update(one, types[i : i + 1], R[i : i + 1])
    torch.testing.assert_close(batch.rbar, one.rbar)
    # the first trial of a type sets R̄ to its reward
    lam = math.exp(-1 / 3.0)
    assert float(batch.rbar[0]) == pytest.approx(lam * -0.2 + (1 - lam) * -0.4)
    assert bool(batch.seen.all())


def test_trial_reward_update_is_modulator_times_eligibility():
    """ΔW/η = (1/B) Σ_b (R_b − R̄_{type_b}) e_b; a type's first trials are centred on its
    first reward; normalise multiplies M by c / mean_t ‖δa_t‖²."""
    rule = ThreeFactor(0.01, tau_e=None, tau_r=2.0)
    like = torch.zeros(1, dtype=D)
    B, N, Mh, no, Mo = 4, 3, 5, 2, 3
    rng = torch.Generator().manual_seed(3)
    s = rule.init_trial(B, N, Mh, no, Mo, like)
    s = s._replace(
        e_hid=torch.randn(B, N, Mh, generator=rng, dtype=D),
        e_out=torch.randn(B, no, Mo, generator=rng, dtype=D),
    )
    base = Baseline(torch.tensor([-0.5, 0.0], dtype=D), torch.tensor([True, False]))
    R = torch.tensor([-0.3, -0.6, -0.2, -0.9], dtype=D)
    types = torch.tensor([0, 1, 0, 1])
    d_h, d_o, new, M = rule.end_trial(s, base, R=R, types=types)
    M_want = torch.tensor([0.2, 0.0, 0.3, -0.3], dtype=D)  # type 1 unseen: R̄ := −0.6
    torch.testing.assert_close(M, M_want)
    torch.testing.assert_close(d_h, torch.einsum("b,bnm->nm", M_want, s.e_hid) / B)
    torch.testing.assert_close(d_o, torch.einsum("b,bnm->nm", M_want, s.e_out) / B)
    assert bool(new.seen.all())
    norm = ThreeFactor(0.01, normalise=True)
    s2 = s._replace(nu=torch.tensor([2.0, 4.0, 1.0, 8.0], dtype=D), n_steps=2)
    _, _, _, M2 = norm.end_trial(s2, base, R=R, types=types)
    torch.testing.assert_close(M2, M_want * (N + no) / torch.tensor([1.0, 2.0, 0.5, 4.0], dtype=D))


def _step_run(rule: ThreeFactor, seed: int = 4):
    """Drive ``rule`` (reward "step") over random signals; return (ΔW_hid/η, ΔW_out/η, the
    baseline after the trial, inputs)."""
    rng = np.random.default_rng(seed)
    T, B, N, Mh, no, Mo = 8, 2, 3, 4, 1, 3
    xs, zh = rng.standard_normal((T, B, N)), rng.standard_normal((T, B, Mh))
    os_, zo = rng.standard_normal((T, B, no)), rng.standard_normal((T, B, Mo))
    Rs = rng.standard_normal((T, B))
    mask = (rng.random((T, B)) < 0.7).astype(float)
    like = torch.zeros(1, dtype=D)
    s, base = rule.init_trial(B, N, Mh, no, Mo, like), rule.init_baseline(B, like)
    for t in range(T):
        s, base = rule.step(s, *(torch.as_tensor(a[t]) for a in (xs, zh, os_, zo)), base,
                            torch.as_tensor(Rs[t]), torch.as_tensor(mask[t]))  # fmt: skip
    d_h, d_o, base, _ = rule.end_trial(s, base, norm=float(mask.sum()))
    return d_h, d_o, base, (xs, zh, os_, zo, Rs, mask)


def test_step_reward_accumulates_modulated_traces_and_a_per_network_baseline():
    dt, tau_r = 0.01, 0.05
    rule = ThreeFactor(dt, tau_e=0.1, tau_b=0.02, tau_r=tau_r, reward="step")
    d_h, _, base2, (xs, zh, os_, zo, Rs, mask) = _step_run(rule)
    (T, B, N), Mh = xs.shape, zh.shape[-1]
    # reference: loop with explicit baseline
    lam_r = math.exp(-dt / tau_r)
    acc = np.zeros((N, Mh))
    for b in range(B):
        rbar, seen = 0.0, False
        xbar, e = np.zeros(N), np.zeros((N, Mh))
        for t in range(T):
            e = rule.lam_e * e + (1 - rule.lam_e) * np.outer(xs[t, b] - xbar, zh[t, b])
            xbar = rule.lam_b * xbar + (1 - rule.lam_b) * xs[t, b]
            if mask[t, b]:
                M = Rs[t, b] - rbar if seen else 0.0
                acc += M * e
                rbar = lam_r * rbar + (1 - lam_r) * Rs[t, b] if seen else Rs[t, b]
                seen = True
        assert float(base2.rbar[b]) == pytest.approx(rbar, rel=1e-12)
    np.testing.assert_allclose(d_h.numpy(), acc / mask.sum(), rtol=1e-10, atol=1e-12)


def test_rule_spec_options():
    rs = bp.RuleSpec(name="three-factor", tau_e=0.2, reward="step", noise="kicks", supralinear=3)
    rule = make_three_factor(rs, dt=0.01)
    assert rule.lam_e == pytest.approx(math.exp(-0.05))
    assert rule.lam_r == pytest.approx(math.exp(-0.01 / 5.0))  # τ_r in seconds for "step"
    assert ThreeFactor(0.01, tau_r=5.0).lam_r == pytest.approx(math.exp(-1 / 5.0))  # trials
    with pytest.raises(ValueError, match="tau_e"):
        bp.RuleSpec(name="anp", tau_e=0.1)
    with pytest.raises(ValueError, match="'K'"):
        bp.RuleSpec(name="three-factor", K=2)
    with pytest.raises(ValueError, match="reward"):
        bp.RuleSpec(name="three-factor", reward="sometimes")
    from bioplaus.rules import make_rule

    with pytest.raises(ValueError, match="online"):
        make_rule(bp.RuleSpec(name="three-factor"))


def test_binary_modulator_gates_the_trace_when_the_reward_beats_its_mean():
    """modulator "binary" (Hoerzer et al. 2014): M_t = 1[R_t > R̄] on scored steps, the
    same baselines as "difference"; reference loop over the readout trace."""
    dt, tau_r = 0.01, 0.05
    rule = ThreeFactor(dt, tau_e=0.1, tau_b=0.02, tau_r=tau_r, reward="step", modulator="binary")
    _, d_o, _, (xs, zh, os_, zo, Rs, mask) = _step_run(rule)
    lam_r, (T, B, no), Mo = math.exp(-dt / tau_r), os_.shape, zo.shape[-1]
    acc, n_on = np.zeros((no, Mo)), 0
    for b in range(B):
        rbar, seen, obar, e = 0.0, False, np.zeros(no), np.zeros((no, Mo))
        for t in range(T):
            e = rule.lam_e * e + (1 - rule.lam_e) * np.outer(os_[t, b] - obar, zo[t, b])
            obar = rule.lam_b * obar + (1 - rule.lam_b) * os_[t, b]
            if mask[t, b]:
                M = float(Rs[t, b] > rbar) if seen else 0.0
                n_on += M > 0
                acc += M * e
                rbar = lam_r * rbar + (1 - lam_r) * Rs[t, b] if seen else Rs[t, b]
                seen = True
    assert 0 < n_on < mask.sum() - B  # both branches of the gate are exercised
    np.testing.assert_allclose(d_o.numpy(), acc / mask.sum(), rtol=1e-10, atol=1e-12)
    diff = ThreeFactor(dt, tau_e=0.1, tau_b=0.02, tau_r=tau_r, reward="step")
    assert not np.allclose(_step_run(diff)[1].numpy(), d_o.numpy())
    # reward "trial": M_b = 1[R_b > R̄_{type_b}]; a type's first trial gets M = 0 (R = R̄)
    trial = ThreeFactor(0.01, tau_e=None, tau_r=2.0, modulator="binary")
    s = trial.init_trial(3, 2, 2, 1, 2, torch.zeros(1, dtype=D))
    base = Baseline(torch.tensor([-0.5], dtype=D), torch.tensor([True]))
    *_, M = trial.end_trial(s, base, R=torch.tensor([-0.3, -0.6, -0.5], dtype=D))
    torch.testing.assert_close(M, torch.tensor([1.0, 0.0, 0.0], dtype=D))


def test_plastic_readout_keeps_the_hidden_weights_fixed():
    """plastic "readout": ΔW_hid = 0 and the readout's ΔW as with "all" (both rewards)."""
    kw = dict(tau_e=0.1, tau_b=0.02, tau_r=0.05, reward="step")
    d_h, d_o, _, _ = _step_run(ThreeFactor(0.01, **kw))
    r_h, r_o, _, _ = _step_run(ThreeFactor(0.01, plastic="readout", **kw))
    assert float(d_h.abs().max()) > 0 and float(r_h.abs().max()) == 0.0
    torch.testing.assert_close(r_o, d_o, rtol=0, atol=0)
    s = ThreeFactor(0.01).init_trial(2, 2, 3, 1, 2, torch.zeros(1, dtype=D))
    s = s._replace(e_hid=torch.ones(2, 2, 3, dtype=D), e_out=torch.ones(2, 1, 2, dtype=D))
    base = Baseline(torch.tensor([-0.5], dtype=D), torch.tensor([True]))
    R = torch.tensor([-0.3, -0.6], dtype=D)
    a = ThreeFactor(0.01).end_trial(s, base, R=R)
    r = ThreeFactor(0.01, plastic="readout").end_trial(s, base, R=R)
    assert float(a[0].abs().max()) > 0 and float(r[0].abs().max()) == 0.0
    torch.testing.assert_close(r[1], a[1], rtol=0, atol=0)


def test_modulator_and_plastic_options_validate():
    rule = make_three_factor(
        bp.RuleSpec(name="three-factor", modulator="binary", plastic="readout"), dt=0.01
    )
    assert (rule.modulator, rule.plastic) == ("binary", "readout")
    default = make_three_factor(bp.RuleSpec(name="three-factor"), dt=0.01)
    assert (default.modulator, default.plastic) == ("difference", "all")
    with pytest.raises(ValueError, match="modulator"):
        bp.RuleSpec(name="three-factor", modulator="sign")
    with pytest.raises(ValueError, match="plastic"):
        bp.RuleSpec(name="three-factor", plastic="hidden")
    with pytest.raises(ValueError, match="modulator"):
        ThreeFactor(0.01, modulator="sign")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plastic"):
        ThreeFactor(0.01, plastic="none")  # type: ignore[arg-type]
