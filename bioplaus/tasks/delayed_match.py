"""Delayed (non-)match to sample, as in Miconi 2017 (eLife 6:e20899, "DNMS").

Two stimuli, A and B, on two input channels (u = e_A or e_B while a stimulus is shown,
0 otherwise). A trial (durations in seconds, Miconi's 200 ms periods by default)::

    fixation | sample (s ∈ {A, B}) | delay | test (s' ∈ {A, B}) | response
       0     |        e_s          |   0   |        e_s'        |    0          inputs
       -     |         -           |   -   |         -          |   ±1          target (1 output)

Non-match (default, ``match=False``): target +1 when s' ≠ s, −1 when s' = s; ``match=True``
swaps the signs. Only the response period is scored (mask). The four trial types
(s, s') ∈ {AA, AB, BA, BB} are equally likely; ``trial_type`` = 2·[s = B] + [s' = B].

Reward and accuracy (Miconi 2017): the reward of a trial is −L, with L the mean of
½(o − y)² over the response steps; a trial is correct when the sign of the mean response
output equals the target's sign; ``accuracy`` is the fraction of correct trials.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ._cognitive import CognitiveTask
from .args import bool_arg
from .base import Batch


class DelayedMatchTask(CognitiveTask):
    """Delayed non-match (or match) to sample: 2 inputs, 1 output, 4 trial types."""

    name: ClassVar[str] = "delayed_match"
    response: ClassVar[str] = "response"
    n_trial_types = 4

    def __init__(
        self,
        dt: float = 0.01,
        fixation: float = 0.1,
        sample: float = 0.2,
        delay: float = 0.2,
        test: float = 0.2,
        response: float = 0.2,
        match: bool = False,
        seed: int = 0,
    ) -> None:
        durations = {
            "fixation": fixation,
            "sample": sample,
            "delay": delay,
            "test": test,
            "response": response,
        }
        self._set_periods(dt, durations, seed)
        self._require_steps("sample", "test")
        self.match = bool_arg("match", match)
        self.n_in, self.n_out = 2, 1

    def _options(self) -> dict[str, object]:
        return {**super()._options(), "match": self.match}

    def trial(self, s: np.ndarray, s_test: np.ndarray) -> Batch:
        """The batch for sample and test stimuli [B] (0 = A, 1 = B)."""
        s, s_test = np.asarray(s, dtype=np.int64), np.asarray(s_test, dtype=np.int64)
        B = s.shape[0]
        u = np.zeros((self.T, B, 2))
        eye = np.eye(2)
        u[self.period("sample")] = eye[s]
        u[self.period("test")] = eye[s_test]
        same = s == s_test
        sign = np.where(same, 1.0, -1.0) if self.match else np.where(same, -1.0, 1.0)
        y = np.zeros((self.T, B, 1))
        y[self.period("response"), :, 0] = sign
        return Batch(u, y, self.response_mask(B))

    def _trials(self, B: int, rng: np.random.Generator) -> Batch:
        st = rng.integers(0, 2, size=(2, B))
        return self.trial(st[0], st[1])

    def trial_type(self, batch: Batch) -> np.ndarray:
        """2·[sample = B] + [test = B] per trial [B], read from the inputs."""
        u = np.asarray(batch.inputs)
        s = u[self.period("sample")].sum(0).argmax(-1)
        t = u[self.period("test")].sum(0).argmax(-1)
        return 2 * s + t

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        """accuracy (sign of the mean response output), response mse, and the mean reward
        −L per trial."""
        m = self.choice_metrics(outputs, batch)
        m["reward"] = -m["mse"]
        return m
