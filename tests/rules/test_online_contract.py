"""The online-rule contract (rules/online.py): a rule registered from outside runs on both
drivers and through bp.run with no driver edit; bp.estimate serves every online rule."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
import torch
from pydantic import Field

import bioplaus as bp
from bioplaus.backends.torch.rate import consts_of, to_torch
from bioplaus.backends.torch.rate.online import OnlineHandle
from bioplaus.random import torch_generator
from bioplaus.registry import RULES, register_rule
from bioplaus.rules import RuleSpec, make_online
from bioplaus.rules.online import Update


class _ReadoutOnly:
    """A toy online rule: the exact readout gradient, nothing for the hidden layer; counts
    its batches in its state (so checkpointing goes through the rule's own state_dict)."""

    name = "toy-readout"
    explores = False
    needs = frozenset({"dl_do"})

    def init_state(self, info):
        return torch.zeros((), dtype=torch.int64)

    def begin(self, state, info):
        z = info.like.new_zeros
        return {"n": state, "G": z((info.n_out, info.M_o)), "H": z((info.N, info.M_h)),
                "norm": info.norm, "seen": []}  # fmt: skip

    def observe(self, trial, sig):
        g = sig.dl_do / trial["norm"]
        g = g if sig.m is None else g * sig.m[:, None]
        trial["G"].addmm_(g.T, sig.z_out)
        trial["seen"].append((sig.psi is None, type(sig.decay).__name__))
        return trial

    def finish(self, trial, end):
        return Update(-trial["H"], -trial["G"], trial["n"] + 1, trial["H"].new_zeros(0))

    def state_dict(self, state):
        return {} if state is None else {"n": state.clone()}  # None before the first batch

    def load_state(self, sd, like):
        return sd["n"].clone() if "n" in sd else None


class _ToyOptions(RuleSpec):
    name: Literal["toy-readout"] = Field(description="toy online rule (tests).")


@pytest.fixture
def toy_rule():
    register_rule("toy-readout", options=_ToyOptions, build=lambda o, n, dt=None: _ReadoutOnly(),
                  mechanism="online", networks=("rate", "lif"))  # fmt: skip
    yield
    RULES.remove("toy-readout")


@pytest.mark.parametrize("kind", ["rate", "lif"])
def test_a_rule_registered_outside_runs_on_both_drivers(toy_rule, kind):
    if kind == "rate":
        spec = bp.RateSpec(n_in=2, n_rec=5, n_out=2, tau=0.05, dt=0.01, sigma=0.0)
        rng = np.random.default_rng(0)
        u = rng.standard_normal((8, 3, 2))
    else:
        spec = bp.LIFSpec(n_in=2, n_rec=5, n_out=2, sigma_v=0.0, bias_current=0.7,
                          in_gain=2.0)  # fmt: skip
        rng = np.random.default_rng(0)
        u = 1.5 * rng.random((40, 3, 2))
    p = bp.init_params(spec, seed=0)
    y = rng.standard_normal((u.shape[0], 3, 2))
    g = bp.estimate("bptt", spec, p, u, y, dtype="float64")
    e = bp.estimate("toy-readout", spec, p, u, y, dtype="float64")
    np.testing.assert_allclose(e["W_out"], g["W_out"], rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(e["W_in"], 0.0)


def test_a_rule_registered_outside_trains_and_checkpoints_its_state(toy_rule, tmp_path):
    proto = {
        "name": "toy", "seed": 0,
        "model": {"n_in": 2, "n_rec": 8, "n_out": 1, "tau": 0.05, "dt": 0.02, "sigma": 0.0},
        "task": {"name": "pattern", "dt": 0.02, "n_patterns": 2},
        "rule": {"name": "toy-readout"},
        "train": {"steps": 6, "batch_size": 4, "optimizer": "adam", "lr": 1e-2,
                  "eval_every": 3, "eval_batch": 4, "checkpoint_every": 3},
    }  # fmt: skip
    res = bp.run(proto, out=tmp_path / "r", progress=False)
    assert res.status == "completed"
    sd = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert int(sd["rule_state"]["n"]) == 6  # one batch per update, counted by the rule


def test_three_factor_estimate_is_one_pass_from_a_fresh_baseline():
    """bp.estimate("three-factor") = the trainer's handle on a fresh baseline, one pass with
    the seed's "estimate" generator; the first trial of the (one) type has M = 0."""
    spec = bp.RateSpec(n_in=2, n_rec=6, n_out=2, tau=0.03, dt=0.01, sigma=0.05)
    pn = bp.init_params(spec, seed=0)
    rng = np.random.default_rng(0)
    u, y = rng.standard_normal((7, 5, 2)), rng.standard_normal((7, 5, 2))
    e = bp.estimate("three-factor", spec, pn, u, y, dtype="float64", seed=4, tau_e=0.05)
    h = OnlineHandle(make_online(RuleSpec(name="three-factor", tau_e=0.05), "rate", spec.dt),
                     None, 1, 5, spec.dt)  # fmt: skip
    tt = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    res = h.estimate(to_torch(pn, dtype=torch.float64), consts_of(spec), tt(u), tt(y), None,
                     "mse", torch_generator(4, "estimate"))  # fmt: skip
    for k, v in res.grads.items():
        np.testing.assert_array_equal(e[k], v.numpy())
    assert np.abs(e["W_rec"]).max() > 0
