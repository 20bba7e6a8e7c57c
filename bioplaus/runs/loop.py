"""The train-loop driver of a run: steps the trainer, logs metrics rows, writes checkpoints
and status, stops cleanly on SIGINT / SIGTERM, and writes the final parameters, plots and
exports."""

from __future__ import annotations

import datetime as _dt
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .. import io
from ..progress import progress as progress_bar
from ..protocol import ProtocolSpec
from ..registry import network_type
from ..spec import SpecError
from ..tasks.base import Task
from .files import _short
from .folder import RunInterrupted


class RunResult(NamedTuple):
    """What :func:`run` and :func:`resume` return: the metrics table, the final parameters,
    the run directory, and ``completed`` or ``diverged`` with the reason."""

    metrics: pd.DataFrame
    params: dict[str, np.ndarray]
    out: Path
    status: str  # completed | diverged
    reason: str | None = None


def _make_trainer(spec: ProtocolSpec, task: Task, params):
    # the network type's trainer: the one Trainer for every built-in type, which takes the
    # type's hooks for the protocol's back-end (bioplaus/networks/<kind>.py)
    Trainer = network_type(spec.model.kind).trainer_class()
    try:
        return Trainer(spec, task, params)
    except (ValueError, TypeError) as exc:  # a check the run layer missed: still one line
        raise SpecError(_short(exc)) from None


class _Stop:
    """SIGINT / SIGTERM during training: remember it, so the step in flight finishes and is
    checkpointed; a second SIGINT stops at once (KeyboardInterrupt)."""

    SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s)

    def __init__(self) -> None:
        self.signame: str | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.signame is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signame = signal.Signals(signum).name
        print(
            f"bioplaus: {self.signame}: finishing the step in flight, then writing a checkpoint "
            "(Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _train(
    spec: ProtocolSpec,
    task: Task,
    trainer,
    out: Path,
    sd: dict | None,
    progress: bool,
    metrics: pd.DataFrame | None = None,
) -> RunResult:
    from ..analysis.plots import plot_run
    from ..train.trainer import DivergedError

    tr = spec.train
    wall = 0.0
    metrics_path = out / "metrics.csv"
    last_ckpt = 0
    if sd is not None:
        wall = float(sd.get("wall_time", 0.0))
        last_ckpt = trainer.step_count
        if metrics is not None:
            keep = metrics[metrics["step"] <= trainer.step_count]
            if len(keep) != len(metrics):
                io.write_text(metrics_path, keep.to_csv(index=False))
    elif metrics_path.exists():
        metrics_path.unlink()
    header_written = metrics_path.exists() and metrics_path.stat().st_size > 0
    columns: list[str] | None = (
        pd.read_csv(metrics_path, nrows=0).columns.tolist() if header_written else None
    )

    def log(row: dict) -> None:
        nonlocal columns
        if columns is None:
            columns = list(row)
            io.write_text(metrics_path, ",".join(columns) + "\n")
        io.append_line(metrics_path, ",".join(_fmt(row.get(c)) for c in columns))

    def status(s: str, reason: str | None = None) -> None:
        io.write_json(
            out / "status.json",
            {
                "status": s,
                "step": trainer.step_count,
                "checkpoint_step": last_ckpt,
                "steps": tr.steps,
                "reason": reason,
                "pid": os.getpid(),
                "updated": _dt.datetime.now().isoformat(timespec="seconds"),
            },
        )

    def checkpoint() -> None:
        nonlocal last_ckpt
        state = trainer.state_dict()
        state["wall_time"] = wall
        io.write_torch(out / "checkpoint.pt", state)
        last_ckpt = trainer.step_count
        status("running")

    def eval_row(info) -> dict:
        ev = trainer.evaluate()
        row = {
            "step": trainer.step_count,
            "loss": info.loss if info else ev["train_loss"],
            "eval_loss": ev["eval_loss"],
            "metric": ev[f"eval_{task.metric}"],
        }
        row.update({k: v for k, v in ev.items() if k != "eval_loss"})
        row["grad_norm"] = info.grad_norm if info else float("nan")
        row["wall_time"] = wall
        return row

    reason = None
    bar = None
    with _Stop() as stop:
        try:
            status("running")
            if sd is None:  # a fresh start (a resumed step-0 checkpoint has its row already)
                log(eval_row(None))
                checkpoint()
            bar = progress_bar(
                total=tr.steps,
                initial=trainer.step_count,
                disable=not progress,
                desc=f"{spec.name} [{spec.rule.name}]",
                unit="step",
            )
            while trainer.step_count < tr.steps and stop.signame is None:
                t0 = time.perf_counter()
                info = trainer.step()
                wall += time.perf_counter() - t0
                bar.update(1)
                if trainer.step_count % tr.eval_every == 0 or trainer.step_count == tr.steps:
                    row = eval_row(info)
                    log(row)
                    bar.set_postfix(
                        loss=f"{row['loss']:.4g}", **{task.metric: f"{row['metric']:.4g}"}
                    )
                if trainer.step_count % tr.checkpoint_every == 0 or trainer.step_count == tr.steps:
                    checkpoint()
            if stop.signame is not None:
                if last_ckpt != trainer.step_count:
                    checkpoint()
                raise RunInterrupted(out, last_ckpt, stop.signame)
        except DivergedError as exc:
            reason = str(exc)
            status("diverged", reason)
            msg = f"diverged: {reason} (last good checkpoint kept in {out / 'checkpoint.pt'})"
            if bar is not None:
                bar.close()
                bar.write(msg)
            else:
                print(msg)
        except RunInterrupted as exc:
            if bar is not None:
                bar.close()
            status("interrupted", exc.signal)
            raise
        except KeyboardInterrupt:  # stopped at once, mid-step: the last checkpoint stands
            if bar is not None:
                bar.close()
            status("interrupted", "KeyboardInterrupt")
            raise RunInterrupted(out, last_ckpt, "KeyboardInterrupt", trainer.step_count) from None
        else:
            bar.close()
            # params_final.npz before the status that says so: a run killed between the two
            # is "running" and resumes from its last checkpoint, never "completed" without it
            final = trainer.params_numpy()
            io.write_npz(out / "params_final.npz", final)
            status("completed")
    if reason is not None:  # diverged: the parameters as they stand, not saved as final
        final = trainer.params_numpy()
    if metrics_path.is_file() and metrics_path.stat().st_size > 0:
        metrics_df = pd.read_csv(metrics_path)
        plot_run(out)
        from ..export import export_run

        export_run(out)  # metrics_long.csv (+ metrics.parquet, metrics_long.parquet: pyarrow)
    else:  # diverged at the step-0 evaluation: nothing logged, nothing to draw
        metrics_df = pd.DataFrame(columns=["step", "loss", "eval_loss", "metric"])
    return RunResult(metrics_df, final, out, "diverged" if reason else "completed", reason)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return str(v)
