"""The online three-factor rollout (backends/torch/online.py): reference loop, exploration
statistics, direction of the update, trainer dispatch, and exact resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import interrupted_at

import bioplaus as bp
from bioplaus.backends.torch.bptt import bptt_estimate
from bioplaus.backends.torch.online import exploration, three_factor_pass
from bioplaus.backends.torch.rate import consts_of, to_torch
from bioplaus.rules.three_factor import Baseline, ThreeFactor

D = torch.float64


def _net(N=6, n_in=2, n_out=2, seed=0, **kw):
    spec = bp.RateSpec(n_in=n_in, n_rec=N, n_out=n_out, tau=0.03, dt=0.01, sigma=0.05, **kw)
    return spec, to_torch(bp.init_params(spec, seed=seed), dtype=D)


def test_pass_matches_a_reference_loop():
    """Euler step + Gaussian exploration + readout noise, then the rule, written out."""
    spec, p = _net(bias=True)
    c = consts_of(spec)
    rule = ThreeFactor(spec.dt, tau_e=0.05, tau_b=0.02, supralinear=3.0)
    T, B = 7, 3
    rng = np.random.default_rng(0)
    u = torch.as_tensor(rng.standard_normal((T, B, 2)))
    y = torch.as_tensor(rng.standard_normal((T, B, 2)))
    m = torch.as_tensor((rng.random((T, B)) < 0.6).astype(float))
    m[-1] = 1.0
    base = Baseline(torch.tensor([-0.4, -0.1], dtype=D), torch.tensor([True, True]))
    types = torch.tensor([0, 1, 1])
    out = three_factor_pass(
        p, c, rule, base, u, y, m, "mse", torch.Generator().manual_seed(5), types=types
    )
    g = torch.Generator().manual_seed(5)
    W_in, W_rec, W_out, b = (v.numpy() for v in (p.W_in, p.W_rec, p.W_out, p.b))
    x = np.zeros((B, 6))
    xbar, obar = np.zeros((B, 6)), np.zeros((B, 2))
    e_h, e_o = np.zeros((B, 6, 2 + 6 + 1)), np.zeros((B, 2, 6))
    lsum = np.zeros(B)
    le, lb = rule.lam_e, rule.lam_b
    for t in range(T):
        xi = torch.randn(B, 6, generator=g, dtype=D).numpy()
        xo = torch.randn(B, 2, generator=g, dtype=D).numpy()
        r_prev = np.tanh(x)
        x = (1 - c.alpha) * x + c.alpha * (r_prev @ W_rec.T + u[t].numpy() @ W_in.T + b)
        x = x + spec.sigma * math.sqrt(c.alpha) * xi
        r = np.tanh(x)
        o = r @ W_out.T + spec.sigma * xo
        lsum += 0.5 * ((o - y[t].numpy()) ** 2).sum(-1) * m[t].numpy()
        z_h = np.concatenate([u[t].numpy(), r_prev, np.ones((B, 1))], 1)
        for k in range(B):
            e_h[k] = le * e_h[k] + (1 - le) * np.outer(x[k] - xbar[k], z_h[k]) ** 3
            e_o[k] = le * e_o[k] + (1 - le) * np.outer(o[k] - obar[k], r[k]) ** 3
        xbar = lb * xbar + (1 - lb) * x
        obar = lb * obar + (1 - lb) * o
    R = -lsum / m.sum(0).numpy()
    M = R - base.rbar.numpy()[types.numpy()]
    d_h = np.einsum("b,bnm->nm", M, e_h) / B
    d_o = np.einsum("b,bnm->nm", M, e_o) / B
    gr = {k: v.numpy() for k, v in out.result.grads.items()}
    np.testing.assert_allclose(gr["W_in"], -d_h[:, :2], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(gr["W_rec"], -d_h[:, 2:8], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(gr["b"], -d_h[:, 8], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(gr["W_out"], -d_o, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(out.modulator.numpy(), M, rtol=1e-12)
    assert out.reward == pytest.approx(R.mean())
    assert out.result.loss == pytest.approx(lsum.sum() / float(m.sum()))


def test_kicks_are_sparse_and_uniform():
    spec, _ = _net()
    c = consts_of(spec)
    rule = ThreeFactor(0.01, noise="kicks", kick_rate=5.0, kick_amplitude=2.0)
    n = exploration(rule, (400, 500), c, 0.0, torch.Generator().manual_seed(0), "cpu", D)
    hit = n != 0
    assert float(hit.double().mean()) == pytest.approx(0.05, abs=0.002)  # rate · dt
    k = n[hit]
    assert float(k.abs().max()) <= 2.0
    assert float(k.mean()) == pytest.approx(0.0, abs=0.02)
    assert float(k.var()) == pytest.approx(4.0 / 3.0, rel=0.03)  # U(−A, A): A²/3


def test_gaussian_exploration_has_the_models_noise_level():
    spec, _ = _net()
    c = consts_of(spec)
    rule = ThreeFactor(0.01)
    n = exploration(rule, (400, 500), c, 0.05, torch.Generator().manual_seed(0), "cpu", D)
    assert float(n.std()) == pytest.approx(0.05 * math.sqrt(c.alpha), rel=0.01)


def test_expected_update_descends_the_loss():
    """Many trials of one input with the baseline at the clean reward: the mean three-factor
    update (whole-trial eligibility, Gaussian exploration) points down the BPTT gradient."""
    spec, p = _net(N=8, seed=1)
    c = consts_of(spec)
    rule = ThreeFactor(spec.dt, tau_e=None, tau_b=0.01)
    T, B = 6, 4000
    rng = np.random.default_rng(1)
    u1, y1 = rng.standard_normal((T, 1, 2)), rng.standard_normal((T, 1, 2))
    u = torch.as_tensor(np.repeat(u1, B, 1))
    y = torch.as_tensor(np.repeat(y1, B, 1))
    exact = bptt_estimate(p, c._replace(sigma=0.0), u[:, :1], y[:, :1], None, "mse")
    base = Baseline(torch.tensor([-exact.loss], dtype=D), torch.tensor([True]))
    out = three_factor_pass(p, c, rule, base, u, y, None, "mse", torch.Generator().manual_seed(2))
    keys = ("W_in", "W_rec", "W_out")

    def cos(a, b_):
        return float(a @ b_ / (a.norm() * b_.norm()))

    # biased (δx is not the injected noise) but aligned; measured 0.15, 0.36, 0.87, all 0.20
    for k in keys:
        assert cos(out.result.grads[k].flatten(), exact.grads[k].flatten()) > 0.1, k
    flat = [torch.cat([d[k].flatten() for k in keys]) for d in (out.result.grads, exact.grads)]
    assert cos(*flat) > 0.1


def _proto(reward="trial", noise="kicks", steps=12, **rule):
    return {
        "name": "tiny_tf",
        "seed": 2,
        "model": {
            "n_in": 2, "n_rec": 12, "n_out": 1, "tau": 0.1, "dt": 0.05, "sigma": 0.05,
            "decorrelate_rec": True,
        },
        "task": {"name": "delayed_match", "dt": 0.05},
        "rule": {"name": "three-factor", "reward": reward, "noise": noise, "kick_amplitude": 2.0,
                 "tau_e": 0.2 if reward == "step" else None, "tau_r": 3.0, **rule},
        "train": {
            "steps": steps, "batch_size": 8, "optimizer": "sgd", "lr": 0.05, "lr_decor": 1e-3,
            "eval_every": 4, "eval_batch": 8, "checkpoint_every": 5,
        },
    }  # fmt: skip


def test_trainer_runs_the_rule_and_checkpoints_its_state(tmp_path):
    res = bp.run(_proto(steps=6), out=tmp_path / "r", progress=False)
    assert res.status == "completed"
    assert {"eval_accuracy", "eval_reward", "train_accuracy"} <= set(res.metrics)
    sd = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert sd["rule_state"]["rbar"].shape == (4,)  # one R̄ per DNMS trial type
    assert bool(sd["rule_state"]["seen"].all())
    assert float(sd["rule_state"]["rbar"].max()) < 0.0


@pytest.mark.parametrize(
    ("reward", "noise", "extra"),
    [("trial", "kicks", {"supralinear": 3.0}), ("step", "gaussian", {"normalise": True})],
)
def test_resume_is_bit_identical(tmp_path, reward, noise, extra):
    """Interrupt at step 8 (last checkpoint at 5), resume: final weights equal bit for bit
    those of an uninterrupted run; without the rule's saved state they would not."""
    proto = _proto(reward, noise, **extra)
    full = bp.run(proto, out=tmp_path / "full", progress=False)
    with interrupted_at(8), pytest.raises(KeyboardInterrupt):
        bp.run(proto, out=tmp_path / "cut", progress=False)
    status = json.loads((tmp_path / "cut" / "status.json").read_text())
    assert status["status"] == "interrupted"
    resumed = bp.resume(tmp_path / "cut", progress=False)
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
    assert list(resumed.metrics["step"]) == list(full.metrics["step"])
    # the reward baseline is part of the state: dropping it changes the continuation
    with interrupted_at(8), pytest.raises(KeyboardInterrupt):
        bp.run(proto, out=tmp_path / "cut2", progress=False)
    ck = tmp_path / "cut2" / "checkpoint.pt"
    sd = torch.load(ck, weights_only=True)
    assert sd["step"] == 5 and sd["rule_state"]
    sd["rule_state"] = {}
    torch.save(sd, ck)
    forgot = bp.resume(tmp_path / "cut2", progress=False)
    assert not np.array_equal(full.params["W_rec"], forgot.params["W_rec"])
