"""Mackey–Glass: the generator against the paper's loop, the two modes, splits and metrics."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from bioplaus.loss import mean_loss
from bioplaus.tasks import MackeyGlassTask
from bioplaus.tasks.mackey_glass import TRANSIENT, mackey_glass


def _paper_loop(history: np.ndarray, n_steps: int, tau: int = 17, delta_t: int = 10) -> np.ndarray:
    """``mackey_glass_sequence`` of the seed paper's datasets.py for one given history."""
    hist = collections.deque(history.tolist())
    x = 1.2
    out = np.zeros(n_steps)
    for t in range(n_steps):
        for _ in range(delta_t):
            x_tau = hist.popleft()
            hist.append(x)
            x = hist[-1] + (0.2 * x_tau / (1.0 + x_tau**10) - 0.1 * hist[-1]) / delta_t
        out[t] = x
    return out


def test_generator_matches_the_papers_loop():
    n = 300
    x = mackey_glass(n, 3, np.random.default_rng(0))
    hist = 1.2 + 0.2 * (np.random.default_rng(0).random((3, 170)) - 0.5)
    assert x.shape == (n, 3)
    for b in range(3):
        np.testing.assert_allclose(x[:, b], _paper_loop(hist[b], n), rtol=0, atol=1e-10)


def test_series_does_not_depend_on_batch_size():
    one = mackey_glass(200, 1, np.random.default_rng(4))
    three = mackey_glass(200, 3, np.random.default_rng(4))
    np.testing.assert_array_equal(one[:, 0], three[:, 0])


def test_bounded_centred_and_chaotic_looking():
    task = MackeyGlassTask(length=1500)
    s = task.series(3, np.random.default_rng(0))
    assert s.shape == (1500 + 15, 3)
    assert abs(s.mean()) < 1e-12  # centred over the batch
    assert np.ptp(s) < 2.0 and np.abs(s).max() < 2.0  # within the tanh range, shifted by the mean
    assert 0.1 < s.std() < 0.35
    for b in range(3):  # irregular: many different peak heights (no fixed point, no cycle)
        x = s[:, b]
        peaks = x[1:-1][(x[1:-1] > x[:-2]) & (x[1:-1] > x[2:])]
        assert len(peaks) > 20
        assert len(np.unique(np.round(peaks, 3))) > 15
    assert not np.allclose(s[:, 0], s[:, 1], atol=0.05)


def test_shapes_and_mask():
    task = MackeyGlassTask(length=200)
    assert task.n_in == task.n_out == 1
    assert task.loss == "mse" and task.metric == "nrmse" and task.lower_is_better
    b = task.sample(4, np.random.default_rng(0))
    assert b.inputs.shape == b.targets.shape == (200, 4, 1)
    assert b.mask is None
    w = MackeyGlassTask(length=200, washout=30).sample(2, np.random.default_rng(0))
    assert w.mask.shape == (200, 2)
    np.testing.assert_array_equal(w.mask[:30], 0.0)
    np.testing.assert_array_equal(w.mask[30:], 1.0)


def test_delayed_recall_target_is_input_shifted_by_15():
    """u(t) = s(t + 15), y(t) = s(t): the target at t + 15 is the input at t."""
    task = MackeyGlassTask(length=300)
    assert task.mode == "delayed_recall" and task.shift == 15
    b = task.sample(2, np.random.default_rng(0))
    np.testing.assert_array_equal(b.targets[15:], b.inputs[:-15])


@pytest.mark.parametrize("k", [1, 7])
def test_forecast_target_is_input_k_steps_ahead(k):
    """u(t) = s(t), y(t) = s(t + k)."""
    task = MackeyGlassTask(length=300, mode="forecast", horizon=k)
    b = task.sample(2, np.random.default_rng(0))
    np.testing.assert_array_equal(b.targets[:-k], b.inputs[k:])
    recall = MackeyGlassTask(length=300, shift=k).sample(2, np.random.default_rng(0))
    np.testing.assert_array_equal(b.inputs, recall.targets)  # same series, roles swapped
    np.testing.assert_array_equal(b.targets, recall.inputs)


def test_forecast_default_horizon_is_one():
    task = MackeyGlassTask(length=50, mode="forecast")
    assert task.horizon == 1 and task.shift is None


def test_test_split_is_fixed_and_held_out():
    task = MackeyGlassTask(length=300, seed=3)
    t1 = task.sample(2, np.random.default_rng(0), split="test")
    t2 = task.sample(2, np.random.default_rng(1), split="test")
    t3 = MackeyGlassTask(length=300, seed=3).sample(2, np.random.default_rng(2), split="test")
    np.testing.assert_array_equal(t1.inputs, t2.inputs)
    np.testing.assert_array_equal(t1.targets, t3.targets)
    train = task.sample(2, np.random.default_rng(0))
    assert not np.allclose(t1.inputs, train.inputs, atol=0.05)
    t1.inputs[:] = 0.0  # the cached test batch is not shared with callers
    assert np.abs(task.sample(2, np.random.default_rng(0), split="test").inputs).max() > 0
    other = MackeyGlassTask(length=300, seed=4).sample(2, np.random.default_rng(0), split="test")
    assert not np.allclose(other.inputs, t2.inputs, atol=0.05)


def test_train_determinism_given_seeded_rng():
    task = MackeyGlassTask(length=200)
    a = task.sample(3, np.random.default_rng(11))
    b = task.sample(3, np.random.default_rng(11))
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.targets, b.targets)
    rng = np.random.default_rng(11)
    c, d = task.sample(3, rng), task.sample(3, rng)
    assert not np.allclose(c.inputs, d.inputs, atol=0.05)


def test_nrmse_of_oracle_and_of_zero():
    task = MackeyGlassTask(length=1000, mode="forecast", horizon=2)
    b = task.sample(4, np.random.default_rng(0))
    oracle = task.metrics(b.targets.copy(), b)
    assert oracle["nrmse"] == 0.0 and oracle["mse"] == 0.0
    zero = task.metrics(np.zeros_like(b.targets), b)
    assert zero["nrmse"] == pytest.approx(1.0, abs=0.01)  # the series is centred
    assert zero["mse"] == pytest.approx(0.5 * np.mean(b.targets**2))


def test_washout_steps_are_not_scored():
    task = MackeyGlassTask(length=400, washout=50)
    b = task.sample(2, np.random.default_rng(0))
    o = b.targets.copy()
    o[:50] = 10.0
    assert task.metrics(o, b) == {"nrmse": 0.0, "mse": 0.0}
    o[60] += 1.0
    assert task.metrics(o, b)["mse"] > 0


def test_mse_matches_bioplaus_loss_with_mask():
    task = MackeyGlassTask(length=300, washout=40)
    b = task.sample(3, np.random.default_rng(0))
    o = np.random.default_rng(1).standard_normal(b.targets.shape)
    ref = mean_loss("mse", *(torch.as_tensor(a) for a in (o, b.targets, b.mask)))
    assert task.metrics(o, b)["mse"] == pytest.approx(float(ref))


def test_generation_of_a_long_batch():
    # its speed (under 1 s on 2 cores) is a benchmark: benchmarks/bench_tasks.py
    task = MackeyGlassTask(length=2000)
    b = task.sample(32, np.random.default_rng(0))
    assert b.inputs.shape == (2000, 32, 1)
    assert np.isfinite(b.inputs).all() and np.isfinite(b.targets).all()


def test_transient_is_dropped():
    task = MackeyGlassTask(length=100, mode="forecast")
    s = task.series(2, np.random.default_rng(5))
    raw = np.tanh(mackey_glass(TRANSIENT + 101, 2, np.random.default_rng(5))[TRANSIENT:] - 1.0)
    np.testing.assert_allclose(s, raw - raw.mean())


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"length": 0}, "length"),
        ({"mode": "predict"}, "mode"),
        ({"shift": 0}, "shift"),
        ({"mode": "forecast", "horizon": 0}, "horizon"),
        ({"horizon": 2}, "horizon"),
        ({"washout": -1}, "washout"),
        ({"length": 20, "washout": 20}, "washout"),
        ({"seed": -2}, "seed"),
    ],
)
def test_invalid_arguments_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=name):
        MackeyGlassTask(**kw)


def test_sample_validates_batch_size_and_split():
    task = MackeyGlassTask(length=50)
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="split"):
        task.sample(1, np.random.default_rng(0), split="valid")
