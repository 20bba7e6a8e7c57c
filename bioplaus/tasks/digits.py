"""scikit-learn's 8×8 handwritten digits (offline), the stand-in for CIFAR-10 in the
multi-layer reproduction.

1797 images, 64 pixels (0 … 16), 10 classes. A fixed split (``n_test`` images, drawn with
the task's ``seed``) is held out; pixels are scaled to x = (p/16 − μ)/s with μ, s the
per-pixel mean and standard deviation of the training split (s = 1 where a pixel is
constant). Samples are static, so a batch is a T = 1 sequence::

    inputs [1, B, 64],  targets one-hot [1, B, 10],  loss: softmax cross-entropy

A feed-forward model takes ``inputs[0]`` ([B, 64]); a recurrent one runs one step.
Train batches draw images from the training split with the generator passed in (without
replacement within a batch while the batch fits); the test split is the fixed held-out set
in a fixed order (its first ``batch_size`` images; all of them when asked for ≥ n_test).

Metrics of outputs o [1, B, 10]: accuracy = mean [argmax o = label], ce = mean −log softmax.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..random import numpy_rng
from .args import int_arg
from .base import Batch, Task, step_losses


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n)[labels]


def classification_metrics(outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """accuracy and cross-entropy of logits [..., n] against one-hot targets [..., n]."""
    o = outputs.reshape(-1, outputs.shape[-1])
    y = targets.reshape(-1, targets.shape[-1])
    return {
        "accuracy": float((o.argmax(-1) == y.argmax(-1)).mean()),
        "ce": float(step_losses("ce", o, y).mean()),
    }


def digit_images(n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8×8 digits: pixels [n, 64] in [0, 1] and integer labels [n];
    a ValueError unless ``n_test`` leaves some for training."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X, labels = d.data.astype(np.float64) / 16.0, d.target.astype(np.int64)
    if n_test >= len(X):
        raise ValueError(f"n_test must be < {len(X)} (got {n_test})")
    return X, labels


class DigitsTask(Task):
    """Classify 8×8 digits (64 inputs, 10 classes, cross-entropy)."""

    name: ClassVar[str] = "digits"
    loss: ClassVar[str] = "ce"
    metric: ClassVar[str] = "accuracy"
    lower_is_better: ClassVar[bool] = False

    def __init__(self, n_test: int = 497, seed: int = 0) -> None:
        self.n_test = int_arg("n_test", n_test, 1)
        self.seed = int_arg("seed", seed, 0)
        X, labels = digit_images(self.n_test)
        perm = numpy_rng(self.seed, "digits", "split").permutation(len(X))
        test, train = perm[: self.n_test], perm[self.n_test :]
        mu, sd = X[train].mean(0), X[train].std(0)
        sd[sd < 1e-8] = 1.0
        X = (X - mu) / sd
        self._data = {"train": (X[train], labels[train]), "test": (X[test], labels[test])}
        self.n_in, self.n_out = 64, 10

    def data(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """The whole split: features [n, 64], integer labels [n]."""
        if split not in self._data:
            raise ValueError(f"split must be 'train' or 'test' (got {split!r})")
        return self._data[split]

    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        X, lab = self.data(split)
        if split == "test":
            idx = np.arange(min(batch_size, len(X)))
        else:
            idx = rng.choice(len(X), size=batch_size, replace=batch_size > len(X))
        return Batch(X[idx][None], one_hot(lab[idx], 10)[None], None)

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        return classification_metrics(outputs, batch.targets)
