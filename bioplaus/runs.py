"""Run directories: resolved config, metrics, checkpoints, final params, figures; resume.

A run directory holds::

    config.json        resolved protocol (every default filled in), seeds, versions, command
    status.json        running | completed | diverged | interrupted, with the step and reason
    metrics.csv        step, loss, eval_loss, metric, eval_<task metrics>, grad_norm, wall_time
    checkpoint.pt      weights, optimizer, generator states, step (torch, weights_only loadable)
    params_final.npz   final parameters (numpy)
    loss.png           learning curves
    metrics_long.csv   tidy long metrics (+ metrics*.parquet with pyarrow; bioplaus.export)

Every file is written atomically; metrics rows are appended one whole line at a time.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import io
from .params import init_params
from .progress import progress as progress_bar
from .protocol import ProtocolSpec, load_protocol, protocol_from_dict
from .random import child_seed
from .spec import SpecError
from .tasks.base import Task


class RunResult(NamedTuple):
    """What :func:`run` and :func:`resume` return: the metrics table, the final parameters,
    the run directory, and ``completed`` or ``diverged`` with the reason."""

    metrics: pd.DataFrame
    params: dict[str, np.ndarray]
    out: Path
    status: str  # completed | diverged
    reason: str | None = None


def build_task(protocol: ProtocolSpec, source: str | None = None) -> Task:
    """Instantiate the protocol's task and check its sizes against the model (and that the
    protocol's device exists). Errors are one line, ``source: task.<key>: problem``."""
    from .tasks.build import task_for

    head = f"{source}: " if source else ""
    task = task_for(protocol.task, protocol.model, protocol.seed, source)
    if protocol.train.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SpecError(
                f"{head}train.device: {protocol.train.device!r} requested but CUDA is not available"
            )
    return task


def _resolve(
    protocol: str | Path | ProtocolSpec | dict, overrides: list[str] | None
) -> ProtocolSpec:
    if isinstance(protocol, ProtocolSpec):
        return protocol
    if isinstance(protocol, dict):
        return protocol_from_dict(protocol)
    return load_protocol(protocol, overrides)


def _versions() -> dict[str, str]:
    import torch

    from . import __version__

    return {
        "bioplaus": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def run(
    protocol: str | Path | ProtocolSpec | dict,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> RunResult:
    """Train a protocol from scratch into a new run directory ``out``.

    Everything is validated before anything is written (SpecError on bad input).
    """
    spec = _resolve(protocol, overrides)
    task = build_task(spec, str(protocol) if isinstance(protocol, str | Path) else None)
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{spec.name}-{stamp}"
    out = Path(out)
    if (out / "config.json").exists():
        raise SpecError(f"--out: {out} already holds a run (use `bioplaus resume {out}`)")
    params = init_params(spec.model, seed=child_seed(spec.seed, "init_params"))
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "protocol": spec.model_dump(mode="json"),
        "seeds": {
            "root": spec.seed,
            "init_params": child_seed(spec.seed, "init_params"),
            "task/train": child_seed(spec.seed, "task", "train"),
            "task/eval": child_seed(spec.seed, "task", "eval"),
            "noise": child_seed(spec.seed, "noise"),
        },
        "versions": _versions(),
        "command": " ".join(sys.argv),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    io.write_json(out / "config.json", config)
    return _train(spec, task, params, out, None, progress)


def resume(run_dir: str | Path, progress: bool = True) -> RunResult:
    """Continue a run from its last checkpoint; metrics after that checkpoint are dropped
    and re-logged, so the table has each step once."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise SpecError(f"{run_dir}: not a run directory (no config.json)")
    import json

    spec = protocol_from_dict(json.loads(cfg_path.read_text())["protocol"], source=str(cfg_path))
    task = build_task(spec, str(cfg_path))
    ckpt = run_dir / "checkpoint.pt"
    sd = io.load_torch(ckpt) if ckpt.is_file() else None
    params = init_params(spec.model, seed=child_seed(spec.seed, "init_params"))
    return _train(spec, task, params, run_dir, sd, progress)


def ensure_run(
    protocol: str | Path | ProtocolSpec | dict,
    out: str | Path,
    overrides: list[str] | None = None,
    progress: bool = False,
) -> tuple[str, RunResult | None]:
    """Bring the run directory ``out`` to a finished run, doing only what is missing: keep a
    run whose status.json says ``completed`` or ``diverged``, resume one that was
    interrupted, start one that does not exist. Returns what was done (``"kept"``,
    ``"resumed"`` or ``"ran"``) and the result (None when kept). Scripts that train many
    runs call this, so re-running them is idempotent."""
    import json

    out = Path(out)
    status = out / "status.json"
    if status.is_file():
        try:
            state = json.loads(status.read_text()).get("status")
        except (OSError, ValueError):
            state = None
        if state in ("completed", "diverged"):
            return "kept", None
    if (out / "config.json").is_file():
        return "resumed", resume(out, progress=progress)
    return "ran", run(protocol, out=out, overrides=overrides, progress=progress)


def _train(
    spec: ProtocolSpec, task: Task, params, out: Path, sd: dict | None, progress: bool
) -> RunResult:
    from .analysis.plots import plot_run
    from .train.trainer import DivergedError, Trainer

    if spec.model.kind == "mlp":  # feed-forward models: same trainer contract
        from .train.mlp_trainer import MLPTrainer as Trainer
    if spec.backend == "brian2":  # trials simulated on brian2, same trainer contract
        from .train.brian2_trainer import Brian2Trainer as Trainer

    tr = spec.train
    trainer = Trainer(spec, task, params)
    wall = 0.0
    metrics_path = out / "metrics.csv"
    if sd is not None:
        trainer.load_state_dict(sd)
        wall = float(sd.get("wall_time", 0.0))
        _truncate_metrics(metrics_path, trainer.step_count)
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

    def checkpoint() -> None:
        state = trainer.state_dict()
        state["wall_time"] = wall
        io.write_torch(out / "checkpoint.pt", state)

    def status(s: str, reason: str | None = None) -> None:
        io.write_json(
            out / "status.json", {"status": s, "step": trainer.step_count, "reason": reason}
        )

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

    status("running")
    reason = None
    if sd is None:  # a fresh start (a resumed step-0 checkpoint has its row logged already)
        log(eval_row(None))
        checkpoint()
    bar = progress_bar(
        total=tr.steps,
        initial=trainer.step_count,
        disable=not progress,
        desc=f"{spec.name} [{spec.rule.name}]",
        unit="step",
    )
    try:
        while trainer.step_count < tr.steps:
            t0 = time.perf_counter()
            info = trainer.step()
            wall += time.perf_counter() - t0
            bar.update(1)
            if trainer.step_count % tr.eval_every == 0 or trainer.step_count == tr.steps:
                row = eval_row(info)
                log(row)
                bar.set_postfix(loss=f"{row['loss']:.4g}", **{task.metric: f"{row['metric']:.4g}"})
            if trainer.step_count % tr.checkpoint_every == 0 or trainer.step_count == tr.steps:
                checkpoint()
    except DivergedError as exc:
        reason = str(exc)
        status("diverged", reason)
        bar.close()
        bar.write(f"diverged: {reason} (last good checkpoint kept in {out / 'checkpoint.pt'})")
    except KeyboardInterrupt:
        status("interrupted", "KeyboardInterrupt")
        bar.close()
        raise
    else:
        bar.close()
        status("completed")
    final = trainer.params_numpy()
    if reason is None:
        io.write_npz(out / "params_final.npz", final)
    metrics = pd.read_csv(metrics_path)
    plot_run(out)
    from .export import export_run

    export_run(out)  # metrics_long.csv (+ metrics.parquet, metrics_long.parquet with pyarrow)
    return RunResult(metrics, final, out, "diverged" if reason else "completed", reason)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return str(v)


def _truncate_metrics(path: Path, step: int) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    df = pd.read_csv(path)
    keep = df[df["step"] <= step]
    if len(keep) != len(df):
        io.write_text(path, keep.to_csv(index=False))
