"""The online three-factor rollout (backends/torch/online.py, rate/online.py): reference loop,
exploration statistics, direction of the update, trainer dispatch, and exact resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import interrupted_at

import bioplaus as bp
from bioplaus.backends.torch import lif
from bioplaus.backends.torch.lif.online import LIFOnline
from bioplaus.backends.torch.online import CHUNK, OnlineNetwork, online_trials
from bioplaus.backends.torch.rate import RateState, consts_of, to_torch
from bioplaus.backends.torch.rate.bptt import bptt_estimate
from bioplaus.backends.torch.rate.online import exploration, three_factor_pass
from bioplaus.rules.eprop import EProp
from bioplaus.rules.online import Update
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


class _Recorder:
    """An online rule that explores with σ ξ (Gaussian) and keeps every StepSignals it sees
    (its state after the trials is the list)."""

    name = "recorder"
    explores = True
    needs = frozenset({"psi", "dl_do"})

    def explore(self, shape, std, generator, device, dtype):
        return std * torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def init_state(self, info):
        return None

    def begin(self, state, info):
        return {"info": info, "seen": []}

    def observe(self, trial, sig):
        trial["seen"].append(sig)
        return trial

    def finish(self, trial, end):
        i = trial["info"]
        z = i.like.new_zeros
        return Update(z((i.N, i.M_h)), z((i.n_out, i.M_o)), trial, z(0))


def test_lif_network_matches_a_reference_loop():
    """The one loop with the LIF network object (lif/online.py): per step ξ^bg, then the
    rule's n_t, then ξ^o; a_t = J_t, z_hid = [û_t, κ q_{t−1}, 1], z_out = [D_rec r_t, 1],
    ψ_t = active_t/(1 + k|ṽ_t − θ|)², decay w_t (1 − s_{t−1}), gain 1 − w_t, written out.
    T > CHUNK, so a chunk boundary of the external drive falls inside the trial."""
    spec = bp.LIFSpec(n_in=2, n_rec=7, n_out=2, sigma_v=0.5, sigma=0.1, bias_current=0.8,
                      in_gain=2.0, t_ref=0.004, bias=True, out_bias=True,
                      decorrelate_rec=True)  # fmt: skip
    p, c = lif.to_torch(bp.init_params(spec, seed=0), dtype=D), lif.consts_of(spec)
    p = p._replace(D_rec=p.D_rec + 0.05 * torch.eye(7, dtype=D).roll(1, 0))
    T, B = CHUNK + 5, 3
    rng = np.random.default_rng(0)
    u = torch.as_tensor(1.5 * rng.random((T, B, 2)))
    y = torch.as_tensor(rng.standard_normal((T, B, 2)))
    out = online_trials(LIFOnline(p, c, _Recorder(), None, torch.Generator().manual_seed(5), u),
                        None, y, None, "mse")  # fmt: skip
    seen = out.baseline["seen"]
    assert out.baseline["info"].network == "lif"
    assert out.baseline["info"].readout_decay == c.beta_r
    g = torch.Generator().manual_seed(5)
    st = lif.init_state(p, c, B)
    ones = torch.ones(B, 1, dtype=D)
    n_spikes = n_refractory = 0.0
    for t in range(T):
        noise = c.g_v * torch.randn(B, 7, generator=g, dtype=D)
        noise = noise + spec.sigma * torch.randn(B, 7, generator=g, dtype=D)
        prev = st
        st, J = lif.lif_step(p, c, st, lif.external_drive(p, c, u[t]), noise)
        o = st.r @ p.D_rec.T @ p.W_out.T + p.b_out
        o = o + spec.sigma * torch.randn(B, 2, generator=g, dtype=D)
        active = prev.c <= 0
        w = torch.full_like(prev.v, c.beta_m).masked_fill(~active, 1.0)
        v_tilde = c.v_rest + w * (prev.v - c.v_rest) + (1 - w) * J
        sig = seen[t]
        close = dict(rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(sig.a, J, **close)
        torch.testing.assert_close(sig.o, o, **close)
        torch.testing.assert_close(sig.z_hid, torch.cat([u[t], c.kappa * prev.q, ones], 1))
        torch.testing.assert_close(sig.z_out, torch.cat([st.r @ p.D_rec.T, ones], 1), **close)
        torch.testing.assert_close(sig.spikes, st.s)
        psi = active / (1 + c.slope * (v_tilde - c.theta).abs()) ** 2
        torch.testing.assert_close(sig.psi, psi, **close)
        torch.testing.assert_close(sig.decay, w * (1 - prev.s))
        torch.testing.assert_close(sig.gain, 1 - w)
        torch.testing.assert_close(sig.dl_do, o - y[t], **close)
        n_spikes += float(st.s.sum())
        n_refractory += float((~active).sum())
    assert n_spikes > 0 and n_refractory > 0  # spikes and refractory steps occurred


class _Linear(OnlineNetwork):
    """A user's network type for the loop: h_t = W_rec h_{t−1} + W_in u_t, o_t = W_out h_t
    (no noise; a_t = h_t, ψ_t = 1, decay 0, gain 1)."""

    name = "linear"

    def init_state(self):
        return RateState(None, self.p.W_rec.new_zeros((self.B, self.N)))

    def u_hat(self, t):
        return self.inputs[t]

    def step(self, t, s):
        h = s.r_hat @ self.p.W_rec.T + self.inputs[t] @ self.p.W_in.T
        return RateState(h, h), h

    def readout(self, s):
        return s.r_hat @ self.p.W_out.T

    def pre(self, s_prev):
        return s_prev.r_hat

    def local(self, s_prev, s, a):
        return torch.ones_like(a), 0.0, 1.0, None


def test_a_network_type_defined_outside_runs_in_the_loop():
    """The loop names no network: a user's network object runs every online rule in it (here
    the toy readout rule's exact readout gradient against autograd)."""
    spec, p = _net()
    rng = np.random.default_rng(1)
    u = torch.as_tensor(rng.standard_normal((5, 3, 2)))
    y = torch.as_tensor(rng.standard_normal((5, 3, 2)))
    rule = EProp("rate")  # its readout part is the exact readout gradient of any network
    out = online_trials(_Linear(p, consts_of(spec), rule, None, torch.Generator(), u),
                        None, y, None, "mse")  # fmt: skip
    W = p.W_out.clone().requires_grad_(True)
    h, loss = torch.zeros(3, 6, dtype=D), 0.0
    for t in range(5):
        h = h @ p.W_rec.T + u[t] @ p.W_in.T
        loss = loss + 0.5 * ((h @ W.T - y[t]) ** 2).sum()
    (loss / 15).backward()
    torch.testing.assert_close(out.result.grads["W_out"], W.grad)
    assert out.result.loss == pytest.approx(float(loss.detach()) / 15)
