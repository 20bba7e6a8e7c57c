"""LIF network on torch: analytic firing rate, exact decay, refractoriness, surrogate BPTT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import bioplaus as bp
from bioplaus.backends.torch.lif import (
    analytic_rate,
    consts_of,
    discrete_rate,
    init_lif_params,
    smooth_spike,
    surrogate_spike,
    to_torch,
)
from bioplaus.backends.torch.lif.bptt import lif_bptt_estimate
from bioplaus.backends.torch.lif.rollout import rollout
from bioplaus.spec import LIFSpec, SpecError, spec_from_dict


def _single(J: float, dt: float = 2e-4, t_ref: float = 0.002, **kw) -> LIFSpec:
    return LIFSpec(n_in=1, n_rec=1, n_out=1, sigma_v=0.0, bias_current=J, dt=dt, t_ref=t_ref, **kw)


def _spike_steps(spec: LIFSpec, T: int) -> np.ndarray:
    p = to_torch(init_lif_params(spec), dtype=torch.float64)
    p = p._replace(W_rec=torch.zeros_like(p.W_rec))
    out = rollout(p, consts_of(spec), torch.zeros(T, 1, 1, dtype=torch.float64), lambda t: None)
    return out.s[:, 0, 0].nonzero().flatten().numpy()


@pytest.mark.parametrize("J", [1.1, 1.5, 3.0])
def test_single_neuron_fires_at_analytic_rate(J: float) -> None:
    """Constant drive J > θ − v_rest, no noise: ISI = t_ref + τ_m ln((J − v_reset)/(J − θ)).

    The grid map samples the exact solution, so its ISI is (n_ref + ⌈T*/dt⌉)·dt
    exactly (first test) and within one step dt of the analytic ISI (second test)."""
    spec = _single(J)
    sp = _spike_steps(spec, 4000)
    isi = np.diff(sp) * spec.dt
    assert np.ptp(isi) < 1e-12  # regular
    rate = 1.0 / isi.mean()
    assert rate == pytest.approx(discrete_rate(spec, J), rel=1e-9)
    nu = analytic_rate(spec, J)
    assert abs(1 / rate - 1 / nu) <= spec.dt + 1e-12
    assert rate == pytest.approx(nu, rel=spec.dt * nu * 1.01)


def test_subthreshold_drive_never_fires_and_relaxes_exactly() -> None:
    """J < θ: no spike; v_t = J (1 − β_m^{t+1}) from v_{−1} = 0 (exact exponential decay)."""
    spec = _single(0.9, dt=0.001)
    p = to_torch(init_lif_params(spec), dtype=torch.float64)
    out = rollout(p, consts_of(spec), torch.zeros(200, 1, 1, dtype=torch.float64), lambda t: None)
    assert out.s.sum() == 0
    t = np.arange(200)
    want = 0.9 * (1 - np.exp(-(t + 1) * spec.dt / spec.tau_m))
    np.testing.assert_allclose(out.v[:, 0, 0].numpy(), want, rtol=1e-12, atol=1e-14)


def test_refractory_clamps_and_synaptic_current_is_exact() -> None:
    """A neuron driven hard spikes every n_ref + 1 steps: v is clamped for exactly
    t_ref = n_ref dt after a spike (until a39c20e it was n_ref − 1 steps, t_ref − dt), then
    crosses in the first free step; the synaptic current onto a silent neuron decays with
    β_s and enters v through κ(1 − β_m)."""
    spec = _single(100.0, dt=0.001, t_ref=0.003)
    sp = _spike_steps(spec, 50)
    assert set(np.diff(sp)) == {4}  # clamped n_ref = 3 steps (= t_ref), fires on the fourth
    spec2 = LIFSpec(n_in=1, n_rec=2, n_out=1, sigma_v=0.0, bias_current=0.0, dt=0.001, t_ref=0.0)
    c = consts_of(spec2)
    p = to_torch(init_lif_params(spec2), dtype=torch.float64)
    p = p._replace(W_rec=torch.tensor([[0.0, 0.0], [0.5, 0.0]], dtype=torch.float64),
                   W_in=torch.tensor([[200.0], [0.0]], dtype=torch.float64))  # fmt: skip
    u = torch.zeros(40, 1, 1, dtype=torch.float64)
    u[0] = 1.0  # neuron 0 fires once at step 0
    out = rollout(p, c, u, lambda t: None)
    assert out.s[:, 0, 0].sum() == 1 and out.s[0, 0, 0] == 1
    # continuous solution of τ_m v' = −v + 0.5 e^{−t/τ_s}, from the spike (end of step 0)
    t = np.arange(1, 40) * spec2.dt
    tm, ts = spec2.tau_m, spec2.tau_s
    want = 0.5 * ts / (ts - tm) * (np.exp(-t / ts) - np.exp(-t / tm))
    np.testing.assert_allclose(out.v[1:, 0, 1].numpy(), want, rtol=1e-10, atol=1e-14)


def test_fluctuation_driven_regime_of_default_model() -> None:
    """The protocols' network (mean drive below threshold) fires irregularly at 5–30 Hz."""
    spec = bp.load_model("models/lif_pattern.toml")
    v, s = bp.simulate(spec, np.zeros((500, 4, spec.n_in)), seed=0, spikes=True)
    rates = s[100:].mean((0, 1)) / spec.dt
    assert 5 < rates.mean() < 30 and (rates > 0).mean() > 0.9
    assert spec.bias_current < spec.theta  # spikes need fluctuations
    isi = np.diff(np.nonzero(s[:, 0].reshape(500, -1)[:, 0])[0]) * spec.dt
    assert isi.std() / isi.mean() > 0.5  # irregular (CV of the ISI; Poisson: 1)


def test_lifspec_validation_and_loading() -> None:
    with pytest.raises(SpecError, match="t_ref"):
        spec_from_dict({"kind": "lif", "n_in": 1, "n_rec": 2, "n_out": 1, "t_ref": 0.0015})
    with pytest.raises(SpecError, match="v_reset"):
        spec_from_dict({"kind": "lif", "n_in": 1, "n_rec": 2, "n_out": 1, "v_reset": 2.0})
    spec = spec_from_dict({"kind": "lif", "n_in": 1, "n_rec": 3, "n_out": 1})
    assert isinstance(spec, LIFSpec) and spec.n_ref == 2
    p = bp.init_params(spec, seed=0)
    assert set(p) == {"W_in", "W_rec", "W_out"} and np.all(np.diag(p["W_rec"]) == 0)


def test_surrogate_spike_backward_is_fast_sigmoid() -> None:
    """Forward H(x); backward 1/(1 + k|x|)², which is the derivative of the smooth F."""
    x = torch.linspace(-1, 1, 41, dtype=torch.float64, requires_grad=True)
    k = 25.0
    s = surrogate_spike(x, k)
    assert torch.equal(s, (x >= 0).double())
    (g,) = torch.autograd.grad(s.sum(), x)
    torch.testing.assert_close(g, 1 / (1 + k * x.detach().abs()) ** 2)
    (gf,) = torch.autograd.grad(smooth_spike(x, k).sum(), x)
    torch.testing.assert_close(gf, g)


def _fd_setup(detach_reset: bool):
    spec = LIFSpec(
        n_in=2, n_rec=6, n_out=2, dt=0.002, t_ref=0.0, sigma_v=0.5,
        detach_reset=detach_reset, surrogate_slope=5.0, out_bias=True, bias=True,
    )  # fmt: skip
    params = init_lif_params(spec, seed=3)
    params["b"] = np.full(6, 0.1)
    g = np.random.default_rng(0)
    T, B = 30, 3
    u = torch.as_tensor(g.random((T, B, 2)), dtype=torch.float64)
    y = torch.as_tensor(g.standard_normal((T, B, 2)) * 0.3, dtype=torch.float64)
    xi = torch.as_tensor(g.standard_normal((T, B, 6)), dtype=torch.float64)
    return spec, params, u, y, xi


def _loss(spec, params, u, y, xi) -> float:
    from bioplaus.loss import mean_loss

    p = to_torch(params, dtype=torch.float64)
    out = rollout(p, consts_of(spec), u, lambda t: xi[t], spike_fn="smooth")
    return float(mean_loss("mse", out.o, y, None))


def test_surrogate_bptt_matches_finite_differences_of_the_surrogate_model() -> None:
    """With the spike's forward pass replaced by the smooth F (F' = the surrogate), the
    BPTT machinery (synaptic chain, reset, readout, bias) gives the true gradient of that
    surrogate model: central differences agree. Heaviside forward + surrogate backward
    (the baseline) uses the same local derivatives at the same points, so this pins it."""
    spec, params, u, y, xi = _fd_setup(detach_reset=False)
    c = consts_of(spec)
    p = to_torch(params, dtype=torch.float64)
    res = lif_bptt_estimate(p, c, u, y, None, "mse", noise=xi, spike_fn="smooth")
    rng = np.random.default_rng(1)
    h = 1e-6
    for key in ("W_in", "W_rec", "W_out", "b", "b_out"):
        for _ in range(4):
            idx = tuple(rng.integers(0, n) for n in params[key].shape)
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[key][idx] += h
            minus[key][idx] -= h
            fd = (_loss(spec, plus, u, y, xi) - _loss(spec, minus, u, y, xi)) / (2 * h)
            ad = float(res.grads[key][idx])
            assert ad == pytest.approx(fd, rel=1e-5, abs=1e-9), (key, idx)


def test_surrogate_bptt_on_heaviside_model_is_finite_and_nonzero() -> None:
    """The baseline: forward spikes are exact (same loss as the model), gradient non-zero."""
    spec, params, u, y, xi = _fd_setup(detach_reset=True)
    p = to_torch(params, dtype=torch.float64)
    res = lif_bptt_estimate(p, consts_of(spec), u, y, None, "mse", noise=xi)
    out = rollout(p, consts_of(spec), u, lambda t: xi[t])
    from bioplaus.loss import mean_loss

    assert res.loss == pytest.approx(float(mean_loss("mse", out.o, y, None)))
    for g in res.grads.values():
        assert torch.isfinite(g).all()
    assert float(res.grads["W_rec"].abs().sum()) > 0


def test_simulate_and_estimate_dispatch_lif() -> None:
    spec = LIFSpec(n_in=2, n_rec=8, n_out=1)
    u = np.zeros((20, 2, 2))
    v = bp.simulate(spec, u, seed=0)
    assert v.shape == (20, 2, 8) and np.all(v < spec.theta)
    v2 = bp.simulate(spec, u, seed=0)
    np.testing.assert_array_equal(v, v2)
    params = bp.init_params(spec, seed=0)
    for rule in ("bptt", "anp", "np"):
        g = bp.estimate(rule, spec, params, u, np.ones((20, 2, 1)), seed=0)
        assert set(g) == {"W_in", "W_rec", "W_out"}
        assert all(np.isfinite(a).all() for a in g.values())
    assert math.isfinite(float(np.abs(g["W_out"]).sum()))


def _net(spiking: str = "grid", **kw) -> tuple[LIFSpec, dict]:
    spec = LIFSpec(n_in=2, n_rec=16, n_out=1, rec_gain=1.5, bias=True, v_rest=0.1,
                   spiking=spiking, **kw)  # fmt: skip
    params = bp.init_params(spec, seed=2)
    params["b"] = np.linspace(-0.1, 0.2, 16)
    return spec, params


@pytest.mark.parametrize("t_ref", [0.0, 0.004])
def test_simulate_fast_path_equals_the_pure_step(t_ref: float) -> None:
    """bp.simulate's in-place grid loop (lif.rollout.simulate_fast) is the map of lif_step:
    identical spikes and v to rounding, with recurrence, refractoriness, noise, v_rest ≠ 0."""
    from bioplaus.backends.torch.lif.rollout import simulate_fast

    spec, params = _net(t_ref=t_ref)
    c = consts_of(spec)
    p = to_torch(params, dtype=torch.float64)
    g = np.random.default_rng(0)
    u = torch.as_tensor((g.random((300, 3, 2)) < 0.2) * 1.0)
    xi = torch.as_tensor(g.standard_normal((300, 3, 16)))
    ref = rollout(p, c, u, lambda t: xi[t])
    fast = simulate_fast(p, c, u, lambda t: xi[t], keep=("v", "s", "d"))
    assert ref.s.sum() > 100
    torch.testing.assert_close(fast.s, ref.s, rtol=0, atol=0)
    torch.testing.assert_close(fast.v, ref.v, rtol=0, atol=1e-12)
    assert float(fast.d.abs().sum()) == 0.0


def test_simulate_returns_what_is_asked() -> None:
    """numpy float64 by default; out_dtype float32; torch tensors; spike times on the grid
    are step ends; bad options are one-line SpecErrors naming the key."""
    spec, params = _net()
    u = np.zeros((50, 2, 2))
    v = bp.simulate(spec, u, params, seed=1)
    assert isinstance(v, np.ndarray) and v.dtype == np.float64 and v.shape == (50, 2, 16)
    v32 = bp.simulate(spec, u, params, seed=1, out_dtype="float32")
    assert v32.dtype == np.float32
    np.testing.assert_array_equal(v32, v.astype(np.float32))
    vt, st, tt = bp.simulate(spec, u, params, seed=1, output="torch", spikes=True,
                             spike_times=True)  # fmt: skip
    assert isinstance(vt, torch.Tensor) and vt.dtype == torch.float32
    np.testing.assert_array_equal(vt.numpy(), v32)
    k = st.nonzero()
    assert len(k) > 0
    torch.testing.assert_close(tt[st > 0], (k[:, 0] + 1).float() * spec.dt)
    assert torch.isnan(tt[st == 0]).all()
    rate = bp.RateSpec(n_in=2, n_rec=4, n_out=1) if hasattr(bp, "RateSpec") else None
    if rate is not None:
        x = bp.simulate(rate, u, output="torch", out_dtype="float64")
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float64
    for bad, key in (({"output": "list"}, "output"), ({"out_dtype": "int8"}, "out_dtype"),
                     ({"output": "torch", "backend": "brian2"}, "output"),
                     ({"crossing": np.zeros((3, 2, 16))}, "crossing"),
                     ({"crossing": np.zeros((50, 2, 16))}, "crossing"),  # grid: unused
                     ({"nonsense": 1}, "nonsense")):  # fmt: skip
        with pytest.raises(SpecError, match=key):
            bp.simulate(spec, u, params, **bad)


def test_precise_spiking_drivers_run_and_share_the_background() -> None:
    """With spiking = "precise", surrogate BPTT, the paired-pass estimate and the online
    three-factor pass run; a σ = 1e-12 perturbed pass reproduces the clean pass spike for
    spike (the pair shares ξ and the bridge draws)."""
    from bioplaus.backends.torch.lif.perturb import lif_perturbation_estimate
    from bioplaus.rules import NodePerturbation

    spec, params = _net("precise", t_ref=0.003, sigma_v=0.5)
    c = consts_of(spec)
    p = to_torch(params, dtype=torch.float64)
    g = np.random.default_rng(0)
    u = torch.as_tensor(g.random((40, 3, 2)))
    y = torch.as_tensor(g.standard_normal((40, 3, 1)) * 0.3)
    res = lif_bptt_estimate(p, c, u, y, None, "mse", generator=torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v).all() for v in res.grads.values())
    assert float(res.grads["W_rec"].abs().sum()) > 0
    pe = lif_perturbation_estimate(
        p, c, NodePerturbation("np"), u, y, None, "mse", torch.Generator().manual_seed(1),
        sigma=1e-12, keep_outputs=True,
    )  # fmt: skip
    assert pe.loss == pytest.approx(pe.loss_perturbed, rel=1e-9)
    g2 = bp.estimate("anp", spec, params, u.numpy(), y.numpy(), seed=0)
    assert all(np.isfinite(a).all() for a in g2.values())


def test_spiking_option_is_validated() -> None:
    base = {"kind": "lif", "n_in": 1, "n_rec": 2, "n_out": 1}
    with pytest.raises(SpecError, match="spiking"):
        spec_from_dict({**base, "spiking": "exact"})
    with pytest.raises(SpecError, match="t_ref"):
        spec_from_dict({**base, "t_ref": 0.0015})  # grid: whole steps only
    spec = spec_from_dict({**base, "t_ref": 0.0015, "spiking": "precise"})
    assert consts_of(spec).ref_steps == pytest.approx(0.75)


@pytest.mark.parametrize("rule", ["three-factor", "anp"])
def test_precise_lif_protocol_trains(rule: str, tmp_path) -> None:
    """bp.run on a LIF protocol with spiking = "precise" (online and paired-pass drivers)."""
    proto = {
        "name": "t", "seed": 0,
        "model": {"kind": "lif", "n_in": 2, "n_rec": 12, "n_out": 1, "spiking": "precise"},
        "task": {"name": "pattern", "dt": 0.002, "fixation": 0.01, "cue": 0.01, "pattern": 0.04},
        "rule": {"name": rule},
        "train": {"steps": 2, "batch_size": 4, "eval_every": 1, "eval_batch": 4, "threads": 1},
    }  # fmt: skip
    res = bp.run(proto, out=tmp_path / "run", progress=False)
    assert res.status == "completed"
    assert np.isfinite(res.metrics["eval_loss"]).all()
