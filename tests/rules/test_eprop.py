"""e-prop (rules/eprop.py) through the online drivers: exact where no recurrent path exists,
aligned with BPTT where one does, learning and bit-identical resume, registry and options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import interrupted_at

import bioplaus as bp
from bioplaus.backends.torch.rate import consts_of, to_torch
from bioplaus.backends.torch.rate.online import online_pass
from bioplaus.rules import RuleSpec, make_online, rule_entry
from bioplaus.rules.eprop import EProp
from bioplaus.spec import SpecError

D = torch.float64


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _rate(N=7, seed=0, zero_rec=False, **kw):
    spec = bp.RateSpec(n_in=2, n_rec=N, n_out=2, tau=0.05, dt=0.01, sigma=0.0, **kw)
    p = bp.init_params(spec, seed=seed)
    if zero_rec:
        p["W_rec"] = np.zeros_like(p["W_rec"])
    return spec, p


def _data(T, B, n_in=2, n_out=2, seed=0, mask=True, scale=1.0):
    rng = np.random.default_rng(seed)
    u = scale * rng.standard_normal((T, B, n_in))
    y = rng.standard_normal((T, B, n_out))
    m = (rng.random((T, B)) < 0.7).astype(float) if mask else None
    return u, y, m


def _lif(N=6, seed=0, zero_rec=False, **kw):
    spec = bp.LIFSpec(n_in=2, n_rec=N, n_out=2, bias_current=0.7, in_gain=2.0, out_bias=True,
                      **kw)  # fmt: skip
    p = bp.init_params(spec, seed=seed)
    if zero_rec:
        p["W_rec"] = np.zeros_like(p["W_rec"])
    return spec, p


# -- (a) W_rec = 0: no recurrent path, the estimate is the exact gradient ------------------
@pytest.mark.parametrize(
    ("kw", "loss"),
    [({"bias": True}, "mse"), ({"decorrelate_rec": True, "decorrelate_input": True}, "mse"),
     ({"bias": True, "nonlinearity": "softplus"}, "ce")],
)  # fmt: skip
def test_rate_eprop_with_zero_recurrence_is_the_exact_gradient(kw, loss):
    spec, p = _rate(zero_rec=True, **kw)
    if "D_rec" in p:  # a non-trivial decorrelating matrix: the feedback is (W_out D_rec)ᵀ
        p["D_rec"] = p["D_rec"] + 0.1 * np.random.default_rng(3).standard_normal(p["D_rec"].shape)
    u, y, m = _data(12, 3)
    if loss == "ce":
        y = np.abs(y) / np.abs(y).sum(-1, keepdims=True)
    g = bp.estimate("bptt", spec, p, u, y, mask=m, loss=loss, dtype="float64")
    e = bp.estimate("e-prop", spec, p, u, y, mask=m, loss=loss, dtype="float64")
    assert set(e) == set(g)
    for k in g:
        assert np.abs(g[k]).max() > 1e-4, k  # a non-trivial gradient
        np.testing.assert_allclose(e[k], g[k], rtol=1e-9, atol=1e-13, err_msg=k)


@pytest.mark.parametrize("sigma_v", [0.0, 0.5])
def test_lif_eprop_with_zero_recurrence_is_the_surrogate_gradient(sigma_v):
    """Pseudo-derivative, β_m-filtered trace cut at the reset, β_r readout filter: with
    W_rec = 0 this is surrogate BPTT's gradient (detached reset) exactly, background noise
    included (both draw ξ_t from the seed's generator in the same order)."""
    spec, p = _lif(zero_rec=True, sigma_v=sigma_v, bias=True)
    rng = np.random.default_rng(0)
    T, B = 60, 4
    u = rng.random((T, B, 2))
    y = rng.standard_normal((T, B, 2))
    m = (rng.random((T, B)) < 0.7).astype(float)
    g = bp.estimate("bptt", spec, p, u, y, mask=m, dtype="float64", seed=3)
    e = bp.estimate("e-prop", spec, p, u, y, mask=m, dtype="float64", seed=3)
    for k in g:
        assert np.abs(g[k]).max() > 1e-4, k
        np.testing.assert_allclose(e[k], g[k], rtol=1e-9, atol=1e-13, err_msg=k)


def test_lif_eprop_drops_only_the_reset_path_when_the_reset_is_not_detached():
    """detach_reset = False: BPTT also differentiates v ← v − s(v − v_reset) through s;
    e-prop (as Bellec et al.) does not. The readout stays exact; the hidden estimate
    differs but stays aligned."""
    spec, p = _lif(zero_rec=True, sigma_v=0.0, detach_reset=False)
    u, y, _ = _data(60, 4, mask=False)
    u = np.abs(u)
    g = bp.estimate("bptt", spec, p, u, y, dtype="float64")
    e = bp.estimate("e-prop", spec, p, u, y, dtype="float64")
    np.testing.assert_allclose(e["W_out"], g["W_out"], rtol=1e-9, atol=1e-13)
    assert not np.allclose(e["W_in"], g["W_in"], rtol=1e-6)
    assert _cos(e["W_in"], g["W_in"]) > 0.5


# -- (b) W_rec ≠ 0: exact readout, aligned recurrent estimate -------------------------------
def test_rate_eprop_readout_is_exact_and_hidden_estimate_is_aligned():
    """Measured cosines to BPTT (N = 8, T = 30, B = 4, rec_gain 1): symmetric W_in 0.95,
    W_rec 0.67, b 0.89; random feedback W_in 0.54, W_rec 0.48."""
    spec, p = _rate(N=8, seed=1, bias=True, rec_gain=1.0)
    u, y, _ = _data(30, 4, mask=False)
    g = bp.estimate("bptt", spec, p, u, y, dtype="float64")
    e = bp.estimate("e-prop", spec, p, u, y, dtype="float64")
    np.testing.assert_allclose(e["W_out"], g["W_out"], rtol=1e-9, atol=1e-13)
    assert not np.allclose(e["W_rec"], g["W_rec"], rtol=1e-3)  # recurrence is approximated
    cos = {k: _cos(e[k], g[k]) for k in ("W_in", "W_rec", "b")}
    assert cos["W_in"] > 0.8 and cos["W_rec"] > 0.4 and cos["b"] > 0.7, cos
    r = bp.estimate("e-prop", spec, p, u, y, dtype="float64", feedback="random")
    np.testing.assert_allclose(r["W_out"], g["W_out"], rtol=1e-9, atol=1e-13)
    cos_r = {k: _cos(r[k], g[k]) for k in ("W_in", "W_rec")}
    assert cos_r["W_in"] > 0.2 and cos_r["W_rec"] > 0.2, cos_r


def test_lif_eprop_readout_is_exact_and_hidden_estimate_is_aligned():
    """Measured cosines to surrogate BPTT (N = 10, T = 100, B = 4, σ_v = 0.5): W_in 0.998,
    W_rec 0.998 (the recurrent path through κ q is weak at rec_gain 1)."""
    spec, p = _lif(N=10, sigma_v=0.5, rec_gain=1.0)
    rng = np.random.default_rng(0)
    u, y = rng.random((100, 4, 2)), rng.standard_normal((100, 4, 2))
    g = bp.estimate("bptt", spec, p, u, y, dtype="float64", seed=3)
    e = bp.estimate("e-prop", spec, p, u, y, dtype="float64", seed=3)
    for k in ("W_out", "b_out"):
        np.testing.assert_allclose(e[k], g[k], rtol=1e-9, atol=1e-13, err_msg=k)
    assert not np.allclose(e["W_rec"], g["W_rec"], rtol=1e-6)
    cos = {k: _cos(e[k], g[k]) for k in ("W_in", "W_rec")}
    assert cos["W_in"] > 0.9 and cos["W_rec"] > 0.9, cos


def test_lif_random_feedback_readout_is_exact_without_noise():
    """Random B is drawn from the pass's generator before the trials, so with σ_v > 0 it
    shifts the background noise; without noise the readout is BPTT's exactly."""
    spec, p = _lif(N=10, sigma_v=0.0, rec_gain=1.0)
    rng = np.random.default_rng(1)
    u, y = 1.5 * rng.random((80, 3, 2)), rng.standard_normal((80, 3, 2))
    g = bp.estimate("bptt", spec, p, u, y, dtype="float64")
    e = bp.estimate("e-prop", spec, p, u, y, dtype="float64", feedback="random")
    np.testing.assert_allclose(e["W_out"], g["W_out"], rtol=1e-9, atol=1e-13)
    assert not np.allclose(e["W_in"], g["W_in"], rtol=1e-3)


# -- the rule itself: reference loop, no history, firing-rate regulariser -------------------
def test_rate_pass_matches_a_reference_loop():
    """e_t = φ'(x_t) ε_t, ε_t = (1−α) ε_{t−1} + α z_t, L_t = B g_t, written out in numpy."""
    spec, pn = _rate(N=5, seed=2, bias=True)
    p, c = to_torch(pn, dtype=D), consts_of(spec)
    u, y, m = _data(9, 3, seed=4)
    tt = lambda a: torch.as_tensor(a, dtype=D)  # noqa: E731
    Bfb = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=D)
    out = online_pass(p, c, EProp("rate", feedback="random"), Bfb, tt(u), tt(y), tt(m), "mse",
                      torch.Generator().manual_seed(1))  # fmt: skip
    W_in, W_rec, W_out, b = pn["W_in"], pn["W_rec"], pn["W_out"], pn["b"]
    a, Bn = c.alpha, Bfb.numpy()
    x = np.zeros((3, 5))
    eps = np.zeros((3, 2 + 5 + 1))
    G_h, G_o = np.zeros((5, 8)), np.zeros((2, 5))
    for t in range(9):
        r_prev = np.tanh(x)
        z = np.concatenate([u[t], r_prev, np.ones((3, 1))], 1)
        x = (1 - a) * x + a * (z @ np.concatenate([W_in, W_rec, b[:, None]], 1).T)
        r = np.tanh(x)
        g = (r @ W_out.T - y[t]) * m[t][:, None] / m.sum()
        eps = (1 - a) * eps + a * z
        G_o += g.T @ r
        G_h += np.einsum("bj,bi->ji", (g @ Bn.T) * (1 - r**2), eps)
    gr = {k: v.numpy() for k, v in out.result.grads.items()}
    np.testing.assert_allclose(gr["W_in"], G_h[:, :2], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gr["W_rec"], G_h[:, 2:7], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gr["b"], G_h[:, 7], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gr["W_out"], G_o, rtol=1e-10, atol=1e-15)
    assert torch.equal(out.baseline, Bfb)  # the fixed B is the rule's state, unchanged


def test_firing_rate_regulariser_is_the_surrogate_gradient_of_its_penalty():
    """With W_out = 0 (no task gradient) and W_rec = 0, e-prop's c_reg term equals the
    autograd (surrogate) gradient of (c_reg/2) Σ_j (f̄_j − f0)², f̄ the batch-trial mean rate."""
    from bioplaus.backends.torch.lif import consts_of as lif_consts
    from bioplaus.backends.torch.lif import to_torch as lif_torch
    from bioplaus.backends.torch.lif.rollout import rollout

    spec, pn = _lif(N=6, zero_rec=True, sigma_v=0.0)
    pn["W_out"] = np.zeros_like(pn["W_out"])
    rng = np.random.default_rng(0)
    T, B = 80, 3
    u, y = 1.5 * rng.random((T, B, 2)), rng.standard_normal((T, B, 2))
    c_reg, f0 = 1e-3, 5.0
    e = bp.estimate("e-prop", spec, pn, u, y, dtype="float64", c_reg=c_reg, f0=f0)
    p = lif_torch(pn, dtype=D)
    W_in = p.W_in.clone().requires_grad_(True)
    out = rollout(p._replace(W_in=W_in), lif_consts(spec), torch.as_tensor(u), lambda t: None,
                  spike_fn="surrogate", keep_states=True)  # fmt: skip
    rate = out.s.sum((0, 1)) / (T * B * spec.dt)
    assert float(rate.detach().max()) > 0  # spikes, and silent neurons (f̄ − f0 = −f0)
    (0.5 * c_reg * ((rate - f0) ** 2).sum()).backward()
    np.testing.assert_allclose(e["W_in"], W_in.grad.numpy(), rtol=1e-9, atol=1e-14)
    assert np.abs(e["W_in"]).max() > 1e-6
    off = bp.estimate("e-prop", spec, pn, u, y, dtype="float64", f0=f0)  # c_reg = 0
    np.testing.assert_array_equal(off["W_in"], 0.0)  # W_out = 0: no task signal reaches W_in
    np.testing.assert_array_equal(off["W_out"], e["W_out"])  # the regulariser leaves the readout


def test_random_feedback_comes_from_the_seed():
    spec, p = _rate(bias=True)
    u, y, _ = _data(10, 2)
    a = bp.estimate("e-prop", spec, p, u, y, dtype="float64", feedback="random", seed=1)
    b = bp.estimate("e-prop", spec, p, u, y, dtype="float64", feedback="random", seed=1)
    c = bp.estimate("e-prop", spec, p, u, y, dtype="float64", feedback="random", seed=2)
    s = bp.estimate("e-prop", spec, p, u, y, dtype="float64", seed=1)
    s2 = bp.estimate("e-prop", spec, p, u, y, dtype="float64", seed=2)
    assert np.array_equal(a["W_in"], b["W_in"]) and not np.allclose(a["W_in"], c["W_in"])
    assert np.array_equal(s["W_in"], s2["W_in"])  # symmetric: no randomness at all


# -- (e) registry and options ---------------------------------------------------------------
def test_registry_finds_eprop_with_its_options():
    entry = rule_entry("e-prop")
    assert entry.mechanism == "online" and set(entry.networks) == {"rate", "lif"}
    rs = RuleSpec(name="e-prop")
    assert rs.feedback == "symmetric" and rs.c_reg == 0.0
    rule = make_online(RuleSpec(name="e-prop", feedback="random"), "rate", 0.01)
    assert isinstance(rule, EProp) and rule.feedback == "random" and not rule.explores


@pytest.mark.parametrize(
    ("opts", "match"),
    [({"feedback": "mirror"}, "rule.feedback"), ({"c_reg": -1.0}, "rule.c_reg"),
     ({"c_reg": float("inf")}, "rule.c_reg"), ({"sigma": 0.1}, "rule.sigma"),
     ({"f0": -2.0}, "rule.f0")],
)  # fmt: skip
def test_bad_options_are_one_line_errors(opts, match):
    spec, p = _rate()
    u, y, _ = _data(5, 2)
    with pytest.raises((SpecError, TypeError), match=match) as info:
        bp.estimate("e-prop", spec, p, u, y, **opts)
    assert "\n" not in str(info.value)


def test_regulariser_on_a_rate_model_and_precise_spiking_are_refused_in_one_line():
    spec, p = _rate()
    u, y, _ = _data(5, 2)
    with pytest.raises(SpecError, match="rule.c_reg") as info:
        bp.estimate("e-prop", spec, p, u, y, c_reg=1.0)
    assert "\n" not in str(info.value)
    lspec, lp = _lif(spiking="precise", sigma_v=0.0)
    with pytest.raises(SpecError, match="grid") as info:
        bp.estimate("e-prop", lspec, lp, np.zeros((5, 2, 2)), np.zeros((5, 2, 2)))
    assert "\n" not in str(info.value)


def test_rflo_refuses_lif_in_one_line():
    spec, p = _lif()
    with pytest.raises(SpecError, match="rflo") as info:
        bp.estimate("rflo", spec, p, np.zeros((5, 2, 2)), np.zeros((5, 2, 2)))
    assert "\n" not in str(info.value)


# -- (d) training: the loss falls and a resumed run is bit-identical ------------------------
def _rate_proto(feedback="symmetric", rule="e-prop", steps=12):
    return {
        "name": "tiny_eprop", "seed": 3,
        "model": {"n_in": 2, "n_rec": 16, "n_out": 1, "tau": 0.05, "dt": 0.02, "sigma": 0.001,
                  "rec_gain": 1.5},
        "task": {"name": "pattern", "dt": 0.02, "n_patterns": 2},
        "rule": {"name": rule, "feedback": feedback},
        "train": {"steps": steps, "batch_size": 8, "optimizer": "adam", "lr": 1e-2,
                  "eval_every": 4, "eval_batch": 8, "checkpoint_every": 5},
    }  # fmt: skip


def _lif_proto(feedback="symmetric", steps=12, **rule):
    return {
        "name": "tiny_lif_eprop", "seed": 1,
        "model": {"kind": "lif", "n_in": 2, "n_rec": 16, "n_out": 1, "sigma_v": 0.5,
                  "bias_current": 0.7, "in_gain": 2.0, "out_bias": True, "dt": 0.002},
        "task": {"name": "pattern", "dt": 0.002, "fixation": 0.02, "cue": 0.02,
                 "pattern": 0.1, "n_patterns": 2},
        "rule": {"name": "e-prop", "feedback": feedback, **rule},
        "train": {"steps": steps, "batch_size": 4, "optimizer": "adam", "lr": 1e-2,
                  "eval_every": 4, "eval_batch": 4, "checkpoint_every": 5},
    }  # fmt: skip


@pytest.mark.parametrize("make", [_rate_proto, _lif_proto], ids=["rate", "lif"])
def test_a_short_run_reduces_the_loss(tmp_path, make):
    res = bp.run(make(steps=16), out=tmp_path / "r", progress=False)
    loss = list(res.metrics["eval_loss"])
    assert res.status == "completed"
    assert loss[-1] < 0.8 * loss[0], loss


def _crash_and_resume(proto, tmp_path, name):
    with interrupted_at(8), pytest.raises(KeyboardInterrupt):
        bp.run(proto, out=tmp_path / name, progress=False)
    status = json.loads((tmp_path / name / "status.json").read_text())
    assert status["status"] == "interrupted"


@pytest.mark.parametrize(
    "proto",
    [_rate_proto("random"), _rate_proto("random", rule="rflo"), _lif_proto("random"),
     _lif_proto("symmetric", c_reg=1e-4)],
    ids=["rate-eprop-random", "rate-rflo", "lif-eprop-random", "lif-eprop-reg"],
)  # fmt: skip
def test_resume_is_bit_identical(tmp_path, proto):
    """Interrupt at step 8 (last checkpoint at 5), resume: final weights equal bit for bit
    those of an uninterrupted run; the random feedback B is in the checkpoint."""
    full = bp.run(proto, out=tmp_path / "full", progress=False)
    _crash_and_resume(proto, tmp_path, "cut")
    ck = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    if proto["rule"].get("feedback") == "random":
        assert ck["rule_state"]["B"].shape == (16, 1)
    resumed = bp.resume(tmp_path / "cut", progress=False)
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
    assert list(resumed.metrics["step"]) == list(full.metrics["step"])
