"""Tasks: a registry of :class:`Task` classes by name, and :func:`make_task`."""

from __future__ import annotations

import inspect

from .base import Batch, Task
from .context import ContextTask
from .copy import CopyTask
from .copy_rate import RateCodedCopyTask
from .decision import DecisionTask
from .delayed_match import DelayedMatchTask
from .digits import DigitsTask
from .mackey_glass import MackeyGlassTask
from .pattern import PatternTask
from .seq_digits import SeqDigitsTask
from .synthetic import SyntheticTask

TASKS: dict[str, type[Task]] = {"copy": CopyTask, "mackey_glass": MackeyGlassTask}
TASKS["delayed_match"] = DelayedMatchTask
TASKS["decision"] = DecisionTask
TASKS["context"] = ContextTask
TASKS["pattern"] = PatternTask
TASKS["copy_rate"] = RateCodedCopyTask
TASKS["digits"] = DigitsTask
TASKS["synthetic"] = SyntheticTask
TASKS["seq_digits"] = SeqDigitsTask

__all__ = [
    "TASKS",
    "Batch",
    "ContextTask",
    "CopyTask",
    "DecisionTask",
    "DelayedMatchTask",
    "MackeyGlassTask",
    "PatternTask",
    "SeqDigitsTask",
    "Task",
    "make_task",
    "register_task",
]


def register_task(name: str, cls: type[Task], replace: bool = False) -> type[Task]:
    """Register a :class:`Task` subclass under ``name`` so protocols can name it (its
    constructor's keyword arguments are the ``[task]`` table's options). Returns ``cls``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"task name must be a non-empty string (got {name!r})")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"task {name!r}: expected a subclass of bioplaus.tasks.Task (got {cls!r})")
    old = TASKS.get(name)
    if old is not None and old is not cls and not replace:
        same = (old.__module__, old.__qualname__) == (cls.__module__, cls.__qualname__)
        if not same:
            raise ValueError(f"task {name!r} is already registered (pass replace=True)")
    TASKS[name] = cls
    return cls


def make_task(name: str, **options: object) -> Task:
    """The task ``name`` built with ``options``.

    Raises ValueError naming the problem: an unknown task, an unknown option (with the
    options the task takes), or an invalid value (the task's own message names the option).
    """
    if name not in TASKS:
        raise ValueError(f"task: unknown task {name!r} (choose from {sorted(TASKS)})")
    cls = TASKS[name]
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"task {name!r}: unknown option {unknown[0]!r} (choose from {allowed})")
    try:
        return cls(**options)
    except TypeError as exc:  # e.g. a comparison with a value of the wrong type
        raise ValueError(f"task {name!r}: invalid option ({exc})") from None
