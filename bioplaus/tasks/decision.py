"""Perceptual decision making with noisy evidence (NeuroGym ``PerceptualDecisionMaking``;
random-dot motion, Britten et al. 1992 / Roitman & Shadlen 2002).

Inputs (3 channels): a fixation cue, and the momentary evidence for choices 0 and 1.
Outputs (2 channels): one per choice. A trial::

    fixation | stimulus            | delay | decision
    fix = 1  | fix = 1             | 1     | fix = 0                            (go cue)
    ev = 0   | ev_c = (1 ± c)/2 + σ_dt ξ   | 0     | 0        (+ for the correct side c*)
    y = 0    | 0                   | 0     | y = e_{c*}                         (scored)

with coherence c drawn uniformly from ``coherences`` (fractions: 0.128 is 12.8 % coherent
motion), the correct side c* ∈ {0, 1} uniformly, and per-step Gaussian noise of standard
deviation σ_dt = sigma / √(dt / 1 ms) on each evidence channel (NeuroGym's convention, so
the evidence integrated over a fixed time has a noise independent of dt). At c = 0 the
correct side is a coin flip the evidence says nothing about.

Accuracy: the choice is the argmax of the mean decision-period output; ``accuracy`` is the
fraction of trials where it equals c*. The reward of a trial is −L (mean ½‖o − y‖² over
the decision steps). ``trial_type`` = c* (2 types).

The ideal observer chooses the sign of Σ_t (ev_1 − ev_0) over the stimulus: with n
stimulus steps it is right with probability Φ(c √n / (√2 σ_dt)).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ._cognitive import EvidenceTask
from .base import Batch


class DecisionTask(EvidenceTask):
    """Two-alternative forced choice on noisy evidence: 3 inputs, 2 outputs (coherences
    0, 0.064, 0.128, 0.256, 0.512 unless given)."""

    name: ClassVar[str] = "decision"
    response: ClassVar[str] = "decision"
    n_trial_types = 2
    n_in, n_out = 3, 2
    default_coherences = (0.0, 0.064, 0.128, 0.256, 0.512)

    def trial(self, side: np.ndarray, coh: np.ndarray, noise: np.ndarray) -> Batch:
        """Trials for correct sides [B] (0/1), coherences [B] and standard-normal evidence
        noise [n_stimulus, B, 2]."""
        side = np.asarray(side, dtype=np.int64)
        coh = np.asarray(coh, dtype=np.float64)
        B = side.shape[0]
        u = np.zeros((self.T, B, 3))
        u[: self.periods["decision"][0], :, 0] = 1.0  # fixation cue until the go
        stim = self.period("stimulus")
        mean = np.stack([(1 - coh) / 2, (1 + coh) / 2], -1)  # evidence for side 1 first
        mean = np.where(side[:, None] == 1, mean, mean[:, ::-1])
        u[stim, :, 1:] = mean[None] + self.sigma_dt * noise
        y = np.zeros((self.T, B, 2))
        y[self.period("decision")] = np.eye(2)[side]
        return Batch(u, y, self.response_mask(B))

    def _trials(self, B: int, rng: np.random.Generator) -> Batch:
        side = rng.integers(0, 2, size=B)
        coh = np.asarray(self.coherences)[rng.integers(0, len(self.coherences), size=B)]
        n = self.periods["stimulus"][1] - self.periods["stimulus"][0]
        return self.trial(side, coh, rng.standard_normal((n, B, 2)))

    def trial_type(self, batch: Batch) -> np.ndarray:
        """The correct side c* per trial [B], read from the targets."""
        return self.choices(np.asarray(batch.targets))

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """accuracy (argmax of the mean decision output) and the decision-period mse."""
        return self.choice_metrics(outputs, batch)
