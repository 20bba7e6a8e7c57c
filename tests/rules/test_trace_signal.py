"""The decaying eligibility-trace credit signal of NP/ANP (signal 'trace', trace_decay λ).

G = Σ_t δℓ_t Σ_{s≤t} λ^{t−s} e_s z_sᵀ, kept online as E ← λE + e zᵀ, G += δℓ_t E.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bioplaus as bp
from bioplaus.rules import NodePerturbation, RuleSpec, make_rule
from bioplaus.rules.base import Context, StepRecord

P, N, MH, NOUT, MO, T = 3, 5, 7, 2, 6, 9
CTX = Context(alpha=1.0, sigma=1e-2, var_factor=1.0)


def records(seed: int = 0) -> list[StepRecord]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return [
        StepRecord(t, r(P, MH), r(P, MO), r(P, N), r(P, NOUT), r(P, N), r(P, NOUT), r(P))
        for t in range(T)
    ]


def run(rule: NodePerturbation, recs: list[StepRecord]):
    like = recs[0].dx
    state = rule.init(P, MH, N, MO, NOUT, like)
    for rec in recs:
        state = rule.accumulate(state, rec, CTX)
    dS = torch.stack([rec.dl for rec in recs]).sum(0)
    return rule.finalize(state, dS, norm=float(P * T))


@pytest.mark.parametrize("kind", ["np", "anp"])
def test_trace_with_decay_one_is_reward_to_go(kind):
    recs = records(1)
    a = run(NodePerturbation(kind=kind, signal="trace", trace_decay=1.0), recs)
    b = run(NodePerturbation(kind=kind, signal="rtg"), recs)
    torch.testing.assert_close(a.hid, b.hid)
    torch.testing.assert_close(a.out, b.out)


@pytest.mark.parametrize("lam", [0.3, 0.8])
def test_trace_matches_the_discounted_sum(lam):
    recs = records(2)
    rule = NodePerturbation(kind="anp", signal="trace", trace_decay=lam)
    got = run(rule, recs)
    e = [rule.signals(rec, CTX) for rec in recs]
    G = torch.zeros(N, MH, dtype=torch.float64)
    for t in range(T):
        for s in range(t + 1):
            w = recs[t].dl * lam ** (t - s)  # [P]
            G += torch.einsum("p,pn,pm->nm", w, e[s][0], recs[s].z_hid)
    torch.testing.assert_close(got.hid, G / (P * T))
    # it sits between time-local credit and reward-to-go, and differs from both
    loc = run(NodePerturbation(kind="anp", signal="local"), recs)
    rtg = run(NodePerturbation(kind="anp", signal="rtg"), recs)
    assert not torch.allclose(got.hid, loc.hid) and not torch.allclose(got.hid, rtg.hid)


def test_small_decay_tends_to_local_credit():
    recs = records(3)
    tiny = run(NodePerturbation(kind="np", signal="trace", trace_decay=1e-9), recs)
    loc = run(NodePerturbation(kind="np", signal="local"), recs)
    torch.testing.assert_close(tiny.hid, loc.hid, rtol=1e-6, atol=1e-6)


def test_rule_spec_validates_and_builds_the_trace():
    rule = make_rule(RuleSpec(name="anp", signal="trace", trace_decay=0.5))
    assert rule.signal == "trace" and rule.trace_decay == 0.5 and rule.name == "anp-trace"
    assert rule.signal != "local"  # the back-end's generic (traced) path handles it
    with pytest.raises(ValueError, match="trace_decay"):
        RuleSpec(name="anp", trace_decay=0.5)  # needs signal 'trace'
    with pytest.raises(ValueError, match="trace_decay"):
        RuleSpec(name="anp", signal="trace", trace_decay=1.5)
    with pytest.raises(ValueError, match="trace"):
        RuleSpec(name="wp", signal="trace")
    with pytest.raises(ValueError, match="trace_decay"):
        NodePerturbation(kind="np", signal="trace", trace_decay=0.0)


def test_trace_estimate_runs_end_to_end():
    spec = bp.RateSpec(n_in=1, n_rec=8, n_out=1, tau=1.0, dt=1.0, sigma=1e-3)
    p = bp.init_params(spec, seed=0)
    rng = np.random.default_rng(0)
    u, y = rng.standard_normal((12, 4, 1)), rng.standard_normal((12, 4, 1))
    g = bp.estimate("anp", spec, p, u, y, seed=0, dtype="float64", signal="trace", trace_decay=0.7)
    g1 = bp.estimate("anp", spec, p, u, y, seed=0, dtype="float64", signal="trace", trace_decay=1.0)
    g_rtg = bp.estimate("anp", spec, p, u, y, seed=0, dtype="float64", signal="rtg")
    for k in g_rtg:
        np.testing.assert_allclose(g1[k], g_rtg[k], rtol=1e-5, atol=1e-8)
    assert any(not np.allclose(g[k], g_rtg[k]) for k in g)
