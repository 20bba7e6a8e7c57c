"""Pattern generation: cue, fixed targets from the seed, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from bioplaus.tasks import TASKS, PatternTask


def test_registered_and_structure():
    assert TASKS["pattern"] is PatternTask
    task = PatternTask(n_patterns=3)
    assert (task.n_in, task.n_out, task.n_trial_types) == (3, 1, 3)
    assert task.metric == "r2" and not task.lower_is_better
    assert task.periods == {"fixation": (0, 5), "cue": (5, 10), "pattern": (10, 60)}
    b = task.sample(30, np.random.default_rng(0))
    u, y, m = b.inputs, b.targets, b.mask
    assert not u[task.period("fixation")].any() and not u[task.period("pattern")].any()
    np.testing.assert_array_equal(u[task.period("cue")].sum(-1), 1.0)
    assert not y[:10].any() and (m[10:] == 1).all() and (m[:10] == 0).all()
    k = task.trial_type(b)
    np.testing.assert_array_equal(y[10:, :, 0], task.patterns[k].T)
    np.testing.assert_allclose(np.abs(task.patterns).max(1), 1.0)


def test_patterns_are_fixed_by_the_seed():
    a, b = PatternTask(seed=1), PatternTask(seed=1)
    np.testing.assert_array_equal(a.patterns, b.patterns)
    assert not np.allclose(a.patterns, PatternTask(seed=2).patterns)
    assert not np.allclose(a.patterns[0], a.patterns[1])


def test_optimal_policy_scores_perfectly():
    task = PatternTask(n_patterns=2)
    b = task.sample(20, np.random.default_rng(1))
    m = task.metrics(b.targets, b)
    assert m["r2"] == 1.0 and m["mse"] == 0.0 and m["accuracy"] == 1.0
    swapped = b.targets.copy()
    swapped[task.period("pattern"), :, 0] = task.patterns[1 - task.trial_type(b)].T
    assert task.metrics(swapped, b)["accuracy"] == 0.0
    flat = task.metrics(np.zeros_like(b.targets), b)
    assert flat["r2"] < 0.0  # predicting 0 is worse than predicting the trial mean
    mean = b.targets.copy()
    sl = task.period("pattern")
    mean[sl] = b.targets[sl].mean(0, keepdims=True)
    assert task.metrics(mean, b)["r2"] == pytest.approx(0.0, abs=1e-12)


def test_options_are_checked():
    with pytest.raises(ValueError, match="n_patterns"):
        PatternTask(n_patterns=0)
    with pytest.raises(ValueError, match="cue"):
        PatternTask(cue=0.0)
