"""The no-autograd fast rollout (rate/rollout.py) against the autograd path, step for step."""

from __future__ import annotations

import pytest
import torch

import bioplaus as bp
from bioplaus.backends.torch.rate import RateParams, consts_of, to_torch
from bioplaus.backends.torch.rate.rollout import noise_source, rollout, rollout_fast

F64 = torch.float64


def _net(dt, decor, bias, phi="tanh", N=10):
    spec = bp.RateSpec(
        n_in=3, n_rec=N, n_out=2, tau=0.02, dt=dt, sigma=0.1, nonlinearity=phi,
        decorrelate_rec=decor, decorrelate_input=decor, bias=bias,
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    p = to_torch(bp.init_params(spec, seed=2), dtype=F64)
    if decor:
        p = p._replace(D_rec=p.D_rec + 0.05 * torch.randn(N, N, generator=g, dtype=F64))
    if bias:
        p = p._replace(
            b=0.1 * torch.randn(N, generator=g, dtype=F64),
            b_out=0.1 * torch.randn(2, generator=g, dtype=F64),
        )
    return spec, p


@pytest.mark.parametrize("noise", ["generator", "array", "callable", "none"])
@pytest.mark.parametrize(
    ("dt", "decor", "bias", "phi"),
    [(0.002, True, True, "tanh"), (0.02, False, False, "tanh"), (0.005, True, False, "relu")],
)
@pytest.mark.parametrize("keep_states", [True, False])
def test_fast_rollout_equals_autograd_rollout(noise, dt, decor, bias, phi, keep_states):
    spec, p = _net(dt, decor, bias, phi)
    c = consts_of(spec)
    T, B = 37, 4
    g = torch.Generator().manual_seed(1)
    u = torch.randn(T, B, 3, generator=g, dtype=F64)
    x0 = torch.randn(B, 10, generator=g, dtype=F64)
    xi_arr = torch.randn(T, B, 10, generator=g, dtype=F64)

    def xi():
        if noise == "generator":
            return noise_source((B, 10), generator=torch.Generator().manual_seed(7), dtype=F64)
        if noise == "array":
            return noise_source((B, 10), noise=xi_arr)
        if noise == "callable":
            return lambda t: xi_arr[t]
        return noise_source((B, 10))

    q = RateParams(*(None if v is None else v.clone().requires_grad_(True) for v in p))
    with torch.enable_grad():
        ref = rollout(q, c, u, xi(), x0=x0, keep_states=keep_states)
    assert ref.o.requires_grad  # the autograd path
    fast = rollout_fast(p, c, u, xi(), x0=x0, keep_states=keep_states, chunk=5)
    with torch.no_grad():  # and the dispatch
        disp = rollout(p, c, u, xi(), x0=x0, keep_states=keep_states)
    for out in (fast, disp):
        torch.testing.assert_close(out.o, ref.o.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out.final.x, ref.final.x.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            out.final.r_hat, ref.final.r_hat.detach(), rtol=1e-12, atol=1e-12
        )
        if keep_states:
            torch.testing.assert_close(out.x, ref.x.detach(), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(out.r_hat, ref.r_hat.detach(), rtol=1e-12, atol=1e-12)
        else:
            assert out.x is None and out.r_hat is None


def test_fast_rollout_consumes_the_noise_stream_like_the_step_loop():
    """σ = 0 with a generator: nothing is added, but the generator advances the same way."""
    spec, p = _net(0.002, False, False)
    c = consts_of(spec)._replace(sigma=0.0)
    u = torch.randn(9, 3, 3, dtype=F64)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    q = RateParams(*(None if v is None else v.clone().requires_grad_(True) for v in p))
    ref = rollout(q, c, u, noise_source((3, 10), generator=g1, dtype=F64))
    fast = rollout_fast(p, c, u, noise_source((3, 10), generator=g2, dtype=F64), chunk=4)
    torch.testing.assert_close(fast.x, ref.x.detach(), rtol=1e-12, atol=1e-12)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_bptt_still_gets_gradients_through_rollout():
    spec, p = _net(0.002, True, True)
    c = consts_of(spec)
    q = p._replace(W_rec=p.W_rec.clone().requires_grad_(True))
    out = rollout(q, c, torch.randn(5, 2, 3, dtype=F64), noise_source((2, 10)))
    out.o.sum().backward()
    assert q.W_rec.grad is not None and float(q.W_rec.grad.abs().sum()) > 0
