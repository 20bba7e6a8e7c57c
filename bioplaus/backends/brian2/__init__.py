"""brian2 back-end: RateSpec → brian2 equations, simulation with brian2's global state contained.

- :mod:`.equations`    — the rate network's equations as brian2 strings (the only place its
  dynamics are written): the rate equation, φ, input, rates, readout, loss, lateral synapses
- :mod:`.network`      — the one network builder: building blocks shared by ``simulate`` and
  learning, and :func:`~.network.build`, the learning network a plasticity module extends
- :mod:`.rate`         — :func:`simulate_rate`, behind ``bp.simulate(..., backend="brian2")``
- :mod:`.anp`          — paired clean/noisy ANP on that network
- :mod:`.three_factor` — the online three-factor rule on that network
- :mod:`.learning`     — :func:`~.learning.run_trials`, one entry point for both
- :mod:`.lif`          — the LIF network on brian2
- :mod:`.context`      — :func:`brian2_scope`: fresh Network, dt, code-generation target,
  device and random state set on entry and restored on exit
- :mod:`.capabilities` — :data:`CAPABILITIES`, what brian2 can train (network kind → rules),
  asked by protocol validation; imports neither brian2 nor torch
- :mod:`.trainer`      — :class:`Brian2Trainer`, used for ``backend = "brian2"`` protocols (the
  only module here that imports torch and the torch back-end's trainer)

brian2 is imported lazily (inside functions), so importing bioplaus does not import brian2.
"""

from .capabilities import CAPABILITIES, SIMULATES, can_train
from .context import DEFAULT_TARGET, TARGETS, brian2_scope
from .rate import simulate_rate

__all__ = [
    "CAPABILITIES",
    "DEFAULT_TARGET",
    "SIMULATES",
    "TARGETS",
    "brian2_scope",
    "can_train",
    "simulate_rate",
]
