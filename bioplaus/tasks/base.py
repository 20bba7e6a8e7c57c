"""Task interface (NeuroGym style): a small class with its own random generator.

A task makes batches of trials as numpy arrays, time-major:

    inputs [T, B, n_in], targets [T, B, n_out], mask [T, B] (1 where the step is scored)

and scores a network's outputs with its own metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, NamedTuple

import numpy as np


class Batch(NamedTuple):
    inputs: np.ndarray  # [T, B, n_in]
    targets: np.ndarray  # [T, B, n_out]
    mask: np.ndarray | None = None  # [T, B]; None = every step scored


class Task(ABC):
    """Base class. Subclasses set ``name``, ``n_in``, ``n_out``, ``loss`` and implement
    :meth:`sample` and :meth:`metrics`. Randomness comes only from the generator passed in."""

    name: ClassVar[str]
    #: "mse" (½‖o − y‖² summed over outputs) or "ce" (softmax cross-entropy)
    loss: ClassVar[str] = "mse"
    #: name of the headline metric returned by :meth:`metrics`, and whether lower is better
    metric: ClassVar[str]
    lower_is_better: ClassVar[bool] = True
    n_in: int
    n_out: int

    @abstractmethod
    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        """A batch of trials. ``split`` is "train" or "test" (held-out data where it applies)."""

    @abstractmethod
    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """Task metrics of ``outputs`` [T, B, n_out] on ``batch``; contains ``self.metric``."""


SPLITS = ("train", "test")


def check_split(split: str) -> None:
    """A ValueError unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (got {split!r})")


def split_rng(task: Task, split: str, rng: np.random.Generator) -> np.random.Generator:
    """The generator a task's :meth:`~Task.sample` draws ``split`` from: ``rng`` for
    training, the task's own fixed held-out stream (its ``seed`` and ``name``) for "test";
    a ValueError for any other split."""
    from ..random import numpy_rng

    check_split(split)
    return numpy_rng(task.seed, task.name, "test") if split == "test" else rng


def step_losses(kind: str, o: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss of each step (and trial) over the last axis, as :mod:`bioplaus.loss` scores
    it: "ce" −Σ_k y_k log softmax(o)_k, else (mse) ½ Σ_k (o_k − y_k)²."""
    if kind == "ce":
        z = o - o.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return -(y * logp).sum(-1)
    return 0.5 * ((o - y) ** 2).sum(-1)


def scored_mean(ell: np.ndarray, m: np.ndarray) -> float:
    """Σ ℓ m / max(Σ m, 1): the mean of a per-step loss ``ell`` over the scored steps
    (mask ``m``, same shape)."""
    return float((ell * m).sum() / max(m.sum(), 1.0))


def checked_outputs(outputs: np.ndarray, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """(o, y) as float64 arrays, or a ValueError when the outputs lack the targets' shape."""
    o = np.asarray(outputs, dtype=np.float64)
    y = np.asarray(batch.targets, dtype=np.float64)
    if o.shape != y.shape:
        raise ValueError(f"outputs must have the targets' shape {y.shape} (got {o.shape})")
    return o, y
