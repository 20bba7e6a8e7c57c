"""Sequential digits (scikit-learn 8×8, offline): shapes, permutation, split, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from bioplaus.tasks import SeqDigitsTask, make_task


def test_rows_mode_streams_the_image_row_by_row():
    t = make_task("seq_digits", seed=0)
    assert isinstance(t, SeqDigitsTask) and (t.T, t.n_in, t.n_out) == (8, 8, 10)
    b = t.sample(5, np.random.default_rng(0))
    assert b.inputs.shape == (8, 5, 8) and b.targets.shape == (8, 5, 10)
    # row t of the image is the input at step t
    img = b.inputs.transpose(1, 0, 2).reshape(5, 64)
    X, _ = t.data("train")
    assert all(any(np.array_equal(row, x) for x in X) for row in img)
    assert b.inputs.min() >= 0.0 and b.inputs.max() <= 1.0
    # label on the last step only, and only the last step is scored
    np.testing.assert_array_equal(b.mask[:-1], 0.0)
    np.testing.assert_array_equal(b.mask[-1], 1.0)
    assert np.all(b.targets[:-1] == 0) and np.allclose(b.targets[-1].sum(-1), 1.0)


def test_pixels_mode_and_fixed_permutation():
    plain = make_task("seq_digits", mode="pixels", seed=0)
    perm = make_task("seq_digits", mode="pixels", permute=True, seed=0)
    assert (plain.T, plain.n_in) == (64, 1)
    b0 = plain.sample(7, np.random.default_rng(0), split="test")
    b1 = perm.sample(7, np.random.default_rng(0), split="test")
    assert b0.inputs.shape == (64, 7, 1)
    # the same test images, pixels reordered by one fixed permutation π: x_π[t] = x[π[t]]
    np.testing.assert_array_equal(b1.inputs[:, :, 0], b0.inputs[perm.perm, :, 0])
    assert not np.array_equal(perm.perm, np.arange(64))
    np.testing.assert_array_equal(perm.perm, make_task("seq_digits", permute=True, seed=0).perm)
    assert not np.array_equal(perm.perm, make_task("seq_digits", permute=True, seed=1).perm)


def test_split_is_fixed_disjoint_and_seeded():
    t = make_task("seq_digits", n_test=300, seed=0)
    (Xtr, _), (Xte, lte) = t.data("train"), t.data("test")
    assert len(Xtr) == 1797 - 300 and len(Xte) == 300
    full = t.sample(10_000, np.random.default_rng(5), split="test")
    np.testing.assert_array_equal(full.targets[-1].argmax(-1), lte)
    a = make_task("seq_digits", seed=0).data("test")[1]
    assert not np.array_equal(a, make_task("seq_digits", seed=1).data("test")[1])


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_metrics_score_the_last_step(loss):
    t = make_task("seq_digits", loss=loss, seed=0)
    assert t.loss == loss
    b = t.sample(40, np.random.default_rng(1), split="test")
    perfect = t.metrics(b.targets * (20.0 if loss == "ce" else 1.0), b)
    assert perfect["accuracy"] == 1.0 and perfect[loss] < 1e-6
    wrong = np.roll(b.targets, 1, axis=-1)
    wrong[:-1] = 5.0  # earlier steps are not scored
    assert t.metrics(wrong, b)["accuracy"] == 0.0
    if loss == "mse":
        assert t.metrics(np.zeros_like(b.targets), b)["mse"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kw", "option"),
    [({"mode": "cols"}, "mode"), ({"loss": "l1"}, "loss"), ({"n_test": 0}, "n_test")],
)
def test_invalid_options_are_named(kw, option):
    with pytest.raises(ValueError, match=option):
        make_task("seq_digits", **kw)


def test_a_rate_rnn_trains_on_it_with_the_task_loss():
    """The trainer uses the instance's loss (here ce, not the class default mse)."""
    from bioplaus.params import init_params
    from bioplaus.protocol import protocol_from_dict
    from bioplaus.runs import build_task
    from bioplaus.train.trainer import Trainer

    spec = protocol_from_dict(
        {
            "model": {"kind": "rate", "n_in": 8, "n_rec": 16, "n_out": 10, "tau": 1.0, "dt": 1.0},
            "task": {"name": "seq_digits", "loss": "ce"},
            "rule": {"name": "bptt"},
            "train": {
                "steps": 20,
                "batch_size": 32,
                "optimizer": "adam",
                "lr": 2e-2,
                "eval_batch": 200,
                "threads": 1,
            },
        }  # fmt: skip
    )
    task = build_task(spec)
    assert task.loss == "ce"
    tr = Trainer(spec, task, init_params(spec.model, seed=0))
    before = tr.evaluate()
    for _ in range(20):
        tr.step()
    after = tr.evaluate()
    assert "eval_ce" in after and after["eval_loss"] < before["eval_loss"]
    assert after["eval_accuracy"] > 0.3  # chance is 0.1
