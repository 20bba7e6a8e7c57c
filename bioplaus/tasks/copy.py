"""Copy (memory) task, as the RNN seed paper's code defines it (``generate_copy_data``).

A trial of T = 2·length + delay steps over C = n_symbols + 2 classes (0 = blank,
1 … n_symbols = symbols, n_symbols + 1 = recall marker):

    input  c_t:  s_1 … s_length | 0 (delay steps) | m … m (length steps)
    target c_t:  0 (length + delay steps)          | s_1 … s_length

with s_i ~ U{1, …, n_symbols} and m = n_symbols + 1; inputs and targets are the one-hot
vectors e_{c_t} ∈ R^C at every step (the blank is class 0, so blank steps have target e_0).

Metrics of outputs o [T, B, C] against one-hot targets y:

    error_bits = (1/B) Σ_{t,b,k} [ (o_{t,b,k} ≥ ½) ≠ (y_{t,b,k} = 1) ]
                 every step is scored, blank steps included, so an all-zero output scores
                 T = 2·length + delay bits per sequence (one missed 1 per step)
    mse        = mean_{t,b} ½ ‖o_{t,b} − y_{t,b}‖²          (as bioplaus.loss)
    accuracy   = mean over the last ``length`` (recall) steps and the batch of
                 [argmax_k o_{t,b,k} = argmax_k y_{t,b,k}]
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..random import numpy_rng
from .args import bool_arg, int_arg
from .base import SPLITS, Batch, Task, check_split, checked_outputs, scored_mean, step_losses


class CopyTask(Task):
    """Recall ``length`` symbols after a ``delay`` (one-hot in and out, MSE loss).

    ``fixed_sequence=True`` is paper-exact: one training sequence, drawn once from the
    task's own ``seed``, repeated in every train batch, and one separate fixed test
    sequence. With ``fixed_sequence=False`` each train batch draws fresh sequences from the
    generator passed to :meth:`sample`. The test split never uses that generator: it is a
    held-out stream derived from ``seed`` (and the batch size), the same at every call.
    """

    name: ClassVar[str] = "copy"
    loss: ClassVar[str] = "mse"
    metric: ClassVar[str] = "error_bits"
    lower_is_better: ClassVar[bool] = True

    def __init__(
        self,
        length: int = 100,
        delay: int = 10,
        n_symbols: int = 8,
        fixed_sequence: bool = False,
        seed: int = 0,
    ) -> None:
        self.length = int_arg("length", length, 1)
        self.delay = int_arg("delay", delay, 0)
        self.n_symbols = int_arg("n_symbols", n_symbols, 1)
        self.seed = int_arg("seed", seed, 0)
        self.fixed_sequence = bool_arg("fixed_sequence", fixed_sequence)
        self.n_classes = self.n_symbols + 2
        self.marker = self.n_symbols + 1
        self.n_in = self.n_out = self.n_classes
        self.T = 2 * self.length + self.delay
        self._fixed: dict[str, np.ndarray] = {}
        if self.fixed_sequence:
            for split in SPLITS:
                self._fixed[split] = self._symbols(1, numpy_rng(self.seed, "copy", split))

    def __repr__(self) -> str:
        return (
            f"CopyTask(length={self.length}, delay={self.delay}, n_symbols={self.n_symbols}, "
            f"fixed_sequence={self.fixed_sequence}, seed={self.seed})"
        )

    def _symbols(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Symbols s [length, B], uniform on {1, …, n_symbols}; series b is column b."""
        return rng.integers(1, self.n_symbols + 1, size=(batch_size, self.length)).T

    def trial(self, symbols: np.ndarray) -> Batch:
        """The batch for given symbols [length, B] (values in 1 … n_symbols)."""
        symbols = np.asarray(symbols)
        if symbols.ndim != 2 or symbols.shape[0] != self.length:
            raise ValueError(
                f"symbols must have shape [length={self.length}, B] (got {symbols.shape})"
            )
        B = symbols.shape[1]
        blank_in = np.zeros((self.delay, B), dtype=np.int64)
        markers = np.full((self.length, B), self.marker, dtype=np.int64)
        blank_out = np.zeros((self.length + self.delay, B), dtype=np.int64)
        c_in = np.concatenate([symbols, blank_in, markers], axis=0)
        c_out = np.concatenate([blank_out, symbols], axis=0)
        eye = np.eye(self.n_classes)
        return Batch(eye[c_in], eye[c_out], None)

    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        """B trials: inputs, targets [T, B, n_symbols + 2], no mask (every step scored)."""
        B = int_arg("batch_size", batch_size, 1)
        check_split(split)
        if self.fixed_sequence:
            symbols = np.repeat(self._fixed[split], B, axis=1)
        elif split == "test":
            symbols = self._symbols(B, numpy_rng(self.seed, "copy", "test"))
        else:
            symbols = self._symbols(B, rng)
        return self.trial(symbols)

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """error_bits (per sequence, all steps), mse, and recall-step argmax accuracy."""
        o, y = checked_outputs(outputs, batch)
        T, B = y.shape[:2]
        m = np.ones((T, B)) if batch.mask is None else np.asarray(batch.mask, dtype=np.float64)
        wrong = ((o >= 0.5) != (y >= 0.5)).sum(-1)  # [T, B]
        ell = step_losses("mse", o, y)  # [T, B]
        recall = slice(T - self.length, T)
        hit = o[recall].argmax(-1) == y[recall].argmax(-1)
        return {
            "error_bits": float((wrong * m).sum() / B),
            "mse": scored_mean(ell, m),
            "accuracy": float(hit.mean()),
        }
