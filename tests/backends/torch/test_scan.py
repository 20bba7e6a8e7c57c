"""The one time loop (scan.py): the loop it replaces, written out, and both rollouts on it."""

from __future__ import annotations

import pytest
import torch

import bioplaus as bp
from bioplaus.backends.torch import lif, rate
from bioplaus.backends.torch.lif import rollout as lr
from bioplaus.backends.torch.rate.rollout import noise_source, rollout
from bioplaus.backends.torch.scan import detached, scan

F64 = torch.float64


def _rate(T=17, B=3, N=6):
    spec = bp.RateSpec(n_in=2, n_rec=N, n_out=2, sigma=0.2, dt=0.005, bias=True)
    p = rate.to_torch(bp.init_params(spec, seed=1), dtype=F64)
    g = torch.Generator().manual_seed(3)
    u = torch.randn(T, B, 2, generator=g, dtype=F64)
    xi = torch.randn(T, B, N, generator=g, dtype=F64)
    return spec, p, rate.consts_of(spec), u, xi


def _leaves(p):
    return p._replace(**{n: getattr(p, n).clone().requires_grad_(True) for n in ("W_in", "W_rec")})


@pytest.mark.parametrize("k", [None, 1, 4])
def test_scan_is_the_written_out_loop(k: int | None) -> None:
    """scan ≡ for t: (cut every k) s = step(s, drive_t, ξ_t); keep; on_step — states and
    the gradients through them, bit for bit."""
    spec, p, c, u, xi = _rate()
    T, B = u.shape[:2]

    def grads(run):
        q = _leaves(p)
        xs = run(q)
        return xs, torch.autograd.grad(xs.square().sum(), [q.W_in, q.W_rec])

    def by_hand(q):
        drive, s, xs = rate.input_drive(q, u).unbind(0), rate.init_state(q, c, B), []
        for t in range(T):
            if k is not None and t % k == 0:
                s = rate.RateState(s.x.detach(), s.r_hat.detach())
            s = rate.rate_step(q, c, s, drive[t], xi[t])
            xs.append(s.x)
        return torch.stack(xs)

    seen: list[int] = []

    def by_scan(q):
        def step(s, d, x):
            return rate.rate_step(q, c, s, d, x), None

        run = scan(step, rate.init_state(q, c, B), rate.input_drive(q, u).unbind(0),
                   lambda t: xi[t], keep={"x": lambda s, y: s.x}, detach_every=k,
                   on_step=lambda t, s, y: seen.append(t))  # fmt: skip
        return run.kept["x"]

    (a, ga), (b, gb) = grads(by_hand), grads(by_scan)
    assert torch.equal(a, b)
    assert all(torch.equal(x, y) for x, y in zip(ga, gb, strict=True))
    assert seen == list(range(T))


def test_scan_without_steps_and_detached_fields() -> None:
    _, p, c, _, _ = _rate()
    s0 = rate.init_state(p, c, 2)
    run = scan(lambda s, d, x: (s, None), s0, (), keep={"x": lambda s, y: s.x})
    assert run.final is s0 and run.kept == {}
    st = lif.LIFState(*(torch.ones(2, requires_grad=True) for _ in range(5)))  # d = None
    cut = detached(st)
    assert type(cut) is lif.LIFState and cut.d is None
    assert not any(a.requires_grad for a in cut[:5])


def test_rate_rollout_keeps_what_it_is_asked() -> None:
    """What is kept does not change the numbers; on_step sees the kept state and o_t."""
    _, p, c, u, xi = _rate()
    q = _leaves(p)
    full = rollout(q, c, u, lambda t: xi[t])
    seen = []
    none = rollout(q, c, u, lambda t: xi[t], keep_states=False, keep_outputs=False,
                   on_step=lambda t, s, o: seen.append((s.x, o)))  # fmt: skip
    assert none.x is None and none.r_hat is None and none.o is None
    assert torch.equal(torch.stack([x for x, _ in seen]), full.x)
    assert torch.equal(torch.stack([o for _, o in seen]), full.o)
    assert torch.equal(none.final.x, full.final.x)
    only_o = rollout(q, c, u, noise_source((3, 6), noise=xi), keep_states=False)
    assert only_o.x is None and torch.equal(only_o.o, full.o)


@pytest.mark.parametrize("spiking", ["grid", "precise"])
def test_lif_rollout_keeps_what_it_is_asked(spiking: str) -> None:
    """LIF: the outputs are the same with or without the states kept, under autograd (one
    readout after the loop) and without (a readout per step); the two modes round apart
    (one readout matmul, the noise added to the drive at once on the grid)."""
    spec = bp.LIFSpec(n_in=2, n_rec=8, n_out=2, spiking=spiking, sigma_v=0.5, in_gain=3.0)
    p = lif.to_torch(bp.init_params(spec, seed=1), dtype=F64)
    c = lif.consts_of(spec)
    u = torch.rand(30, 2, 2, generator=torch.Generator().manual_seed(2), dtype=F64)

    def run(grad: bool, **kw):
        g = torch.Generator().manual_seed(5)
        xi = lr.background(c, (2, 8), generator=g, dtype=F64)
        un = lr.uniform_source(c, (2, 8), generator=g, dtype=F64)
        with torch.set_grad_enabled(grad):
            return lr.rollout(p, c, u, xi, uniform=un, **kw)

    ref = run(False)
    assert ref.s.sum() > 0  # it spikes
    for grad in (False, True):
        full, only_o, no_o = run(grad), run(grad, keep_states=False), run(grad, keep_outputs=False)
        assert only_o.v is None and only_o.r is None and only_o.J is None and no_o.o is None
        assert torch.equal(only_o.o, full.o)
        for a, b in zip(full[:4], no_o[:4], strict=True):
            assert torch.equal(a, b)
        torch.testing.assert_close(full.o, ref.o, rtol=1e-12, atol=1e-12)
