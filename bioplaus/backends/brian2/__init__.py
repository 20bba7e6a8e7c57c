"""brian2 back-end: RateSpec → brian2 equations, simulation with brian2's global state contained.

- :mod:`.equations` — the rate equation of DESIGN §1 as brian2 strings (one source of truth)
- :mod:`.context`   — :func:`brian2_scope`: fresh Network, dt, code-generation target,
  device and random state set on entry and restored on exit
- :mod:`.rate`      — :func:`simulate_rate`, the back-end of ``bp.simulate(..., backend="brian2")``
- :mod:`.learning`  — :func:`run_trials`: online three-factor rule, paired ANP and
  decorrelation as brian2 NeuronGroup/Synapses equations (docs/brian2.md)
- :mod:`.trainer`   — :class:`Brian2Trainer`, used for ``backend = "brian2"`` protocols

brian2 is imported lazily (inside functions), so importing bioplaus does not import brian2.
"""

from .context import DEFAULT_TARGET, TARGETS, brian2_scope
from .rate import simulate_rate

__all__ = ["DEFAULT_TARGET", "TARGETS", "brian2_scope", "simulate_rate"]
