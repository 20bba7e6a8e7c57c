"""Build a protocol's task from its ``[task]`` table and check it against the model."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ..random import child_seed
from ..registry import network_type
from ..spec import SpecError
from .base import Task


def task_for(table: Mapping[str, Any], model: Any, seed: int, source: str | None = None) -> Task:
    """Instantiate the task of a ``[task]`` table for ``model`` (a model spec) and a run's
    root ``seed``; its sizes must match the model's.

    Errors are one line, ``source: task.<key>: problem``."""
    from . import TASKS, make_task

    head = f"{source}: " if source else ""
    name = table.get("name")
    if not isinstance(name, str) or name not in TASKS:
        raise SpecError(f"{head}task.name: unknown task {name!r} (choose from {sorted(TASKS)})")
    opts = {k: v for k, v in table.items() if k != "name"}
    if "seed" in inspect.signature(TASKS[name]).parameters:
        # the task's own data seed derives from the run's root seed unless given
        opts.setdefault("seed", child_seed(seed, "task", "data"))
    try:
        task = make_task(name, **opts)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        words = msg.replace("'", " ").replace(":", " ").split()
        key = next((w for w in words if w in opts), None)
        raise SpecError(f"{head}task{'.' + key if key else ''}: {msg}") from None
    for key, want in (("n_in", task.n_in), ("n_out", task.n_out)):
        if getattr(model, key) != want:
            raise SpecError(
                f"{head}model.{key}: {getattr(model, key)} does not match task {name!r} "
                f"({key}={want})"
            )
    # static samples (an MLP): the model's output layer fixes the loss
    if not network_type(model.kind).sequential and task.loss != model.loss:
        raise SpecError(
            f"{head}model.output: {model.output!r} uses loss {model.loss!r} but task {name!r} is "
            f"scored with {task.loss!r}"
        )
    return task
