"""Context-dependent integration (Mante 2013): structure, context gating, oracle."""

from __future__ import annotations

import numpy as np
import pytest

from bioplaus.tasks import TASKS, ContextTask


def test_registered_and_structure():
    assert TASKS["context"] is ContextTask
    task = ContextTask()
    assert (task.n_in, task.n_out, task.n_trial_types) == (7, 2, 4)
    b = task.sample(64, np.random.default_rng(0))
    u, y, m = b.inputs, b.targets, b.mask
    go = task.periods["decision"][0]
    np.testing.assert_array_equal(u[:go, :, 0], 1.0)
    np.testing.assert_array_equal(u[:go, :, 1:3].sum(-1), 1.0)  # one context, constant
    assert (u[:go, :, 1:3] == u[:1, :, 1:3]).all()
    assert not u[go:].any()  # everything off at the go cue
    assert not u[task.period("fixation"), :, 3:].any()
    assert (m[go:] == 1).all() and (m[:go] == 0).all() and not y[:go].any()
    types = task.trial_type(b)
    np.testing.assert_array_equal(types // 2, u[0, :, 1:3].argmax(-1))
    np.testing.assert_array_equal(types % 2, y[-1].argmax(-1))


def _integrate(task, b, modality):
    ev = b.inputs[task.period("stimulus"), :, 3 + 2 * modality : 5 + 2 * modality]
    return ((ev[..., 1] - ev[..., 0]).sum(0) > 0).astype(int)


def test_the_context_names_the_modality_to_follow():
    task = ContextTask(coherences=[0.5], sigma=0.5)
    b = task.sample(2000, np.random.default_rng(1))
    ctx = b.inputs[0, :, 1:3].argmax(-1)
    correct = task.trial_type(b) % 2
    relevant = np.where(ctx == 0, _integrate(task, b, 0), _integrate(task, b, 1))
    irrelevant = np.where(ctx == 0, _integrate(task, b, 1), _integrate(task, b, 0))
    assert (relevant == correct).mean() >= 0.99  # the optimal, context-gated policy
    assert (irrelevant == correct).mean() == pytest.approx(0.5, abs=0.04)  # wrong modality
    o = np.zeros_like(b.targets)
    o[task.period("decision")] = np.eye(2)[relevant]
    assert task.metrics(o, b)["accuracy"] >= 0.99
    assert task.metrics(b.targets, b)["accuracy"] == 1.0


def test_modalities_are_drawn_independently():
    task = ContextTask(sigma=0.0)
    b = task.sample(4000, np.random.default_rng(2))
    m, c = _integrate(task, b, 0), _integrate(task, b, 1)
    assert (m == c).mean() == pytest.approx(0.5, abs=0.03)
    types = task.trial_type(b)
    np.testing.assert_allclose(np.bincount(types, minlength=4) / 4000, 0.25, atol=0.03)
