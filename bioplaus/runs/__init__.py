"""Run directories: resolved config, metrics, checkpoints, final params, figures; resume.

A run directory holds::

    config.json        resolved protocol (every default filled in), seeds, versions, command
    status.json        running | completed | diverged | interrupted, with the step and reason
    metrics.csv        step, loss, eval_loss, metric, eval_<task metrics>, grad_norm, wall_time
    checkpoint.pt      weights, optimizer, generator states, step (torch, weights_only loadable)
    params_final.npz   final parameters (numpy)
    loss.png           learning curves
    metrics_long.csv   tidy long metrics (+ metrics*.parquet with pyarrow; bioplaus.export)

    .run.lock          held (``flock``) by the process training the run; holds its pid

Every file is written atomically; metrics rows are appended one whole line at a time.
Everything is validated before the folder is created (:mod:`bioplaus.validate`); a folder in
use by another process, a folder that holds something else, and damaged run files are one-line
errors that change nothing. SIGINT and SIGTERM finish the step in flight, write a checkpoint at
that step, mark the run ``interrupted`` and raise :class:`RunInterrupted`.

The package, one module a concern: :mod:`.folder` (what a folder holds, its lock, the
errors), :mod:`.files` (reading run files back, checked), :mod:`.config` (the protocol, its
task and what config.json records), :mod:`.loop` (the train-loop driver) and :mod:`.api`
(run, resume, load_result, ensure_run). Every name is importable from ``bioplaus.runs``.
"""

from __future__ import annotations

from .api import ensure_run, load_result, resume, run
from .config import build_task, run_config
from .files import check_run_files, read_config, read_metrics, read_params, read_status
from .folder import (
    LOCK,
    RUN_FILES,
    DamagedRunError,
    RunBusyError,
    RunExistsError,
    RunInterrupted,
    held_lock,
    run_lock,
)
from .loop import RunResult

__all__ = [
    "LOCK", "RUN_FILES", "DamagedRunError", "RunBusyError", "RunExistsError", "RunInterrupted",
    "RunResult", "build_task", "check_run_files", "ensure_run", "held_lock", "load_result",
    "read_config", "read_metrics", "read_params", "read_status", "resume", "run",
    "run_config", "run_lock",
]  # fmt: skip
