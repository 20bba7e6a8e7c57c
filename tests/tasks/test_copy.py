"""The copy task: layout as in the seed paper's ``generate_copy_data``, and its metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bioplaus.loss import mean_loss
from bioplaus.tasks import CopyTask

L, D, K = 6, 3, 4  # length, delay, n_symbols of the small task used below


def _task(**kw) -> CopyTask:
    return CopyTask(**{"length": L, "delay": D, "n_symbols": K, **kw})


def test_paper_defaults():
    task = CopyTask()
    assert (task.length, task.delay, task.n_symbols) == (100, 10, 8)
    assert task.n_in == task.n_out == 10
    b = task.sample(1, np.random.default_rng(0))
    assert b.inputs.shape == b.targets.shape == (210, 1, 10)
    assert task.loss == "mse" and task.metric == "error_bits" and task.lower_is_better


def test_shapes_and_one_hot():
    task = _task()
    b = task.sample(5, np.random.default_rng(0))
    T = 2 * L + D
    assert b.inputs.shape == b.targets.shape == (T, 5, K + 2)
    assert b.mask is None
    for a in (b.inputs, b.targets):
        assert set(np.unique(a)) <= {0.0, 1.0}
        np.testing.assert_array_equal(a.sum(-1), 1.0)


def test_layout():
    """input: s_1..s_L | 0 × D | marker × L ;  target: 0 × (L + D) | s_1..s_L."""
    task = _task()
    b = task.sample(7, np.random.default_rng(1))
    c_in, c_out = b.inputs.argmax(-1), b.targets.argmax(-1)
    symbols = c_in[:L]
    assert symbols.min() >= 1 and symbols.max() <= K
    np.testing.assert_array_equal(c_in[L : L + D], 0)
    np.testing.assert_array_equal(c_in[L + D :], K + 1)
    np.testing.assert_array_equal(c_out[: L + D], 0)
    np.testing.assert_array_equal(c_out[L + D :], symbols)


def test_symbols_uniform_over_one_to_n_symbols():
    b = CopyTask(length=50, delay=0, n_symbols=K).sample(200, np.random.default_rng(2))
    counts = np.bincount(b.inputs[:50].argmax(-1).ravel(), minlength=K + 2)
    assert counts[0] == 0 and counts[K + 1] == 0
    freq = counts[1 : K + 1] / counts.sum()
    np.testing.assert_allclose(freq, 1 / K, atol=0.01)


def test_fresh_sequences_are_seeded_and_differ_between_batches():
    task = _task()
    a = task.sample(4, np.random.default_rng(3))
    b = task.sample(4, np.random.default_rng(3))
    np.testing.assert_array_equal(a.inputs, b.inputs)
    rng = np.random.default_rng(3)
    c, d = task.sample(4, rng), task.sample(4, rng)
    assert not np.array_equal(c.inputs, d.inputs)
    assert not np.array_equal(c.inputs[:, 0], c.inputs[:, 1])


def test_fixed_sequence_repeats_one_train_sequence_and_a_separate_test_sequence():
    task = _task(fixed_sequence=True, seed=5)
    a = task.sample(3, np.random.default_rng(0))
    b = task.sample(2, np.random.default_rng(99))
    for col in range(3):
        np.testing.assert_array_equal(a.inputs[:, col], a.inputs[:, 0])
    np.testing.assert_array_equal(a.inputs[:, 0], b.inputs[:, 0])
    test = task.sample(2, np.random.default_rng(0), split="test")
    np.testing.assert_array_equal(test.inputs[:, 0], test.inputs[:, 1])
    assert not np.array_equal(test.inputs[:, 0], a.inputs[:, 0])
    again = _task(fixed_sequence=True, seed=5).sample(1, np.random.default_rng(7), split="test")
    np.testing.assert_array_equal(again.targets[:, 0], test.targets[:, 0])
    other = _task(fixed_sequence=True, seed=6).sample(1, np.random.default_rng(0))
    assert not np.array_equal(other.inputs[:, 0], a.inputs[:, 0])


def test_test_split_is_held_out_and_deterministic():
    task = _task()
    t1 = task.sample(4, np.random.default_rng(0), split="test")
    t2 = task.sample(4, np.random.default_rng(1), split="test")
    np.testing.assert_array_equal(t1.inputs, t2.inputs)
    train = task.sample(4, np.random.default_rng(0))
    assert not np.array_equal(t1.inputs, train.inputs)


def test_oracle_scores_perfectly():
    task = _task()
    b = task.sample(4, np.random.default_rng(0))
    m = task.metrics(b.targets.copy(), b)
    assert m == {"error_bits": 0.0, "mse": 0.0, "accuracy": 1.0}


def test_all_zero_output_misses_one_bit_per_step():
    """Blank steps have target e_0, so silence misses one 1 at every one of the T steps."""
    task = _task()
    b = task.sample(4, np.random.default_rng(0))
    m = task.metrics(np.zeros_like(b.targets), b)
    assert m["error_bits"] == 2 * L + D
    assert m["accuracy"] == 0.0
    assert m["mse"] == pytest.approx(0.5)


def test_blank_steps_are_scored():
    task = _task()
    b = task.sample(3, np.random.default_rng(0))
    o = b.targets.copy()
    o[: L + D] = 0.0  # recall right, blanks silent
    m = task.metrics(o, b)
    assert m["error_bits"] == L + D
    assert m["accuracy"] == 1.0
    always_blank = np.zeros_like(o)
    always_blank[..., 0] = 1.0  # wrong 1 at class 0 and missed symbol: 2 bits per recall step
    assert task.metrics(always_blank, b)["error_bits"] == 2 * L


def test_error_bits_are_per_sequence():
    task = _task(fixed_sequence=True)
    for B in (1, 5):
        b = task.sample(B, np.random.default_rng(0))
        o = b.targets.copy()
        o[L + D, :, :] = 0.0  # one recall step silent in every sequence
        assert task.metrics(o, b)["error_bits"] == 1.0


def test_threshold_is_one_half():
    task = _task()
    b = task.sample(2, np.random.default_rng(0))
    assert task.metrics(0.5 * b.targets, b)["error_bits"] == 0.0
    assert task.metrics(0.49 * b.targets, b)["error_bits"] == 2 * L + D


def test_mse_matches_bioplaus_loss():
    task = _task()
    b = task.sample(3, np.random.default_rng(0))
    o = np.random.default_rng(1).standard_normal(b.targets.shape)
    ref = mean_loss("mse", torch.as_tensor(o), torch.as_tensor(b.targets), None)
    assert task.metrics(o, b)["mse"] == pytest.approx(float(ref))


def test_argmax_accuracy_on_recall_steps():
    task = _task()
    b = task.sample(2, np.random.default_rng(0))
    o = b.targets.copy()
    o[L + D : L + D + 3, 0] = np.roll(o[L + D : L + D + 3, 0], 1, axis=-1)  # 3 of 2L wrong
    assert task.metrics(o, b)["accuracy"] == pytest.approx(1 - 3 / (2 * L))


def test_metrics_reject_wrong_shape():
    task = _task()
    b = task.sample(2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        task.metrics(b.targets[:-1], b)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"length": 0}, "length"),
        ({"delay": -1}, "delay"),
        ({"n_symbols": 0}, "n_symbols"),
        ({"length": 2.5}, "length"),
        ({"seed": -1}, "seed"),
        ({"fixed_sequence": "yes"}, "fixed_sequence"),
    ],
)
def test_invalid_arguments_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=name):
        CopyTask(**kw)


def test_message_format():
    with pytest.raises(ValueError, match=r"^length must be >= 1 \(got 0\)$"):
        CopyTask(length=0)


def test_sample_validates_batch_size_and_split():
    task = _task()
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="split"):
        task.sample(1, np.random.default_rng(0), split="val")
