"""The copy task with rate-coded input, for spiking networks (``copy_rate``).

The copy task (:mod:`.copy`) over K = n_symbols + 2 classes, with every symbol step held
for ``hold`` network steps of length ``dt`` and the one-hot input coded as firing rates:
channel k carries a Poisson spike train of rate ``rate`` Hz while class k is shown (and
nothing otherwise), each spike an input of 1/(rate·dt), so the input's mean equals the
one-hot vector (``poisson = false`` gives that mean directly)::

    u_t,k = Bernoulli(rate·dt) / (rate·dt)    while class k is shown,  0 otherwise

Targets are the one-hot classes held for ``hold`` steps; only the recall period (the last
length·hold steps) is scored (mask), so the network need not output the blanks of the
presentation and delay periods. Metrics: ``accuracy`` (argmax of the output averaged over
each held recall symbol equals the symbol; headline), ``mse`` over scored steps, and the
copy task's ``error_bits`` computed on hold-averaged outputs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..random import numpy_rng
from .args import int_arg
from .base import Batch, Task, checked_outputs, scored_mean, step_losses
from .copy import CopyTask


class RateCodedCopyTask(Task):
    """Copy ``length`` symbols after ``delay`` symbol steps, inputs as Poisson rates."""

    name: ClassVar[str] = "copy_rate"
    loss: ClassVar[str] = "mse"
    metric: ClassVar[str] = "accuracy"
    lower_is_better: ClassVar[bool] = False

    def __init__(
        self,
        length: int = 3,
        delay: int = 2,
        n_symbols: int = 3,
        hold: int = 25,
        dt: float = 0.002,
        rate: float = 100.0,
        poisson: bool = True,
        seed: int = 0,
    ) -> None:
        self.copy = CopyTask(length=length, delay=delay, n_symbols=n_symbols, seed=seed)
        self.hold = int_arg("hold", hold, 1)
        self.dt, self.rate = float(dt), float(rate)
        if not (self.dt > 0 and self.rate > 0 and self.rate * self.dt <= 1):
            raise ValueError(f"rate must satisfy 0 < rate·dt <= 1 (got rate={rate}, dt={dt})")
        self.poisson, self.seed = bool(poisson), int(seed)
        self.length = self.copy.length
        self.n_in = self.n_out = self.copy.n_classes
        self.T = self.copy.T * self.hold

    def _expand(self, b: Batch, rng: np.random.Generator) -> Batch:
        u = np.repeat(b.inputs, self.hold, axis=0)
        if self.poisson:
            p = self.rate * self.dt
            u = (rng.random(u.shape) < p * u) / p
        y = np.repeat(b.targets, self.hold, axis=0)
        m = np.zeros(y.shape[:2])
        m[-self.length * self.hold :] = 1.0
        return Batch(u, y, m)

    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        """B trials: inputs, targets [T, B, K] with T = (2·length + delay)·hold; mask on recall."""
        b = self.copy.sample(batch_size, rng, split)
        if split == "test":
            rng = numpy_rng(self.seed, "copy_rate", "test")
        return self._expand(b, rng)

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """accuracy on hold-averaged recall outputs, scored mse, and error_bits."""
        o, y = checked_outputs(outputs, batch)
        T, B, K = y.shape
        ob = o.reshape(T // self.hold, self.hold, B, K).mean(1)
        yb = y[:: self.hold]
        m = np.asarray(batch.mask, dtype=np.float64)
        ell = step_losses("mse", o, y)
        rec = slice(yb.shape[0] - self.length, yb.shape[0])
        return {
            "accuracy": float((ob[rec].argmax(-1) == yb[rec].argmax(-1)).mean()),
            "mse": scored_mean(ell, m),
            "error_bits": self.copy.metrics(ob, Batch(yb, yb, None))["error_bits"],
        }
