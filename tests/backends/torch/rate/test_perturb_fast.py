"""The chunked fast path of the paired passes (rate/perturb_fast.py) against the generic loop.

Both consume the same random stream, so with the same generator seed they must give the
same estimate, losses, outputs and decorrelation statistics to float64 rounding.
"""

from __future__ import annotations

import pytest
import torch

import bioplaus as bp
from bioplaus.backends.torch import rate as rate_mod
from bioplaus.backends.torch.rate import consts_of, to_torch
from bioplaus.backends.torch.rate.perturb import (
    generic_estimate,
    has_fast_path,
    local_estimate_fast,
    perturbation_estimate,
)
from bioplaus.backends.torch.rate.perturb_fast import gram_upper_, symmetrize
from bioplaus.rules import RuleSpec, make_rule

F64 = torch.float64


def _problem(*, dt=0.01, decor=True, bias=True, phi="tanh", N=12, T=23, B=5, device="cpu"):
    spec = bp.RateSpec(
        n_in=3, n_rec=N, n_out=2, tau=0.02, dt=dt, sigma=0.05, nonlinearity=phi,
        decorrelate_rec=decor, decorrelate_input=decor, bias=bias,
    )  # fmt: skip
    g = torch.Generator().manual_seed(3)
    p = to_torch(bp.init_params(spec, seed=1), dtype=F64)
    if decor:  # non-trivial decorrelating matrices
        p = p._replace(
            D_rec=p.D_rec + 0.05 * torch.randn(N, N, generator=g, dtype=F64),
            D_in=p.D_in + 0.1 * torch.randn(3, 3, generator=g, dtype=F64),
        )
    if bias:
        p = p._replace(
            b=0.1 * torch.randn(N, generator=g, dtype=F64),
            b_out=0.1 * torch.randn(2, generator=g, dtype=F64),
        )
    u = torch.randn(T, B, 3, generator=g, dtype=F64)
    y = torch.randn(T, B, 2, generator=g, dtype=F64)
    m = (torch.rand(T, B, generator=g) > 0.3).to(F64)
    p = rate_mod.RateParams(*(None if v is None else v.to(device) for v in p))
    return spec, p, u.to(device), y.to(device), m.to(device)


def _close(r1, r2, rtol=1e-10):
    assert r1.grads.keys() == r2.grads.keys()
    for k in r1.grads:
        scale = float(r1.grads[k].abs().max())
        assert scale > 0
        torch.testing.assert_close(
            r2.grads[k].cpu(), r1.grads[k].cpu(), rtol=0, atol=rtol * scale, msg=k
        )
    assert r2.loss == pytest.approx(r1.loss, rel=1e-12)
    assert r2.loss_perturbed == pytest.approx(r1.loss_perturbed, rel=1e-12)
    assert r1.decor.keys() == r2.decor.keys()
    for k, (v, n) in r1.decor.items():
        atol = 1e-12 * float(v.abs().max())
        torch.testing.assert_close(r2.decor[k][0].cpu(), v.cpu(), rtol=1e-12, atol=atol)
        assert r2.decor[k][1] == n
    if r1.outputs is not None:
        torch.testing.assert_close(r2.outputs.cpu(), r1.outputs.cpu(), rtol=1e-12, atol=1e-12)


CASES = [
    # (rule, norm, dt (α = dt/τ), decorrelation, biases, mask, nonlinearity)
    ("np", "joint", 0.01, True, True, True, "tanh"),
    ("np", "joint", 0.02, False, False, False, "tanh"),
    ("anp", "joint", 0.01, True, True, True, "tanh"),
    ("anp", "layer", 0.01, True, False, True, "tanh"),
    ("anp", "joint", 0.02, False, True, False, "tanh"),
    ("anp", "layer", 0.02, True, True, False, "softplus"),
    ("np", "joint", 0.005, True, True, True, "sigmoid"),
]


@pytest.mark.parametrize(("kind", "norm", "dt", "decor", "bias", "masked", "phi"), CASES)
@pytest.mark.parametrize("chunk", [1, 4, None])
def test_fast_path_equals_generic_loop(kind, norm, dt, decor, bias, masked, phi, chunk):
    spec, p, u, y, m = _problem(dt=dt, decor=decor, bias=bias, phi=phi)
    c = consts_of(spec)
    rule = make_rule(RuleSpec(name=kind, norm=norm))
    assert has_fast_path(rule, 1, "clean")
    kw = dict(sigma=0.05, keep_outputs=True, decor=("D_in", "D_rec") if decor else ())
    mask = m if masked else None
    ref = generic_estimate(p, c, rule, u, y, mask, "mse", torch.Generator().manual_seed(5), **kw)
    fast = local_estimate_fast(
        p, c, rule, u, y, mask, "mse", torch.Generator().manual_seed(5), chunk=chunk, **kw
    )
    _close(ref, fast)


def test_fast_path_with_x0_and_cross_entropy():
    spec, p, u, y, m = _problem()
    c = consts_of(spec)
    rule = make_rule(RuleSpec(name="anp"))
    y = torch.softmax(y, -1)
    x0 = torch.randn(5, 12, generator=torch.Generator().manual_seed(9), dtype=F64)
    kw = dict(sigma=0.05, keep_outputs=True, decor=("D_rec",), x0=x0)
    ref = generic_estimate(p, c, rule, u, y, m, "ce", torch.Generator().manual_seed(2), **kw)
    fast = local_estimate_fast(p, c, rule, u, y, m, "ce", torch.Generator().manual_seed(2), **kw)
    _close(ref, fast)


def test_dispatch_and_generator_state():
    """perturbation_estimate takes the fast path for every node-perturbation rule with a
    clean baseline, and leaves the generator where the generic loop leaves it (so resumed
    runs stay bit-identical); a noisy baseline, INP and WP keep the generic loops."""
    spec, p, u, y, m = _problem()
    c = consts_of(spec)
    for name, opts, K in [
        ("anp", {}, 1),
        ("anp", {}, 2),
        ("np", {"signal": "rtg"}, 1),
        ("anp", {"signal": "trace", "trace_decay": 0.9}, 3),
        ("rtg-np", {}, 2),
    ]:
        rule = make_rule(RuleSpec(name=name, **opts))
        assert has_fast_path(rule, K, "clean"), (name, opts, K)
        g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        ref = generic_estimate(p, c, rule, u, y, m, "mse", g1, sigma=0.05, K=K)
        res = perturbation_estimate(p, c, rule, u, y, m, "mse", g2, sigma=0.05, K=K)
        _close(ref, res)
        assert torch.equal(g1.get_state(), g2.get_state())
    for name, kw in [
        ("anp", dict(baseline="noisy")),
        ("inp", {}),
        ("wp", {}),
    ]:
        r = make_rule(RuleSpec(name=name))
        assert not has_fast_path(r, kw.get("K", 1), kw.get("baseline", "clean"))


@pytest.mark.parametrize(
    ("name", "opts", "K"),
    [
        ("np", {"signal": "rtg"}, 1),
        ("anp", {"signal": "rtg"}, 2),
        ("np", {"signal": "trial"}, 4),
        ("anp", {"signal": "trace", "trace_decay": 0.8}, 1),
        ("np", {"signal": "trace", "trace_decay": 0.5}, 3),
        ("anp", {"norm": "layer"}, 4),
        ("np", {}, 2),
    ],
)
@pytest.mark.parametrize(("N", "B", "T"), [(12, 5, 23), (40, 2, 10), (130, 3, 60)])
def test_fast_path_equals_generic_for_traces_and_resamples(name, opts, K, N, B, T):
    """The variants that learn best (trace, reward-to-go, K resamples) on the fast path: the
    generic loop's estimate, losses, outputs and decorrelation statistics in float64, with
    D folded or not (N vs B·T) and the rule fed in blocks of steps."""
    spec, p, u, y, m = _problem(N=N, B=B, T=T)
    c = consts_of(spec)
    rule = make_rule(RuleSpec(name=name, **opts))
    kw = dict(sigma=0.05, keep_outputs=True, decor=("D_in", "D_rec"), K=K)
    ref = generic_estimate(p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(6), **kw)
    fast = local_estimate_fast(p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(6), **kw)
    _close(ref, fast)


def test_a_subclassed_rule_keeps_its_accumulate():
    """A user's rule built on NodePerturbation keeps its own accumulate: the fast path feeds
    it every step (not a block it would bypass), with r̂ (not the folded φ), and gives the
    estimate the generic loop gives."""
    from bioplaus.rules.node_perturbation import NodePerturbation

    class Counting(NodePerturbation):
        calls = 0

        def accumulate(self, state, rec, ctx):
            Counting.calls += 1
            return super().accumulate(state, rec, ctx)

    spec, p, u, y, m = _problem()
    c = consts_of(spec)
    rule = Counting(kind="anp")
    assert not rule.linear_in_z
    res = perturbation_estimate(p, c, rule, u, y, m, "mse", torch.Generator(), sigma=0.05)
    assert Counting.calls == u.shape[0]
    ref = generic_estimate(p, c, rule, u, y, m, "mse", torch.Generator(), sigma=0.05)
    _close(ref, res)


def test_float32_fast_path_close_to_generic():
    """float32 (the default dtype): the fast path (tanh as 2σ(2x) − 1, folded D) stays
    within float32 rounding of the generic loop."""
    spec, p, u, y, m = _problem(T=40, B=8, N=32)
    p = rate_mod.RateParams(*(None if v is None else v.float() for v in p))
    u, y, m = u.float(), y.float(), m.float()
    c = consts_of(spec)
    rule = make_rule(RuleSpec(name="anp"))
    kw = dict(sigma=0.05, decor=("D_rec",))
    ref = generic_estimate(p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(1), **kw)
    fast = local_estimate_fast(p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(1), **kw)
    for k in ref.grads:
        err = float((fast.grads[k] - ref.grads[k]).norm() / ref.grads[k].norm())
        assert err < 1e-4, (k, err)
    torch.testing.assert_close(fast.decor["D_rec"][0], ref.decor["D_rec"][0], rtol=1e-4, atol=1e-3)


def test_gram_upper_blocks_equal_full_product():
    Z = torch.randn(50, 130, generator=torch.Generator().manual_seed(0), dtype=F64)
    acc = torch.zeros(130, 130, dtype=F64)
    gram_upper_(acc, Z)
    gram_upper_(acc, 2 * Z)
    torch.testing.assert_close(symmetrize(acc), 5 * Z.T @ Z, rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
def test_fast_path_on_cuda_matches_generic_and_cpu():
    """On CUDA the fast path equals the generic loop (same CUDA stream), and the clean pass
    (loss, outputs, decorrelation statistics; no noise) equals the CPU one."""
    spec, p, u, y, m = _problem(device="cuda")
    c = consts_of(spec)
    rule = make_rule(RuleSpec(name="anp"))
    kw = dict(sigma=0.05, keep_outputs=True, decor=("D_in", "D_rec"))

    def gen():
        return torch.Generator(device="cuda").manual_seed(5)

    ref = generic_estimate(p, c, rule, u, y, m, "mse", gen(), **kw)
    fast = local_estimate_fast(p, c, rule, u, y, m, "mse", gen(), **kw)
    _close(ref, fast)
    spec, pc, uc, yc, mc = _problem()
    cpu = local_estimate_fast(pc, c, rule, uc, yc, mc, "mse", torch.Generator(), **kw)
    assert fast.loss == pytest.approx(cpu.loss, rel=1e-10)
    torch.testing.assert_close(fast.outputs.cpu(), cpu.outputs, rtol=1e-10, atol=1e-12)
    for k in cpu.decor:
        torch.testing.assert_close(fast.decor[k][0].cpu(), cpu.decor[k][0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("N", "B", "T"),
    # D applied per step / sums per chunk / folded; N ≥ 128: the block-triangular Gram
    [(40, 2, 10), (12, 2, 10), (12, 5, 23), (130, 3, 60), (130, 8, 60)],
)
@pytest.mark.parametrize("kind", ["np", "anp"])
def test_fast_path_with_and_without_folding_D(N, B, T, kind):
    spec, p, u, y, m = _problem(N=N, B=B, T=T)
    c = consts_of(spec)
    rule = make_rule(RuleSpec(name=kind))
    kw = dict(sigma=0.05, keep_outputs=True, decor=("D_in", "D_rec"))
    ref = generic_estimate(p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(6), **kw)
    fast = local_estimate_fast(p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(6), **kw)
    _close(ref, fast)


@pytest.mark.parametrize(
    ("name", "opts", "K", "chunk", "dyn_chunk"),
    [
        ("anp", {"signal": "rtg"}, 1, 8, 3),
        ("anp", {"signal": "trace", "trace_decay": 0.7}, 2, 10, 4),
        ("np", {"signal": "trial"}, 3, 23, 5),
        ("anp", {}, 1, 6, 1),
        ("np", {}, 2, 7, 7),
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_time_loop_in_sub_chunks_of_a_block(name, opts, K, chunk, dyn_chunk, bias):
    """The time loop runs in sub-chunks shorter than the rule's block (what a rule that asks
    for long blocks gets): the records it writes, carried across sub-chunks and blocks, give
    the generic loop's estimate, losses, outputs and statistics in float64."""
    spec, p, u, y, m = _problem(bias=bias)
    c = consts_of(spec)
    rule = make_rule(RuleSpec(name=name, **opts))
    kw = dict(sigma=0.05, keep_outputs=True, decor=("D_in", "D_rec"), K=K)
    ref = generic_estimate(p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(2), **kw)
    fast = local_estimate_fast(
        p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(2), chunk=chunk,
        dyn_chunk=dyn_chunk, **kw,
    )  # fmt: skip
    _close(ref, fast)


def test_readout_bias_without_hidden_bias():
    """z_out = [r̂, 1] when only the readout has a bias (the records share no bias column)."""
    spec, p, u, y, m = _problem()
    p = p._replace(b=None)
    c = consts_of(spec)
    for opts in ({}, {"signal": "rtg"}):
        rule = make_rule(RuleSpec(name="anp", **opts))
        kw = dict(sigma=0.05, keep_outputs=True, decor=("D_rec",), K=2)
        ref = generic_estimate(p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(4), **kw)
        fast = local_estimate_fast(
            p, c, rule, u, y, m, "mse", torch.Generator().manual_seed(4), chunk=9, dyn_chunk=4,
            **kw,
        )  # fmt: skip
        _close(ref, fast)
