"""A synthetic teacher-student task for gradient-alignment measurements (the multi-layer
seed paper's Fig. 1 used "synthetic data"; its generator is not in the authors' code, so
this one is ours, documented in docs/reproduction-multilayer.md).

Inputs have correlated features (so decorrelation has something to remove)::

    x = √(1 − ρ) g + √ρ M s ,   g ~ N(0, I_n),  s ~ N(0, I_k),  k = ⌈n/4⌉

with M random Gaussian, rows scaled to unit norm: every feature has unit variance and
features i, j correlate by ρ M_i·M_j

and a fixed random teacher, a tanh MLP with layer sizes [n_in, *teacher_hidden, n_out] and
weights N(0, 1/fan_in), gives the target::

    regression:  y = teacher(x)                    (MSE: ½‖o − y‖²)
    class:       y = one_hot(argmax teacher(x))    (softmax cross-entropy)

Training batches are fresh draws from the generator passed in (infinite data); the test
split is a fixed set drawn from the task's own ``seed``. The teacher and M come from
``seed``. Batches are T = 1 sequences: inputs [1, B, n_in], targets [1, B, n_out].
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..random import numpy_rng
from .args import int_arg
from .base import Batch, Task, step_losses
from .digits import classification_metrics


class SyntheticTask(Task):
    """Teacher-student regression or classification with correlated inputs."""

    name: ClassVar[str] = "synthetic"
    loss: ClassVar[str] = "mse"
    metric: ClassVar[str] = "mse"
    lower_is_better: ClassVar[bool] = True

    def __init__(
        self,
        n_in: int = 32,
        n_out: int = 10,
        teacher_hidden: list[int] | None = None,
        correlation: float = 0.5,
        target: str = "regression",
        seed: int = 0,
    ) -> None:
        self.n_in = int_arg("n_in", n_in, 1)
        self.n_out = int_arg("n_out", n_out, 1)
        hidden = [64] if teacher_hidden is None else list(teacher_hidden)
        self.teacher_hidden = [int_arg("teacher_hidden", h, 1) for h in hidden]
        if not isinstance(correlation, int | float) or not 0.0 <= correlation < 1.0:
            raise ValueError(f"correlation must be in [0, 1) (got {correlation!r})")
        self.correlation = float(correlation)
        if target not in ("regression", "class"):
            raise ValueError(f"target must be 'regression' or 'class' (got {target!r})")
        self.target = target
        if target == "class":
            self.loss, self.metric, self.lower_is_better = "ce", "accuracy", False  # type: ignore[misc]
        self.seed = int_arg("seed", seed, 0)
        rng = numpy_rng(self.seed, "synthetic", "teacher")
        self.k = -(-self.n_in // 4)
        M = rng.standard_normal((self.n_in, self.k))
        self.M = M / np.linalg.norm(M, axis=1, keepdims=True)
        sizes = [self.n_in, *self.teacher_hidden, self.n_out]
        self.teacher = [
            rng.standard_normal((sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])
            for i in range(len(sizes) - 1)
        ]
        self._test: dict[int, Batch] = {}

    def inputs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """x [n, n_in] (module docstring)."""
        g = rng.standard_normal((n, self.n_in))
        s = rng.standard_normal((n, self.k))
        rho = self.correlation
        return np.sqrt(1 - rho) * g + np.sqrt(rho) * s @ self.M.T

    def teach(self, x: np.ndarray) -> np.ndarray:
        h = x
        for i, W in enumerate(self.teacher):
            h = h @ W.T
            if i < len(self.teacher) - 1:
                h = np.tanh(h)
        if self.target == "class":
            return np.eye(self.n_out)[h.argmax(-1)]
        return h

    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        if split == "test":
            if batch_size not in self._test:
                x = self.inputs(batch_size, numpy_rng(self.seed, "synthetic", "test"))
                self._test[batch_size] = Batch(x[None], self.teach(x)[None], None)
            return self._test[batch_size]
        x = self.inputs(batch_size, rng)
        return Batch(x[None], self.teach(x)[None], None)

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        if self.target == "class":
            return classification_metrics(outputs, batch.targets)
        return {"mse": float(step_losses("mse", outputs, batch.targets).mean())}
