"""Context-dependent integration (Mante, Sussillo, Shenoy & Newsome 2013; NeuroGym
``ContextDecisionMaking``).

Two noisy evidence streams — motion and colour — are shown together; a context cue says
which one to integrate and which to ignore. Inputs (7 channels): fixation cue, context
(one-hot: 0 = motion, 1 = colour), motion evidence for choices 0 and 1, colour evidence for
choices 0 and 1. Outputs (2 channels), one per choice. A trial::

    fixation    | stimulus                              | delay  | decision
    fix = 1, context on throughout fixation, stimulus and delay    | fix = 0 (go)
    ev = 0      | ev_{mod,c} = (1 ± c_mod)/2 + σ_dt ξ  | 0      | 0
    y = 0       | 0                                     | 0      | y = e_{c*} (scored)

Each modality has its own side (0/1) and coherence c ∈ ``coherences`` (drawn
independently); the correct choice c* is the side of the modality the context names.
Noise σ_dt = sigma / √(dt / 1 ms) per step and channel, as in :mod:`.decision`.

Accuracy: argmax of the mean decision-period output equals c*. Reward −L as in the other
tasks. ``trial_type`` = 2·context + c* (4 types).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ._cognitive import EvidenceTask
from .base import Batch


class ContextTask(EvidenceTask):
    """Context-dependent choice between two noisy modalities: 7 inputs, 2 outputs
    (coherences 0.1, 0.2, 0.4 per modality unless given)."""

    name: ClassVar[str] = "context"
    response: ClassVar[str] = "decision"
    n_trial_types = 4
    n_in, n_out = 7, 2
    default_coherences = (0.1, 0.2, 0.4)

    def trial(
        self,
        context: np.ndarray,
        sides: np.ndarray,
        cohs: np.ndarray,
        noise: np.ndarray,
    ) -> Batch:
        """Trials for contexts [B] (0 motion, 1 colour), sides [B, 2] and coherences [B, 2]
        of (motion, colour), and standard-normal noise [n_stimulus, B, 4]."""
        context = np.asarray(context, dtype=np.int64)
        sides = np.asarray(sides, dtype=np.int64)
        cohs = np.asarray(cohs, dtype=np.float64)
        B = context.shape[0]
        u = np.zeros((self.T, B, 7))
        go = self.periods["decision"][0]
        u[:go, :, 0] = 1.0
        u[:go, :, 1:3] = np.eye(2)[context]
        mean = []
        for k in range(2):  # motion, colour
            m = np.stack([(1 - cohs[:, k]) / 2, (1 + cohs[:, k]) / 2], -1)
            mean.append(np.where(sides[:, k, None] == 1, m, m[:, ::-1]))
        u[self.period("stimulus"), :, 3:] = np.concatenate(mean, -1)[None] + self.sigma_dt * noise
        correct = sides[np.arange(B), context]
        y = np.zeros((self.T, B, 2))
        y[self.period("decision")] = np.eye(2)[correct]
        return Batch(u, y, self.response_mask(B))

    def _trials(self, B: int, rng: np.random.Generator) -> Batch:
        context = rng.integers(0, 2, size=B)
        sides = rng.integers(0, 2, size=(B, 2))
        cohs = np.asarray(self.coherences)[rng.integers(0, len(self.coherences), size=(B, 2))]
        n = self.periods["stimulus"][1] - self.periods["stimulus"][0]
        return self.trial(context, sides, cohs, rng.standard_normal((n, B, 4)))

    def trial_type(self, batch: Batch) -> np.ndarray:
        """2·context + correct choice per trial [B]."""
        context = np.asarray(batch.inputs)[0, :, 1:3].argmax(-1)
        return 2 * context + self.choices(np.asarray(batch.targets))

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """accuracy (argmax of the mean decision output) and the decision-period mse."""
        return self.choice_metrics(outputs, batch)
