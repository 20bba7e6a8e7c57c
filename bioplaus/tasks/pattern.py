"""Pattern generation: a brief cue selects one of K target trajectories the network must
then produce on its own (Laje & Buonomano 2013; the motor task of Miconi 2017; the
FORCE / exploratory-Hebbian targets of Sussillo & Abbott 2009, Hoerzer et al. 2014).

Inputs (K channels): the cue e_k during the cue period, 0 afterwards. Output (1 channel).
A trial::

    fixation | cue    | pattern
    u = 0    | u = e_k| u = 0
    y = 0    | 0      | y(t) = P_k(t)   (scored)

The K patterns are fixed by the task's ``seed``: P_k(t) = a Σ_{j=1..n_components}
w_{kj} sin(2π f_{kj} t + φ_{kj}) with t the time since the pattern started, frequencies
f ~ U[1, max_freq] Hz, phases φ ~ U[0, 2π), weights w ~ U[0.5, 1], and the scale a chosen so
max_t |P_k(t)| = ``amplitude``.

Metrics over the pattern period (o the output, y the target, per trial, then averaged):

    mse      = mean ½ (o − y)²                                    (as bioplaus.loss)
    r2       = 1 − Σ_t (o − y)² / Σ_t (y − ȳ)²                    (headline; higher better)
    accuracy = fraction of trials whose output is nearer (mse) to the cued pattern than to
               every other pattern (K ≥ 2; it measures that the cue selects the pattern)

``trial_type`` = the cue k (K types).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..random import numpy_rng
from ._cognitive import CognitiveTask
from .args import float_arg, int_arg
from .base import Batch


class PatternTask(CognitiveTask):
    """Cued generation of one of ``n_patterns`` fixed trajectories: K inputs, 1 output."""

    name: ClassVar[str] = "pattern"
    response: ClassVar[str] = "pattern"
    metric: ClassVar[str] = "r2"
    lower_is_better: ClassVar[bool] = False

    def __init__(
        self,
        dt: float = 0.02,
        fixation: float = 0.1,
        cue: float = 0.1,
        pattern: float = 1.0,
        n_patterns: int = 2,
        n_components: int = 3,
        max_freq: float = 3.0,
        amplitude: float = 1.0,
        seed: int = 0,
    ) -> None:
        self._set_periods(dt, {"fixation": fixation, "cue": cue, "pattern": pattern}, seed)
        self._require_steps("cue")
        self.n_patterns = int_arg("n_patterns", n_patterns, 1)
        self.n_components = int_arg("n_components", n_components, 1)
        self.max_freq = float_arg("max_freq", max_freq, 1.0)
        self.amplitude = float_arg("amplitude", amplitude, 0.0, strict=True)
        self.n_trial_types = self.n_patterns
        self.n_in, self.n_out = self.n_patterns, 1
        rng = numpy_rng(self.seed, "pattern", "targets")
        K, J = self.n_patterns, self.n_components
        f = rng.uniform(1.0, self.max_freq, size=(K, J))
        phi = rng.uniform(0.0, 2 * np.pi, size=(K, J))
        w = rng.uniform(0.5, 1.0, size=(K, J))
        a, b = self.periods["pattern"]
        t = np.arange(b - a) * self.dt
        P = (
            w[:, None, :] * np.sin(2 * np.pi * f[:, None, :] * t[None, :, None] + phi[:, None])
        ).sum(-1)
        self.patterns = self.amplitude * P / np.abs(P).max(1, keepdims=True)  # [K, n_steps]

    def _options(self) -> dict[str, object]:
        return {
            **super()._options(),
            "n_patterns": self.n_patterns,
            "n_components": self.n_components,
            "max_freq": self.max_freq,
            "amplitude": self.amplitude,
        }

    def trial(self, cue: np.ndarray) -> Batch:
        """Trials for cues [B] (0 … K−1)."""
        cue = np.asarray(cue, dtype=np.int64)
        B = cue.shape[0]
        u = np.zeros((self.T, B, self.n_patterns))
        u[self.period("cue")] = np.eye(self.n_patterns)[cue]
        y = np.zeros((self.T, B, 1))
        y[self.period("pattern"), :, 0] = self.patterns[cue].T
        return Batch(u, y, self.response_mask(B))

    def _trials(self, B: int, rng: np.random.Generator) -> Batch:
        return self.trial(rng.integers(0, self.n_patterns, size=B))

    def trial_type(self, batch: Batch) -> np.ndarray:
        """The cue k per trial [B]."""
        return np.asarray(batch.inputs)[self.period("cue")].sum(0).argmax(-1)

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """r2, mse and pattern-selection accuracy over the pattern period."""
        o, y = self._check(outputs, batch)
        sl = self.period("pattern")
        op, yp = o[sl, :, 0], y[sl, :, 0]  # [n, B]
        sse = ((op - yp) ** 2).sum(0)
        sst = ((yp - yp.mean(0)) ** 2).sum(0)
        d = ((op[None] - self.patterns[:, :, None]) ** 2).mean(1)  # [K, B]
        cue = self.trial_type(batch)
        return {
            "r2": float((1.0 - sse / np.maximum(sst, 1e-12)).mean()),
            "mse": self._mse(o, y, batch),
            "accuracy": float((d.argmin(0) == cue).mean()),
        }
