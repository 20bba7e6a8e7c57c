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

import warnings


def _quiet_known_warnings() -> None:
    """brian2 (2.9) calls pyparsing's camelCase API, which pyparsing >= 3.3 deprecates:
    thousands of PyparsingDeprecationWarnings per run that say nothing about the model."""
    try:
        from pyparsing.warnings import PyparsingDeprecationWarning
    except ImportError:  # an older pyparsing: no such warnings
        return
    warnings.filterwarnings("ignore", category=PyparsingDeprecationWarning)


_quiet_known_warnings()

from .context import DEFAULT_TARGET, TARGETS, brian2_scope  # noqa: E402
from .rate import simulate_rate  # noqa: E402

__all__ = ["DEFAULT_TARGET", "TARGETS", "brian2_scope", "simulate_rate"]
