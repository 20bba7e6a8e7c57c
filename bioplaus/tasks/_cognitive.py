"""Shared machinery of the cognitive tasks (NeuroGym style): trials made of named periods.

A trial is a sequence of periods (e.g. fixation, stimulus, delay, decision), each a whole
number of steps of length ``dt`` seconds: period k covers steps [start_k, stop_k) with
``stop_k − start_k = round(duration_k / dt)``. Only the response period is scored (mask 1
there, 0 elsewhere), so the loss, the reward −L and the accuracy are about the answer.

Every task draws its training trials from the generator passed to :meth:`sample` and its
held-out ("test") trials from a fixed stream derived from its own ``seed``, the same at
every call.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .args import float_arg, int_arg
from .base import Batch, Task, checked_outputs, scored_mean, split_rng, step_losses


class CognitiveTask(Task):
    """Base class: periods, splits and the choice accuracy. Subclasses implement
    :meth:`_trials` (and set ``response``, the name of the scored period)."""

    response: ClassVar[str] = "decision"
    loss: ClassVar[str] = "mse"
    metric: ClassVar[str] = "accuracy"
    lower_is_better: ClassVar[bool] = False
    n_trial_types: int = 1

    def _set_periods(self, dt: object, durations: dict[str, object], seed: object) -> None:
        self.dt = float_arg("dt", dt, 0.0, strict=True)
        self.seed = int_arg("seed", seed, 0)
        self.durations = {k: float_arg(k, v) for k, v in durations.items()}
        self.periods: dict[str, tuple[int, int]] = {}
        t = 0
        for k, d in self.durations.items():
            n = int(round(d / self.dt))
            self.periods[k] = (t, t + n)
            t += n
        self.T = t
        self._require_steps(self.response)

    def _require_steps(self, *names: str) -> None:
        """A ValueError unless each period named lasts at least one step."""
        for k in names:
            a, b = self.periods[k]
            if b <= a:
                raise ValueError(f"{k} must last at least one step of dt={self.dt}")

    def period(self, name: str) -> slice:
        """The steps of period ``name`` as a slice of the time axis."""
        a, b = self.periods[name]
        return slice(a, b)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._options().items())
        return f"{type(self).__name__}({opts})"

    def _options(self) -> dict[str, object]:
        return {"dt": self.dt, **self.durations, "seed": self.seed}

    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        """B trials: inputs [T, B, n_in], targets [T, B, n_out], mask [T, B] (response)."""
        B = int_arg("batch_size", batch_size, 1)
        rng = split_rng(self, split, rng)
        return self._trials(B, rng)

    def _trials(self, B: int, rng: np.random.Generator) -> Batch:
        raise NotImplementedError

    def response_mask(self, B: int) -> np.ndarray:
        m = np.zeros((self.T, B))
        m[self.period(self.response)] = 1.0
        return m

    # -- scoring --------------------------------------------------------------------------
    def _check(self, outputs: np.ndarray, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        return checked_outputs(outputs, batch)

    def _mse(self, o: np.ndarray, y: np.ndarray, batch: Batch) -> float:
        m = np.ones(y.shape[:2]) if batch.mask is None else np.asarray(batch.mask, np.float64)
        return scored_mean(step_losses("mse", o, y), m)

    def choices(self, outputs: np.ndarray) -> np.ndarray:
        """The network's choice per trial [B]: argmax over outputs of the mean response
        output (sign of it, 1 for > 0 and 0 otherwise, when there is one output)."""
        mean = np.asarray(outputs, dtype=np.float64)[self.period(self.response)].mean(0)
        return (mean[:, 0] > 0).astype(np.int64) if mean.shape[1] == 1 else mean.argmax(-1)

    def choice_metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """accuracy = mean over trials of [choice = correct choice], and the response mse."""
        o, y = self._check(outputs, batch)
        correct = self.choices(y)
        return {
            "accuracy": float((self.choices(o) == correct).mean()),
            "mse": self._mse(o, y, batch),
        }


class EvidenceTask(CognitiveTask):
    """A choice on noisy evidence (decision, context): periods fixation | stimulus | delay |
    decision, coherences c ∈ (0, 1] and per-step evidence noise σ_dt = sigma / √(dt / 1 ms)
    (NeuroGym's convention: the noise of evidence integrated over a fixed time does not
    depend on dt). Subclasses set ``n_in``, ``n_out`` and ``default_coherences``."""

    default_coherences: ClassVar[tuple[float, ...]]

    def __init__(
        self,
        dt: float = 0.02,
        fixation: float = 0.1,
        stimulus: float = 0.5,
        delay: float = 0.0,
        decision: float = 0.1,
        coherences: tuple[float, ...] | list[float] | None = None,
        sigma: float = 1.0,
        seed: int = 0,
    ) -> None:
        """Periods in seconds; ``coherences`` None: the task's ``default_coherences``."""
        durations = {"fixation": fixation, "stimulus": stimulus, "delay": delay}
        durations["decision"] = decision
        self._set_periods(dt, durations, seed)
        if coherences is None:
            coherences = self.default_coherences
        if not isinstance(coherences, list | tuple) or not coherences:
            raise ValueError(f"coherences must be a non-empty list (got {coherences!r})")
        self.coherences = tuple(float_arg("coherences", c) for c in coherences)
        if max(self.coherences) > 1.0:
            raise ValueError(f"coherences must be <= 1 (got {max(self.coherences)})")
        self.sigma = float_arg("sigma", sigma)
        self.sigma_dt = self.sigma / np.sqrt(self.dt / 1e-3)

    def _options(self) -> dict[str, object]:
        return {**super()._options(), "coherences": self.coherences, "sigma": self.sigma}
