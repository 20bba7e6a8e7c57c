"""Delayed non-match to sample: trial structure, trial types, and an optimal policy."""

from __future__ import annotations

import numpy as np
import pytest

from bioplaus.tasks import TASKS, DelayedMatchTask, make_task


def test_registered_with_miconi_timing():
    assert TASKS["delayed_match"] is DelayedMatchTask
    task = make_task("delayed_match")
    assert (task.n_in, task.n_out, task.n_trial_types) == (2, 1, 4)
    assert task.metric == "accuracy" and not task.lower_is_better
    # 100 ms fixation, then Miconi's 200 ms sample, delay, test and response at dt = 10 ms
    assert task.periods == {
        "fixation": (0, 10),
        "sample": (10, 30),
        "delay": (30, 50),
        "test": (50, 70),
        "response": (70, 90),
    }
    assert task.T == 90


def test_trial_structure():
    task = DelayedMatchTask(dt=0.02)
    b = task.sample(64, np.random.default_rng(0))
    assert b.inputs.shape == (task.T, 64, 2) and b.targets.shape == (task.T, 64, 1)
    u, y, m = b.inputs, b.targets[..., 0], b.mask
    for name in ("fixation", "delay", "response"):
        assert not u[task.period(name)].any(), name
    for name in ("sample", "test"):
        on = u[task.period(name)]
        np.testing.assert_array_equal(on.sum(-1), 1.0)  # exactly one stimulus, all period
        assert (on == on[:1]).all()  # constant over the period
    np.testing.assert_array_equal(m, (np.arange(task.T) >= 35)[:, None] * np.ones((1, 64)))
    assert not y[m == 0].any()
    s = u[task.period("sample")][0].argmax(-1)
    t = u[task.period("test")][0].argmax(-1)
    want = np.where(s == t, -1.0, 1.0)  # non-match: +1 when they differ
    np.testing.assert_array_equal(y[task.period("response")], np.broadcast_to(want, (10, 64)))
    np.testing.assert_array_equal(task.trial_type(b), 2 * s + t)


def test_match_variant_flips_the_target():
    a = DelayedMatchTask(match=False).sample(8, np.random.default_rng(1))
    b = DelayedMatchTask(match=True).sample(8, np.random.default_rng(1))
    np.testing.assert_array_equal(a.targets, -b.targets)


def test_trial_types_are_balanced():
    task = DelayedMatchTask()
    types = task.trial_type(task.sample(4000, np.random.default_rng(2)))
    np.testing.assert_allclose(np.bincount(types, minlength=4) / 4000, 0.25, atol=0.03)


def test_optimal_policy_scores_perfectly_and_chance_does_not():
    task = DelayedMatchTask()
    b = task.sample(200, np.random.default_rng(3))
    u = b.inputs
    s = u[task.period("sample")].sum(0).argmax(-1)
    t = u[task.period("test")].sum(0).argmax(-1)
    o = np.zeros_like(b.targets)
    o[task.period("response"), :, 0] = np.where(s != t, 0.9, -0.9)  # policy from the inputs
    m = task.metrics(o, b)
    assert m["accuracy"] == 1.0 and m["mse"] == pytest.approx(0.5 * 0.1**2)
    assert m["reward"] == pytest.approx(-m["mse"])
    assert task.metrics(b.targets, b)["accuracy"] == 1.0
    silent = task.metrics(np.zeros_like(b.targets), b)
    assert silent["mse"] == pytest.approx(0.5)
    guess = task.metrics(-o, b)
    assert guess["accuracy"] == 0.0


def test_splits_and_seeds():
    task = DelayedMatchTask(seed=4)
    t1 = task.sample(16, np.random.default_rng(0), split="test")
    t2 = task.sample(16, np.random.default_rng(9), split="test")
    np.testing.assert_array_equal(t1.inputs, t2.inputs)
    a = task.sample(16, np.random.default_rng(5))
    b = task.sample(16, np.random.default_rng(5))
    np.testing.assert_array_equal(a.inputs, b.inputs)
    with pytest.raises(ValueError, match="split"):
        task.sample(2, np.random.default_rng(0), split="val")


@pytest.mark.parametrize(
    ("kw", "name"),
    [({"dt": 0}, "dt"), ({"sample": -0.1}, "sample"), ({"response": 0.0}, "response"),
     ({"match": "no"}, "match"), ({"seed": -1}, "seed")],
)  # fmt: skip
def test_invalid_options_name_the_option(kw, name):
    with pytest.raises(ValueError, match=name):
        DelayedMatchTask(**kw)
