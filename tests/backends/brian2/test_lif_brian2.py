"""brian2 LIF agrees with torch spike for spike on a shared input and noise realisation.

Tolerance: both back-ends implement the same exact propagator of the linear (v, I_syn)
system for piecewise-constant drive (brian2 via ``method='exact'``), so in float64 they
differ only by rounding (~1e-15 per step). A spike-time difference could only arise if v
landed within that rounding of θ, probability ~1e-13 per neuron-step with continuous
noise; so we require identical spike trains and |Δv| < 1e-9 (rounding accumulated over
T steps with decay < 1 stays far below that).
"""

from __future__ import annotations

import numpy as np
import pytest

import bioplaus as bp
from bioplaus.spec import LIFSpec

pytest.importorskip("brian2")


@pytest.mark.parametrize("t_ref", [0.0, 0.004])
def test_brian2_matches_torch_spike_for_spike(t_ref: float) -> None:
    spec = LIFSpec(n_in=2, n_rec=12, n_out=1, rec_gain=1.5, t_ref=t_ref, bias=True)
    params = bp.init_params(spec, seed=1)
    params["b"] = np.linspace(-0.1, 0.1, 12)
    rng = np.random.default_rng(0)
    T, B = 250, 2
    u = (rng.random((T, B, 2)) < 0.2) * 1.0
    xi = rng.standard_normal((T, B, 12))
    vt, st = bp.simulate(spec, u, params, backend="torch", noise=xi, dtype="float64", spikes=True)
    vb, sb = bp.simulate(spec, u, params, backend="brian2", noise=xi, spikes=True)
    assert st.sum() > 50  # the comparison is about spiking dynamics
    np.testing.assert_array_equal(st, sb)
    np.testing.assert_allclose(vb, vt, rtol=0, atol=1e-9)


def test_brian2_single_neuron_analytic_rate() -> None:
    from bioplaus.backends.torch.lif import discrete_rate

    spec = LIFSpec(n_in=1, n_rec=1, n_out=1, sigma_v=0.0, bias_current=1.5, dt=2e-4, t_ref=0.002)
    params = bp.init_params(spec, seed=0)
    _, s = bp.simulate(spec, np.zeros((2000, 1, 1)), params, backend="brian2", spikes=True)
    isi = np.diff(np.nonzero(s[:, 0, 0])[0]) * spec.dt
    assert 1 / isi.mean() == pytest.approx(discrete_rate(spec, 1.5), rel=1e-9)


def test_brian2_intrinsic_noise_is_seeded_and_rates_match_torch_statistically() -> None:
    """Without a shared realisation brian2 draws its own randn (seeded): reproducible, and
    the population rate matches torch's within sampling error."""
    spec = LIFSpec(n_in=1, n_rec=20, n_out=1)
    params = bp.init_params(spec, seed=0)
    u = np.zeros((400, 2, 1))
    _, s1 = bp.simulate(spec, u, params, backend="brian2", seed=3, spikes=True)
    _, s2 = bp.simulate(spec, u, params, backend="brian2", seed=3, spikes=True)
    np.testing.assert_array_equal(s1, s2)
    _, st = bp.simulate(spec, u, params, backend="torch", seed=3, spikes=True)
    rb, rt = s1[100:].mean(), st[100:].mean()
    n = s1[100:].size
    assert abs(rb - rt) < 5 * np.sqrt(rt / n) * 3  # overdispersed counts: 3× Poisson s.e.


@pytest.mark.parametrize("t_ref", [0.004, 0.0005])
def test_brian2_precise_spiking_matches_torch_spike_for_spike(t_ref: float) -> None:
    """spiking = "precise" (crossings between steps, spikes at their time): the brian2
    custom code and the torch step see one realisation of ξ and of the bridge-crossing
    uniforms (drawn from ``seed`` by bp.simulate) and give identical rasters, spike times
    to rounding, and v to 1e-9 — with recurrence, refractoriness ending inside steps, and
    t_ref shorter than dt."""
    spec = LIFSpec(n_in=2, n_rec=12, n_out=1, rec_gain=1.5, t_ref=t_ref, bias=True,
                   spiking="precise")  # fmt: skip
    params = bp.init_params(spec, seed=1)
    params["b"] = np.linspace(-0.1, 0.1, 12)
    rng = np.random.default_rng(0)
    T, B = 250, 2
    u = (rng.random((T, B, 2)) < 0.2) * 1.0
    xi = rng.standard_normal((T, B, 12))
    kw = {"noise": xi, "seed": 4, "spikes": True, "spike_times": True}
    vt, st, tt = bp.simulate(spec, u, params, backend="torch", dtype="float64", **kw)
    vb, sb, tb = bp.simulate(spec, u, params, backend="brian2", **kw)
    assert st.sum() > 50
    np.testing.assert_array_equal(st, sb)
    np.testing.assert_allclose(tb, tt, rtol=0, atol=1e-12)  # NaN where no spike, on both
    np.testing.assert_allclose(vb, vt, rtol=0, atol=1e-9)
    frac = (tt - np.floor(tt / spec.dt - 1e-9) * spec.dt)[st > 0]
    assert np.ptp(frac) > 0.5 * spec.dt  # spike times spread within the step


def test_brian2_precise_own_noise_rate_matches_siegert() -> None:
    """brian2 drawing its own randn() and rand(): 600 independent neurons at dt = 2 ms fire
    within 3 % of the Siegert rate (s.e. ≈ 1.2 %), like torch."""
    from bioplaus.backends.torch.lif import siegert_rate

    spec = LIFSpec(n_in=1, n_rec=1, n_out=1, sigma_v=0.5, bias_current=0.7, t_ref=0.004,
                   spiking="precise")  # fmt: skip
    params = bp.init_params(spec, seed=0)
    params["W_rec"][:] = 0.0
    T, burn = 875, 125
    _, s = bp.simulate(spec, np.zeros((T, 600, 1)), params, backend="brian2", seed=5,
                       spikes=True)  # fmt: skip
    per = s[burn:, :, 0].sum(0) / ((T - burn) * spec.dt)
    nu = siegert_rate(0.7, 0.5, spec)
    se = per.std(ddof=1) / np.sqrt(per.size)
    assert se / nu < 0.02
    assert abs(per.mean() / nu - 1) < 0.03, (per.mean(), nu, se)
