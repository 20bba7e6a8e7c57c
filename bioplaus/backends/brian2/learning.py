"""Learning on brian2, one entry point for both modes: :func:`run_trials`.

The modes are separate modules on one network builder (docs/brian2.md):

- ``three-factor`` — :func:`.three_factor.run_three_factor`, the online three-factor rule
- ``anp``          — :func:`.anp.run_anp`, paired clean/noisy copies, time-local ANP

both on :func:`.network.build` (the rate network of :mod:`.equations` as brian2
NeuronGroups/Synapses, with decorrelation statistics on the lateral synapses; the update
ΔD = −η_D offdiag(C/count) D of rules/decorrelation.py is applied between trials).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...params import Params
from ...rules.three_factor import ThreeFactor
from ...spec import RateSpec
from .anp import run_anp
from .network import Options, TrialOutput, Trials
from .three_factor import RewardBaseline, run_three_factor

LEARNING_MODES = ("three-factor", "anp")

__all__ = ["LEARNING_MODES", "Options", "TrialOutput", "run_trials"]


def run_trials(
    spec: RateSpec, params: Params, inputs: np.ndarray, targets: np.ndarray,
    mask: np.ndarray | None = None, *, mode: str = "three-factor",
    rule: ThreeFactor | None = None, scale: float | None = None,
    rbar: np.ndarray | None = None, seen: np.ndarray | None = None, **options: Any,
) -> TrialOutput:  # fmt: skip
    """Run B trials (``inputs`` [T, B, n_in], ``targets`` [T, B, n_out], ``mask`` [T, B])
    on brian2 with learning ``mode`` (``three-factor`` with ``rule``, or ``anp`` with the
    constant c = ``scale``, default N + n_out) and return the traces.

    rbar/seen: the reward-"step" baseline per network. ``options``: the fields of
    :class:`.network.Options` (sigma, decor, noise, noise_out, seed, target,
    record_states).
    """
    if mode not in LEARNING_MODES:
        raise ValueError(f"mode: unknown {mode!r} (choose from {list(LEARNING_MODES)})")
    opts = Options(**options)
    trials = Trials.of(spec, inputs, targets, mask)
    if mode == "anp":
        return run_anp(spec, params, trials, opts, scale)
    baseline = None if rbar is None else RewardBaseline(rbar, seen)
    return run_three_factor(spec, params, trials, rule, opts, baseline)
