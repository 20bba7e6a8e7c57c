"""The one paired-pass driver (perturb.py's paired_passes) on a kind written outside the
library: the driver's losses, mask, δℓ, dS and outputs against a direct computation, and a
kind whose baseline comes in chunks of its own (``Chunk.base = 0``: the perturbed rows pair
with the last baseline) giving the same estimate."""

from __future__ import annotations

import pytest
import torch

from bioplaus.backends.torch.perturb import paired_passes
from bioplaus.backends.torch.perturbation import Chunk, Perturbation, Rows

F64 = torch.float64


class ReadoutNoise(Perturbation):
    """o_t = W u_t on the B clean rows, W u_t + σ ξ_t on the K·B perturbed rows (ξ drawn per
    chunk, [n, K·B, n_out]); chunks of ``steps`` steps, the clean rows in a chunk of their
    own before the perturbed ones when ``separate``. The record: (u, ξ, δℓ) of the chunk."""

    def __init__(self, W, sigma, K, generator, inputs, steps=3, separate=False):
        self.steps, self.separate = steps, separate
        rows = Rows.of(inputs.shape[1], K, 1, "clean", inputs.device)
        super().__init__(W, None, sigma, rows, generator, inputs)

    def init_rule(self, rule):
        return rule.init(self.p.shape, self.p)

    def context(self):
        return self.sigma

    def start(self, x0):
        """No state."""

    def chunks(self):
        T, P = self.inputs.shape[0], self.rows.P
        for t0 in range(0, T, self.steps):
            n = min(self.steps, T - t0)
            if self.separate:
                yield Chunk(t0, n, 1, slice(0, 0))
                yield Chunk(t0, n, 0, slice(0, P))
            else:
                yield Chunk(t0, n, 1, slice(0, P))

    def run(self, chunk):
        u = self.inputs[chunk.t0 : chunk.t0 + chunk.n]  # [n, B, n_in]
        clean = (u @ self.p.T)[:, None]  # [n, 1, B, n_out]
        if chunk.width == 0:
            return clean
        K, B = self.rows.K, self.rows.B
        xi = torch.randn(chunk.n, K * B, self.p.shape[0], generator=self.generator, dtype=F64)
        self.drawn = (u.repeat(1, K, 1), xi)
        pert = clean + self.sigma * xi.view(chunk.n, K, B, -1)
        return pert if chunk.base == 0 else torch.cat([clean, pert], 1)

    def chunk_record(self, chunk, dl):
        return None if chunk.width == 0 else (*self.drawn, dl)

    def decor_sums(self, keys):
        return {}

    def add_decor_(self, yy, chunk):
        """No statistics."""

    def result(self, est, loss, loss_perturbed, outputs, decor):
        return est, loss, loss_perturbed, outputs


class ReadoutNP:
    """NP on the readout: ∂L/∂W ≈ Σ δℓ ξ uᵀ / (σ · Σm · K); finalize also returns dS."""

    def init(self, shape, like):
        return like.new_zeros(shape)

    def accumulate(self, G, rec, sigma):
        u, xi, dl = rec
        return G + torch.einsum("tp,tpo,tpi->oi", dl, xi, u) / sigma

    def finalize(self, G, dS, norm):
        return G / norm, dS


def _problem(T=8, B=4, K=3, n_in=3, n_out=2):
    g = torch.Generator().manual_seed(0)
    W = torch.randn(n_out, n_in, generator=g, dtype=F64)
    u = torch.randn(T, B, n_in, generator=g, dtype=F64)
    y = torch.randn(T, B, n_out, generator=g, dtype=F64)
    m = (torch.rand(T, B, generator=g) > 0.3).to(F64)
    return W, u, y, m, K


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_driver_bookkeeping_on_a_user_kind(steps):
    W, u, y, m, K = _problem()
    T, B = u.shape[:2]
    sigma = 0.1
    pert = ReadoutNoise(W, sigma, K, torch.Generator().manual_seed(1), u, steps=steps)
    (G, dS), loss, loss_a, outs = paired_passes(pert, ReadoutNP(), y, m, "mse", keep_outputs=True)
    # the same draws, directly
    g = torch.Generator().manual_seed(1)
    xi = torch.cat([
        torch.randn(min(steps, T - t0), K * B, 2, generator=g, dtype=F64)
        for t0 in range(0, T, steps)
    ])  # fmt: skip
    o_b = u @ W.T  # [T, B, n_out]
    o_a = o_b.repeat(1, K, 1) + sigma * xi  # [T, K·B, n_out]
    ell_b = 0.5 * ((o_b - y) ** 2).sum(-1) * m
    ell_a = 0.5 * ((o_a - y.repeat(1, K, 1)) ** 2).sum(-1) * m.repeat(1, K)
    dl = ell_a - ell_b.repeat(1, K)
    torch.testing.assert_close(dS, dl.sum(0), rtol=1e-12, atol=1e-14)
    assert loss == pytest.approx(float(ell_b.sum() / m.sum()), rel=1e-12)
    assert loss_a == pytest.approx(float(ell_a.sum() / (m.sum() * K)), rel=1e-12)
    torch.testing.assert_close(outs, o_b, rtol=0, atol=0)
    ref = torch.einsum("tp,tpo,tpi->oi", dl, xi, u.repeat(1, K, 1)) / (sigma * float(m.sum()) * K)
    torch.testing.assert_close(G, ref, rtol=1e-12, atol=1e-14)


def test_chunks_without_baseline_pair_with_the_last_baseline():
    """The baseline in a chunk of its own, the perturbed rows after it (base = 0, as the
    MLP's clean pass): the same estimate, losses and outputs."""
    W, u, y, m, K = _problem()
    res = [
        paired_passes(
            ReadoutNoise(W, 0.1, K, torch.Generator().manual_seed(2), u, separate=sep),
            ReadoutNP(),
            y,
            m,
            "mse",
            keep_outputs=True,
        )  # fmt: skip
        for sep in (False, True)
    ]
    (G0, dS0), l0, la0, o0 = res[0]
    (G1, dS1), l1, la1, o1 = res[1]
    torch.testing.assert_close(G1, G0, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(dS1, dS0, rtol=1e-12, atol=1e-14)
    assert (l1, la1) == pytest.approx((l0, la0), rel=1e-12)
    torch.testing.assert_close(o1, o0, rtol=0, atol=0)
