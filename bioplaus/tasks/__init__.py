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


class TaskRegistry(dict):
    """Task classes by name, open to user code (``TASKS["mine"] = MyTask``). A name
    ``PREFIX:REST`` whose prefix is in :data:`TASK_ADAPTERS` (``neurogym:<EnvId>``) is built
    on first use by that adapter; an unknown one raises its one-line ValueError."""

    def __missing__(self, name: str) -> type[Task]:
        prefix, sep, rest = name.partition(":") if isinstance(name, str) else ("", "", "")
        if not sep or prefix not in TASK_ADAPTERS:
            raise KeyError(name)
        cls = TASK_ADAPTERS[prefix](rest)
        self[name] = cls
        return cls

    def __contains__(self, name: object) -> bool:
        if dict.__contains__(self, name):
            return True
        return isinstance(name, str) and name.partition(":")[0] in TASK_ADAPTERS and ":" in name

    def get(self, name, default=None):  # type: ignore[override]
        try:
            return self[name]
        except (KeyError, ValueError):
            return default


def _neurogym_adapter(env_id: str) -> type[Task]:
    from .neurogym import neurogym_task

    return neurogym_task(env_id)


#: name prefix -> function(rest of the name) -> Task class (raises ValueError if unknown)
TASK_ADAPTERS = {"neurogym": _neurogym_adapter}

TASKS: dict[str, type[Task]] = TaskRegistry(copy=CopyTask, mackey_glass=MackeyGlassTask)
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
    "TASK_ADAPTERS",
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
    cls = TASKS[name]  # an adapter's unknown name raises its own ValueError here
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"task {name!r}: unknown option {unknown[0]!r} (choose from {allowed})")
    try:
        return cls(**options)
    except TypeError as exc:  # e.g. a comparison with a value of the wrong type
        raise ValueError(f"task {name!r}: invalid option ({exc})") from None
