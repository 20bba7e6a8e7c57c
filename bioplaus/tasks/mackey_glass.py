"""Mackey–Glass series, generated as in the RNN seed paper's code (``datasets.py``).

The delay equation dx/dt = 0.2·x(t−τ)/(1 + x(t−τ)¹⁰) − 0.1·x(t), τ = 17, is integrated by
Euler with 10 substeps per time step (step 1/10, so the delay is 170 substeps):

    x ← x + (0.2·x_τ/(1 + x_τ¹⁰) − 0.1·x) / 10                (each substep)
    history x(−τ … 0) = 1.2 + 0.2·(U − 0.5),  U ~ U[0, 1) i.i.d.;  x(0) = 1.2

The value after every 10th substep is one step of the series, squashed as s = tanh(x − 1);
the first 100 steps are dropped (washout of the initial transient) and the batch is
centred, s ← s − mean(s), the mean over all its series and steps (as the paper centres its
2B series together). Each series is integrated independently and vectorised over the batch.

Modes (inputs u, targets y, both [T, B, 1], T = ``length``):

    delayed_recall (as coded in the paper):  u(t) = s(t + shift),  y(t) = s(t),  shift = 15
    forecast (a genuine k-step-ahead forecast): u(t) = s(t),  y(t) = s(t + k),  k = horizon

Metrics over the scored steps (mask m = 0 in the first ``washout`` steps):

    nrmse = sqrt(mean (o − y)²) / std(y)
    mse   = mean_{t,b} ½ ‖o_{t,b} − y_{t,b}‖²            (as bioplaus.loss)
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..random import numpy_rng
from .args import int_arg
from .base import Batch, Task, check_split, checked_outputs

MODES = ("delayed_recall", "forecast")
TAU = 17  # delay of the equation (time units)
SUBSTEPS = 10  # Euler substeps per time step
TRANSIENT = 100  # steps dropped at the start of every series


def mackey_glass(
    n_steps: int,
    batch_size: int,
    rng: np.random.Generator,
    tau: int = TAU,
    substeps: int = SUBSTEPS,
) -> np.ndarray:
    """Raw Mackey–Glass series x [n_steps, B] (before squashing), one per column.

    x at step t is the state after (t + 1)·substeps Euler substeps; series b's random
    history is drawn in row b of a [B, τ·substeps] uniform draw, so it does not depend on B.
    """
    lag = tau * substeps
    n_sub = n_steps * substeps
    buf = np.empty((lag + n_sub + 1, batch_size))  # buf[n] = x_{n − lag} (substep index)
    buf[:lag] = (1.2 + 0.2 * (rng.random((batch_size, lag)) - 0.5)).T
    buf[lag] = 1.2
    for n in range(n_sub):
        x_tau, x = buf[n], buf[lag + n]
        buf[lag + n + 1] = x + (0.2 * x_tau / (1.0 + x_tau**10) - 0.1 * x) / substeps
    return buf[lag + substeps :: substeps]


class MackeyGlassTask(Task):
    """Delayed recall (paper) or k-step forecast of a chaotic Mackey–Glass series (MSE).

    Train series are drawn from the generator passed to :meth:`sample`; the test split
    ignores it and draws from a held-out stream derived from ``seed``, so the test batch is
    the same at every call (for a given batch size) and disjoint from the train series.
    """

    name: ClassVar[str] = "mackey_glass"
    loss: ClassVar[str] = "mse"
    metric: ClassVar[str] = "nrmse"
    lower_is_better: ClassVar[bool] = True
    n_in: int = 1
    n_out: int = 1

    def __init__(
        self,
        length: int = 5000,
        mode: str = "delayed_recall",
        shift: int | None = None,
        horizon: int | None = None,
        washout: int = 0,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} (got {mode!r})")
        if mode == "delayed_recall" and horizon is not None:
            raise ValueError("horizon applies only to mode='forecast' (delayed_recall uses shift)")
        if mode == "forecast" and shift is not None:
            raise ValueError("shift applies only to mode='delayed_recall' (forecast uses horizon)")
        self.mode = mode
        self.length = int_arg("length", length, 1)
        self.shift: int | None = None
        self.horizon: int | None = None
        if mode == "delayed_recall":
            self.shift = self.offset = int_arg("shift", 15 if shift is None else shift, 1)
        else:
            self.horizon = self.offset = int_arg("horizon", 1 if horizon is None else horizon, 1)
        self.washout = int_arg("washout", washout, 0)
        if self.washout >= self.length:
            raise ValueError(f"washout must be < length={self.length} (got {self.washout})")
        self.seed = int_arg("seed", seed, 0)
        self._test: dict[int, Batch] = {}

    def __repr__(self) -> str:
        k = f"shift={self.shift}" if self.mode == MODES[0] else f"horizon={self.horizon}"
        return (
            f"MackeyGlassTask(length={self.length}, mode={self.mode!r}, {k}, "
            f"washout={self.washout}, seed={self.seed})"
        )

    def series(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Squashed, washed-out, centred series s [length + offset, B]."""
        x = mackey_glass(TRANSIENT + self.length + self.offset, batch_size, rng)
        s = np.tanh(x[TRANSIENT:] - 1.0)
        return s - s.mean()

    def _batch(self, s: np.ndarray) -> Batch:
        T, k = self.length, self.offset
        if self.mode == "delayed_recall":
            u, y = s[k : k + T], s[:T]
        else:
            u, y = s[:T], s[k : k + T]
        mask = None
        if self.washout:
            mask = np.ones((T, s.shape[1]))
            mask[: self.washout] = 0.0
        return Batch(u[..., None].copy(), y[..., None].copy(), mask)

    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        """B series: inputs, targets [length, B, 1]; mask [length, B] when washout > 0."""
        B = int_arg("batch_size", batch_size, 1)
        check_split(split)
        if split == "train":
            return self._batch(self.series(B, rng))
        if B not in self._test:
            held_out = numpy_rng(self.seed, "mackey_glass", "test")
            self._test[B] = self._batch(self.series(B, held_out))
        b = self._test[B]
        return Batch(b.inputs.copy(), b.targets.copy(), None if b.mask is None else b.mask.copy())

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """nrmse (headline) and mse over the scored steps."""
        o, y = checked_outputs(outputs, batch)
        T, B = y.shape[:2]
        m = np.ones((T, B), dtype=bool) if batch.mask is None else np.asarray(batch.mask) > 0
        err, ys = (o - y)[m], y[m]  # [n_scored, n_out]
        std = ys.std()
        rmse = np.sqrt(np.mean(err**2))
        return {
            "nrmse": float(rmse / std) if std > 0 else float("inf"),
            "mse": float(0.5 * (err**2).sum(-1).mean()),
        }
