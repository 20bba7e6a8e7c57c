"""Sequential digits: scikit-learn's 8×8 digits (offline) read out over time, the stand-in
for the RNN seed paper's (permuted) sequential MNIST.

1797 images, 64 pixels p ∈ {0 … 16} scaled to x = p/16 ∈ [0, 1] (as psMNIST scales by
1/255); a fixed split of ``n_test`` images (drawn with the task's ``seed``) is held out.
An optional fixed pixel permutation π (``permute=True``, drawn from the task's own
generator, psMNIST-like) reorders the 64 pixels before they are streamed. Then

    mode "rows"  :  T = 8,  u_t = x_π[8t : 8t + 8]  (8 inputs per step)
    mode "pixels":  T = 64, u_t = x_π[t]            (1 input per step)

The target is the one-hot label e_c ∈ R^10 on the last step only (mask m_t = [t = T − 1]),
so the loss is that of the final output:

    mse:  ℓ = ½ ‖o_{T−1} − e_c‖²     (the paper's MSE on the final output, up to its 2/10)
    ce :  ℓ = −log softmax(o_{T−1})_c

Train batches draw images from the training split with the generator passed in; the test
split is the fixed held-out set in a fixed order (its first ``batch_size`` images).

Metrics of outputs o [T, B, 10]: accuracy = mean [argmax o_{T−1} = c], plus the loss
(``mse`` or ``ce``) of the last step.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..random import numpy_rng
from .args import bool_arg, int_arg
from .base import Batch, Task, checked_outputs, step_losses
from .digits import digit_images

MODES = ("rows", "pixels")
LOSSES = ("mse", "ce")
N_CLASSES = 10


class SeqDigitsTask(Task):
    """Classify an 8×8 digit streamed row by row (T = 8) or pixel by pixel (T = 64)."""

    name: ClassVar[str] = "seq_digits"
    metric: ClassVar[str] = "accuracy"
    lower_is_better: ClassVar[bool] = False

    def __init__(
        self,
        mode: str = "rows",
        permute: bool = False,
        loss: str = "mse",
        n_test: int = 497,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} (got {mode!r})")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES} (got {loss!r})")
        self.mode, self.permute = mode, bool_arg("permute", permute)
        self.loss = loss  # instance value of Task.loss: the task is scored with this loss
        self.n_test = int_arg("n_test", n_test, 1)
        self.seed = int_arg("seed", seed, 0)
        X, labels = digit_images(self.n_test)
        self.perm = (
            numpy_rng(self.seed, "seq_digits", "permutation").permutation(64)
            if self.permute
            else np.arange(64)
        )
        X = X[:, self.perm]
        split = numpy_rng(self.seed, "seq_digits", "split").permutation(len(X))
        test, train = split[: self.n_test], split[self.n_test :]
        self._data = {"train": (X[train], labels[train]), "test": (X[test], labels[test])}
        self.T, self.n_in = (8, 8) if mode == "rows" else (64, 1)
        self.n_out = N_CLASSES

    def __repr__(self) -> str:
        return (
            f"SeqDigitsTask(mode={self.mode!r}, permute={self.permute}, loss={self.loss!r}, "
            f"n_test={self.n_test}, seed={self.seed})"
        )

    def data(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """The whole split: (permuted) pixels [n, 64] in [0, 1], integer labels [n]."""
        if split not in self._data:
            raise ValueError(f"split must be 'train' or 'test' (got {split!r})")
        return self._data[split]

    def trial(self, pixels: np.ndarray, labels: np.ndarray) -> Batch:
        """The batch for images [B, 64] (already permuted) and labels [B]."""
        B = len(labels)
        u = pixels.reshape(B, self.T, self.n_in).transpose(1, 0, 2)
        y = np.zeros((self.T, B, N_CLASSES))
        y[-1] = np.eye(N_CLASSES)[labels]
        m = np.zeros((self.T, B))
        m[-1] = 1.0
        return Batch(np.ascontiguousarray(u), y, m)

    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        """B trials: inputs [T, B, n_in], targets [T, B, 10] (label on the last step),
        mask [T, B] (1 on the last step only)."""
        B = int_arg("batch_size", batch_size, 1)
        X, lab = self.data(split)
        if split == "test":
            idx = np.arange(min(B, len(X)))
        else:
            idx = rng.choice(len(X), size=B, replace=len(X) < B)
        return self.trial(X[idx], lab[idx])

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """accuracy of the last step's argmax, and its mse (½‖o − y‖²) or ce."""
        o, y = checked_outputs(outputs, batch)
        o_last, y_last = o[-1], y[-1]
        out = {"accuracy": float((o_last.argmax(-1) == y_last.argmax(-1)).mean())}
        out[self.loss] = float(step_losses(self.loss, o_last, y_last).mean())
        return out
