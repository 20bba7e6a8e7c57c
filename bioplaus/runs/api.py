"""The run API: :func:`run`, :func:`resume`, :func:`load_result` and :func:`ensure_run`."""

from __future__ import annotations

import datetime as _dt
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .. import io, validate
from ..params import init_params
from ..protocol import ProtocolSpec
from ..random import child_seed
from ..spec import SpecError
from .config import _comparable, _first_difference, _resolve, build_task, run_config
from .files import _load_checkpoint, read_config, read_metrics, read_params, read_status
from .folder import (
    RUN_FILES,
    RunExistsError,
    _folder_state,
    _remove_temporaries,
    run_lock,
)
from .loop import RunResult, _make_trainer, _train


def run(
    protocol: str | Path | ProtocolSpec | dict,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    *,
    exist_ok: bool = False,
    resume: bool = False,
    overwrite: bool = False,
) -> RunResult:
    """Train a protocol into the run directory ``out`` (default ``runs/NAME-TIMESTAMP``).

    Everything is validated before anything is written (SpecError, one line, on bad input).
    When ``out`` already holds a run:

    - by default, :class:`RunExistsError` (a ``SpecError``);
    - ``exist_ok=True``: a run of the same resolved protocol is kept — returned as loaded
      when it completed or diverged, resumed when it was interrupted; a different protocol
      is an error;
    - ``resume=True``: like ``exist_ok``, but ``out`` must already hold the run;
    - ``overwrite=True``: the run's files are removed and it trains from scratch.

    A folder in use by another process (``RunBusyError``), a non-empty folder that holds no
    run, and damaged run files are refused with nothing changed. SIGINT / SIGTERM finish the
    step in flight, checkpoint it and raise :class:`RunInterrupted` (a ``KeyboardInterrupt``).
    """
    if sum(map(bool, (exist_ok, resume, overwrite))) > 1:
        raise ValueError("exist_ok, resume and overwrite: pass at most one of them")
    if out is not None and not isinstance(out, str | os.PathLike):
        raise TypeError(f"out: expected a folder path (got {type(out).__name__})")
    source = str(protocol) if isinstance(protocol, str | Path) else None
    spec = _resolve(protocol, overrides)
    task = build_task(spec, source)  # validates everything (bioplaus.validate)
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{spec.name}-{stamp}"
    out = Path(out)
    validate.check_out(out)
    state = _folder_state(out)
    if state == "foreign":
        raise SpecError(
            f"{out}: the folder is not empty and holds no run (no config.json); "
            "choose a new or empty folder"
        )
    if state == "run" and (exist_ok or resume):
        return _continue(spec, out, progress)
    if state == "run" and not overwrite:
        raise RunExistsError(
            f"{out} already holds a run (pass exist_ok=True to keep or continue it, "
            "overwrite=True to replace it)",
            out,
        )
    if resume:
        raise SpecError(f"{out}: no run to resume (no config.json); pass exist_ok=True instead")
    params = init_params(spec.model, seed=child_seed(spec.seed, "init_params"))
    trainer = _make_trainer(spec, task, params)  # before anything is written
    with run_lock(out):
        if (out / "config.json").exists() and not overwrite:  # another process was first
            raise RunExistsError(f"{out} already holds a run (started meanwhile)", out)
        if overwrite:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            _remove_temporaries(out)
        io.write_json(out / "config.json", run_config(spec))
        return _train(spec, task, trainer, out, None, progress)


def _continue(spec: ProtocolSpec, out: Path, progress: bool) -> RunResult:
    """exist_ok / resume: the run in ``out`` must be of ``spec``; load or resume it."""
    _, saved = read_config(out)
    a, b = _comparable(saved.model_dump(mode="json")), _comparable(spec.model_dump(mode="json"))
    if a != b:
        raise RunExistsError(
            f"{out} holds a run of a different protocol ({_first_difference(a, b)}); pass "
            "overwrite=True to replace it, or choose another out",
            out,
        )
    st = read_status(out).get("status")
    if st == "diverged" or (st == "completed" and (out / "params_final.npz").is_file()):
        return load_result(out)  # finished: returned as it is, nothing written
    return resume(out, progress=progress)


def load_result(run_dir: str | Path) -> RunResult:
    """The :class:`RunResult` of a finished run, read from its files (nothing is written):
    final parameters of a completed run, last-checkpoint parameters of a diverged one."""
    run_dir = Path(run_dir)
    _, spec = read_config(run_dir)
    st = read_status(run_dir)
    metrics = read_metrics(run_dir, required=True)
    if st.get("status") == "completed":
        return RunResult(metrics, read_params(run_dir), run_dir, "completed", None)
    task = build_task(spec)
    trainer = _make_trainer(
        spec, task, init_params(spec.model, seed=child_seed(spec.seed, "init_params"))
    )
    if not (run_dir / "checkpoint.pt").is_file():
        raise SpecError(f"{run_dir}: checkpoint.pt is missing; nothing was changed")
    _load_checkpoint(run_dir, trainer, spec.train.steps)
    return RunResult(metrics, trainer.params_numpy(), run_dir, "diverged", st.get("reason"))


def resume(
    run_dir: str | Path, progress: bool = True, log: Callable[[str], None] | None = None
) -> RunResult:
    """Continue a run from its last checkpoint; metrics after that checkpoint are dropped
    and re-logged, so the table has each step once. A completed run is returned as it is.

    ``log`` gets one line naming the step it continues from (default: printed to stderr
    when ``progress``). Damaged files (config.json, checkpoint.pt, metrics.csv), a missing
    checkpoint of a run that had progressed, and a folder in use are one-line errors that
    change nothing."""
    if not isinstance(run_dir, str | os.PathLike):
        raise TypeError(f"run_dir: expected a folder path (got {type(run_dir).__name__})")
    run_dir = Path(run_dir)
    if log is None:
        log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else None
    cfg_path = run_dir / "config.json"
    if not run_dir.is_dir() or not cfg_path.is_file():
        raise SpecError(f"{run_dir}: not a run directory (no config.json)")
    _, spec = read_config(run_dir)
    task = build_task(spec, str(cfg_path))
    with run_lock(run_dir):
        st = read_status(run_dir)
        metrics = read_metrics(run_dir)
        ckpt = run_dir / "checkpoint.pt"
        finished = st.get("status") in ("completed", "diverged")
        last = int(metrics["step"].max()) if metrics is not None and len(metrics) else 0
        if (
            st.get("status") == "completed"
            and (run_dir / "params_final.npz").is_file()
            and last >= spec.train.steps  # (a config extended to more steps trains on)
        ):
            res = load_result(run_dir)
            if log:
                log(f"{run_dir}: already completed at step {int(res.metrics['step'].iloc[-1])}")
            return res
        params = init_params(spec.model, seed=child_seed(spec.seed, "init_params"))
        trainer = _make_trainer(spec, task, params)
        if ckpt.is_file():
            sd = _load_checkpoint(run_dir, trainer, spec.train.steps)
            if metrics is None and trainer.step_count > 0:
                raise SpecError(
                    f"{run_dir}: metrics.csv is missing but checkpoint.pt is at step "
                    f"{trainer.step_count}; nothing was changed"
                )
        else:
            done = int(st.get("checkpoint_step") or 0)
            if finished or last > 0 or done > 0:
                what = f"status.json says {st['status']}" if finished else (
                    f"the run had reached step {max(last, done)}"
                )  # fmt: skip
                raise SpecError(
                    f"{run_dir}: checkpoint.pt is missing ({what}); nothing was changed"
                )
            sd = None
        n_tmp = _remove_temporaries(run_dir)
        if log:
            tmp = f"; removed {n_tmp} stale temporary file(s)" if n_tmp else ""
            log(
                f"resuming {run_dir} from step {trainer.step_count} of {spec.train.steps}{tmp}"
                if sd is not None
                else f"resuming {run_dir}: no checkpoint yet, starting from step 0{tmp}"
            )
        return _train(spec, task, trainer, run_dir, sd, progress, metrics)


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
    out = Path(out)
    if read_status(out).get("status") in ("completed", "diverged"):
        return "kept", None
    if (out / "config.json").is_file():
        return "resumed", resume(out, progress=progress)
    return "ran", run(protocol, out=out, overrides=overrides, progress=progress)
