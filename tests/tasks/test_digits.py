"""Digits (scikit-learn, offline) and the synthetic teacher-student task."""

from __future__ import annotations

import numpy as np
import pytest

from bioplaus.tasks import make_task


def test_digits_split_shapes_and_standardisation():
    t = make_task("digits", seed=0)
    Xtr, ltr = t.data("train")
    Xte, lte = t.data("test")
    assert Xtr.shape == (1797 - 497, 64) and Xte.shape == (497, 64)
    assert np.allclose(Xtr.mean(0), 0, atol=1e-9)
    b = t.sample(8, np.random.default_rng(0))
    assert b.inputs.shape == (1, 8, 64) and b.targets.shape == (1, 8, 10) and b.mask is None
    assert np.allclose(b.targets.sum(-1), 1)
    full = t.sample(10_000, np.random.default_rng(0), split="test")
    assert full.inputs.shape == (1, 497, 64)
    np.testing.assert_array_equal(full.targets[0].argmax(-1), lte)


def test_digits_split_depends_on_seed_and_metrics():
    a, b = make_task("digits", seed=0), make_task("digits", seed=1)
    assert not np.array_equal(a.data("test")[1], b.data("test")[1])
    batch = a.sample(50, np.random.default_rng(0), split="test")
    perfect = a.metrics(batch.targets * 20.0, batch)
    assert perfect["accuracy"] == 1.0 and perfect["ce"] < 1e-6
    with pytest.raises(ValueError, match="n_test"):
        make_task("digits", n_test=0)


def test_synthetic_task_is_correlated_and_deterministic():
    t = make_task("synthetic", n_in=16, n_out=4, correlation=0.8, seed=3)
    x = t.inputs(20_000, np.random.default_rng(0))
    C = np.corrcoef(x.T)
    assert np.abs(C[np.triu_indices(16, 1)]).mean() > 0.1
    assert np.allclose(np.diag(np.cov(x.T)), 1.0, atol=0.05)
    b1 = t.sample(5, np.random.default_rng(1), split="test")
    b2 = t.sample(5, np.random.default_rng(2), split="test")
    np.testing.assert_array_equal(b1.inputs, b2.inputs)
    assert b1.targets.shape == (1, 5, 4)
    c = make_task("synthetic", target="class", n_out=4)
    assert c.loss == "ce" and c.metric == "accuracy"
    with pytest.raises(ValueError, match="correlation"):
        make_task("synthetic", correlation=1.5)
