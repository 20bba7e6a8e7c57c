"""Contain brian2's global state: one simulation = one scope.

brian2 keeps process-wide state: the magic network, ``defaultclock.dt``,
``prefs.codegen.target``, the active device, and (runtime targets) numpy's *global*
random state, which brian2's ``seed`` sets and its ``xi``/``randn`` draw from.
:func:`brian2_scope` sets what a simulation needs, hands out a fresh explicit
:class:`~brian2.Network`, and restores every one of those on exit, even on error.

Targets
-------
``numpy``  (default) pure Python/numpy code generation: no compiler, no compile cost.
           bioplaus' rate network does its dense recurrence as one BLAS product outside
           the generated code, so the generated code is only an element-wise Euler step.
           Per step, ``cython`` is ~1.5–2× faster (N = 256: ≈30k vs ≈60k steps/s), but
           every call also pays ≈0.2 s fixed cost (brian2's ``Network.run`` runs
           ``gc.collect()`` and prepares code objects), so for runs up to ~10⁴ steps the
           two are within ~1.2× and ``numpy`` saves the compiler dependency and compile time
           (measured with benchmarks/bench_brian2_overhead.py).
``cython`` compiled runtime code: the first run of a network of a new size or length
           compiles (≈2–20 s; brian2 bakes TimedArray shapes into the code), cached in
           ~/.cython afterwards. Worth it for long runs (T ≳ 10⁴) of one shape.
``cpp_standalone`` the whole run as a generated C++ project in a temporary directory,
           compiled and executed at :meth:`Brian2Scope.run`; compile cost (≈5–10 s) on
           every call, and the recurrence must be Synapses (no Python operations).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ...random import child_seed

TARGETS = ("numpy", "cython", "cpp_standalone")
DEFAULT_TARGET = "numpy"


def check_target(target: str) -> str:
    """Return ``target`` if it is one of :data:`TARGETS`, else raise ValueError."""
    if target not in TARGETS:
        raise ValueError(f"target: unknown brian2 target {target!r} (choose from {list(TARGETS)})")
    return target


def brian2_seed(seed: int, *names: str) -> int:
    """A 32-bit seed for ``brian2.seed`` derived from a bioplaus seed (numpy accepts < 2**32)."""
    return child_seed(int(seed), "brian2", *names) % (2**32)


@dataclass
class Brian2Scope:
    """What :func:`brian2_scope` hands out: an explicit network and how to finish the run."""

    network: Any  # brian2.Network
    target: str
    directory: str | None = None
    _built: bool = field(default=False, repr=False)

    @property
    def standalone(self) -> bool:
        return self.target == "cpp_standalone"

    def run(self, steps: int, dt: float) -> None:
        """Run ``steps`` steps of ``dt`` seconds, then (standalone) compile and execute.

        An explicit empty run namespace stops brian2 from looking names up in the
        caller's frames: every object carries its own namespace.
        """
        from brian2 import device, second

        self.network.run(steps * dt * second, namespace={})
        if self.standalone:
            device.build(
                directory=self.directory, compile=True, run=True, debug=False, with_output=False
            )
            self._built = True


@contextmanager
def brian2_scope(
    dt: float,
    target: str = DEFAULT_TARGET,
    seed: int | None = None,
    directory: str | None = None,
) -> Iterator[Brian2Scope]:
    """Context for one brian2 simulation with clock step ``dt`` (seconds).

    On entry: ``start_scope()``, ``defaultclock.dt = dt``, ``prefs.codegen.target``
    (``numpy``/``cython``; ``cpp_standalone`` switches the device with
    ``build_on_run=False`` into ``directory`` or a fresh temporary directory), and
    ``brian2.seed(s)`` with ``s`` derived from ``seed``. On exit the previous ``dt``,
    code-generation target, device, and the runtime random state (numpy's global state
    and brian2's random buffers) are restored; a temporary project directory is removed.
    """
    import brian2
    from brian2 import defaultclock, prefs, start_scope
    from brian2.devices.device import get_device, reset_device, runtime_device, set_device

    check_target(target)
    old_dt = defaultclock.dt
    old_target = prefs["codegen.target"]
    old_random = runtime_device.get_random_state()
    tmpdir: str | None = None
    standalone_device = None
    try:
        start_scope()
        defaultclock.dt = float(dt) * brian2.second
        if target == "cpp_standalone":
            if directory is None:
                tmpdir = tempfile.mkdtemp(prefix="bioplaus_brian2_")
                directory = tmpdir
            set_device("cpp_standalone", directory=directory, build_on_run=False)
            standalone_device = get_device()
        else:
            prefs["codegen.target"] = target
        if seed is not None:
            brian2.seed(brian2_seed(seed))
        yield Brian2Scope(brian2.Network(), target, directory)
    finally:
        if standalone_device is not None:
            standalone_device.reinit()
            reset_device()
        prefs["codegen.target"] = old_target
        defaultclock.dt = old_dt
        runtime_device.set_random_state(old_random)
        start_scope()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
