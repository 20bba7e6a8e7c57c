"""The block contract (rules/base.py): a rule fed n steps at once gives the estimate of n
per-step calls, for every credit signal; a rule without ``accumulate_block`` and a subclass
that overrides ``accumulate`` get their steps one by one."""

from __future__ import annotations

import pytest
import torch

from bioplaus.rules.base import BlockRecord, Context, accumulate_block
from bioplaus.rules.node_perturbation import NodePerturbation

F64 = torch.float64


def blocks(T=13, P=5, N=7, n_out=3, M_h=11, M_o=8, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g, dtype=F64)

    return BlockRecord(0, r(T, P, M_h), r(T, P, M_o), r(T, P, N), r(T, P, n_out),
                       r(T, P, N), r(T, P, n_out), r(T, P))  # fmt: skip


def run(rule, blk, cuts, ctx):
    T, P, N = blk.dx.shape
    state = rule.init(P, blk.z_hid.shape[2], N, blk.z_out.shape[2], blk.do.shape[2], blk.dx)
    edges = [0, *cuts, T]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        part = BlockRecord(a, *(f[a:b] for f in blk[1:]))
        state = accumulate_block(rule, state, part, ctx)
    return rule.finalize(state, blk.dl.sum(0), float(T * P))


def per_step(rule, blk, ctx):
    T, P, N = blk.dx.shape
    state = rule.init(P, blk.z_hid.shape[2], N, blk.z_out.shape[2], blk.do.shape[2], blk.dx)
    for k in range(T):
        state = rule.accumulate(state, blk.step(k), ctx)
    return rule.finalize(state, blk.dl.sum(0), float(T * P))


@pytest.mark.parametrize(
    ("kind", "signal", "lam"),
    [("np", "local", 1.0), ("anp", "local", 1.0), ("np", "trial", 1.0), ("anp", "rtg", 1.0),
     ("np", "rtg", 1.0), ("anp", "trace", 0.9), ("np", "trace", 0.3), ("anp", "trace", 1.0)],
)  # fmt: skip
@pytest.mark.parametrize("cuts", [[], [4], [1, 2, 9], list(range(1, 13))])
def test_blocks_equal_steps(kind, signal, lam, cuts):
    blk = blocks()
    ctx = Context(0.3, 0.05, 1.0)
    rule = NodePerturbation(kind=kind, signal=signal, trace_decay=lam)
    ref = per_step(rule, blk, ctx)
    got = run(rule, blk, cuts, ctx)
    for a, b in zip(ref, got, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-11, atol=1e-13)


def test_a_rule_without_the_block_method_and_a_subclass_get_every_step():
    blk = blocks()
    ctx = Context(1.0, 0.05, 1.0)
    seen = []

    class Sub(NodePerturbation):
        def accumulate(self, state, rec, ctx):
            seen.append(rec.t)
            return super().accumulate(state, rec, ctx)

    got = run(Sub(kind="anp"), blk, [5], ctx)
    assert seen == list(range(13))
    ref = per_step(NodePerturbation(kind="anp"), blk, ctx)
    torch.testing.assert_close(got.hid, ref.hid, rtol=1e-11, atol=1e-13)

    class Plain:  # the bare (init, accumulate, finalize) contract
        inner = NodePerturbation(kind="np", signal="rtg")

        def init(self, *a):
            return self.inner.init(*a)

        def accumulate(self, state, rec, ctx):
            seen.append(-rec.t)
            return self.inner.accumulate(state, rec, ctx)

        def finalize(self, *a):
            return self.inner.finalize(*a)

    seen.clear()
    run(Plain(), blk, [3, 7], ctx)
    assert seen == [-t for t in range(13)]


@pytest.mark.parametrize(
    ("kind", "signal", "lam"),
    [("np", "local", 1.0), ("anp", "local", 1.0), ("np", "trial", 1.0), ("anp", "rtg", 1.0),
     ("anp", "trace", 0.9), ("np", "trace", 0.3)],
)  # fmt: skip
@pytest.mark.parametrize("K", [2, 3])
def test_z_shared_by_the_resamples(kind, signal, lam, K):
    """A block whose z holds only the B rows that the K resamples share (row p reads
    z row p mod B, BlockRecord.K) gives the estimate of the same block with z repeated to
    the P = K·B rows, in blocks and step by step (BlockRecord.step repeats z)."""
    B = 2
    full = blocks(P=K * B)
    shared = full._replace(z_hid=full.z_hid[:, :B], z_out=full.z_out[:, :B])
    full = full._replace(z_hid=shared.z_hid.repeat(1, K, 1), z_out=shared.z_out.repeat(1, K, 1))
    assert shared.K == K and full.K == 1
    torch.testing.assert_close(shared.step(4).z_hid, full.step(4).z_hid, rtol=0, atol=0)
    ctx = Context(0.3, 0.05, 1.0)
    rule = NodePerturbation(kind=kind, signal=signal, trace_decay=lam)
    ref = per_step(rule, full, ctx)
    for got in (run(rule, shared, [4, 9], ctx), per_step(rule, shared, ctx)):
        for a, b in zip(ref, got, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-11, atol=1e-13)
