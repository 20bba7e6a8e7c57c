"""Perceptual decision making: structure, evidence statistics, ideal observer, oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bioplaus.tasks import TASKS, DecisionTask


def test_registered_and_structure():
    assert TASKS["decision"] is DecisionTask
    task = DecisionTask()
    assert (task.n_in, task.n_out, task.n_trial_types) == (3, 2, 2)
    assert task.periods == {
        "fixation": (0, 5),
        "stimulus": (5, 30),
        "delay": (30, 30),
        "decision": (30, 35),
    }
    b = task.sample(32, np.random.default_rng(0))
    u, y, m = b.inputs, b.targets, b.mask
    np.testing.assert_array_equal(u[:30, :, 0], 1.0)  # fixation cue until the go
    assert not u[30:, :, 0].any()
    assert not u[task.period("fixation"), :, 1:].any()
    assert not u[task.period("decision"), :, 1:].any()
    assert not y[:30].any() and (m[:30] == 0).all() and (m[30:] == 1).all()
    np.testing.assert_array_equal(y[30:].sum(-1), 1.0)
    np.testing.assert_array_equal(task.trial_type(b), y[-1].argmax(-1))


def test_evidence_mean_and_noise():
    task = DecisionTask(coherences=[0.5], sigma=1.0, dt=0.02)
    b = task.sample(2000, np.random.default_rng(1))
    side = task.trial_type(b)
    ev = b.inputs[task.period("stimulus"), :, 1:]  # [n, B, 2]
    right = np.take_along_axis(ev, side[None, :, None], -1)[..., 0]
    wrong = np.take_along_axis(ev, 1 - side[None, :, None], -1)[..., 0]
    assert right.mean() == pytest.approx(0.75, abs=0.01)
    assert wrong.mean() == pytest.approx(0.25, abs=0.01)
    assert right.std() == pytest.approx(1 / math.sqrt(20), rel=0.02)  # σ/√(dt / 1 ms)


def _ideal(task, b):
    ev = b.inputs[task.period("stimulus"), :, 1:]
    return (ev[..., 1] - ev[..., 0]).sum(0) > 0


def test_ideal_observer_matches_its_closed_form():
    """P(correct) = Φ(c √n / (√2 σ_dt)) for n stimulus steps."""
    for c in (0.032, 0.128):
        task = DecisionTask(coherences=[c])
        b = task.sample(20000, np.random.default_rng(2))
        acc = (_ideal(task, b).astype(int) == task.trial_type(b)).mean()
        n = 25
        z = c * math.sqrt(n) / (math.sqrt(2) * task.sigma_dt)
        want = 0.5 * (1 + math.erf(z / math.sqrt(2)))
        assert acc == pytest.approx(want, abs=0.012)


def test_optimal_policy_scores_about_100_percent_on_strong_evidence():
    task = DecisionTask(coherences=[0.512])
    b = task.sample(500, np.random.default_rng(3))
    o = np.zeros_like(b.targets)
    o[task.period("decision")] = np.eye(2)[_ideal(task, b).astype(int)]
    assert task.metrics(o, b)["accuracy"] >= 0.99
    assert task.metrics(b.targets, b) == {"accuracy": 1.0, "mse": 0.0}
    # zero coherence: the evidence says nothing, the ideal observer is at chance
    t0 = DecisionTask(coherences=[0.0])
    b0 = t0.sample(4000, np.random.default_rng(4))
    assert (_ideal(t0, b0).astype(int) == t0.trial_type(b0)).mean() == pytest.approx(0.5, abs=0.03)


def test_test_split_is_fixed_and_options_are_checked():
    task = DecisionTask()
    a = task.sample(8, np.random.default_rng(0), split="test")
    b = task.sample(8, np.random.default_rng(1), split="test")
    np.testing.assert_array_equal(a.inputs, b.inputs)
    with pytest.raises(ValueError, match="coherences"):
        DecisionTask(coherences=[])
    with pytest.raises(ValueError, match="coherences"):
        DecisionTask(coherences=[2.0])
    with pytest.raises(ValueError, match="sigma"):
        DecisionTask(sigma=-1.0)
