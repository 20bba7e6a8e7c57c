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
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from . import io, validate
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

    task = task_for(protocol.task, protocol.model, protocol.seed, source)
    validate.check_protocol(protocol, source, task)  # cross-field rules, device, memory
    return task


try:
    import fcntl
except ImportError:  # not on a POSIX system: run folders are not locked
    fcntl = None  # type: ignore[assignment]

LOCK = ".run.lock"
#: files of a run folder; ``overwrite=True`` removes exactly these
RUN_FILES = (
    "config.json", "status.json", "metrics.csv", "checkpoint.pt", "params_final.npz",
    "loss.png", "error.txt",
)  # fmt: skip
#: hidden files a folder may hold and still count as empty (locks of a run or sweep point)
_LOCKS = {LOCK, ".lock"}
#: what a sweep worker leaves in a point whose run failed before it wrote config.json
_FAILED_START = {"status.json", "error.txt"}


class RunExistsError(SpecError):
    """``out`` already holds a run (``.out``: the folder)."""

    def __init__(self, message: str, out: Path):
        super().__init__(message)
        self.out = out


class RunBusyError(SpecError):
    """Another process holds the run folder's lock (``.pid``: its pid, or "?")."""

    def __init__(self, message: str, pid: str):
        super().__init__(message)
        self.pid = pid


class DamagedRunError(SpecError):
    """A run file cannot be read back; nothing was changed."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT / SIGTERM (or Ctrl-C). ``.out`` the folder, ``.step`` the step
    of its last checkpoint, ``.signal`` the signal's name; ``str()`` says how to continue."""

    def __init__(self, out: Path, step: int, signame: str, at: int | None = None):
        self.out, self.step, self.signal = out, step, signame
        at = step if at is None else at
        where = f"at step {at}" + ("" if at == step else f" (last checkpoint: step {step})")
        super().__init__(
            f"{out}: interrupted by {signame} {where}; continue with bp.resume({str(out)!r})"
        )


def _resolve(
    protocol: str | Path | ProtocolSpec | dict, overrides: list[str] | None
) -> ProtocolSpec:
    if isinstance(protocol, ProtocolSpec):
        if overrides:
            raise TypeError("overrides: apply them to a protocol file or dict, not a ProtocolSpec")
        return protocol
    if isinstance(protocol, dict):
        if overrides:
            from .protocol import apply_overrides

            protocol = apply_overrides(protocol, list(overrides))
        return protocol_from_dict(protocol)
    if not isinstance(protocol, str | Path):
        raise TypeError(
            f"protocol: expected a TOML path, a dict or a ProtocolSpec (got "
            f"{type(protocol).__name__})"
        )
    return load_protocol(protocol, overrides)


def _git_info() -> dict[str, Any]:
    """The commit and dirty flag of the checkout bioplaus runs from (empty when not one)."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        top = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        if top.returncode != 0:
            return {}
        root, commit = top.stdout.split()[:2]
        if not (Path(root) / "bioplaus" / "__init__.py").is_file():
            return {}
        st = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return {"git_commit": commit, "git_dirty": bool(st.stdout.strip())}
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


def _versions() -> dict[str, Any]:
    from importlib import metadata

    import torch

    from . import __version__

    out: dict[str, Any] = {
        "bioplaus": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    for dist in ("pydantic", "brian2"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out.update(_git_info())
    return out


# -- the run folder ----------------------------------------------------------------------
def _folder_state(out: Path) -> str:
    """absent | empty | run | foreign (a non-empty folder without config.json)."""
    if not out.exists():
        return "absent"
    if (out / "config.json").exists():
        return "run"
    names = [p.name for p in out.iterdir()]
    rest = [
        n
        for n in names
        if n not in _LOCKS
        and n not in _FAILED_START
        and not (n.startswith(".") and n.endswith(".tmp"))
    ]
    return "foreign" if rest else "empty"


def _read_pid(fd: int) -> str:
    for _ in range(50):  # the holder writes its pid right after it takes the lock
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text.split()[0]
        time.sleep(0.01)
    return "?"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``run_dir/.run.lock`` (which then holds ``PID HOST``);
    refuse at once (:class:`RunBusyError`, naming the holder's pid) when another process
    holds it. The kernel releases the lock when the holder dies, so a killed run never
    blocks its resume."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                raise RunBusyError(
                    f"{run_dir}: in use by another process (pid {pid}); nothing was changed",
                    pid,
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160] + ("…" if len(text) > 160 else "")


def _damaged(run_dir: Path, name: str, why: str) -> DamagedRunError:
    return DamagedRunError(f"{run_dir}: {name} is damaged ({why}); nothing was changed")


def read_config(run_dir: str | Path) -> tuple[dict, ProtocolSpec]:
    """config.json of a run and its protocol, validated (DamagedRunError when unreadable)."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise SpecError(f"{run_dir}: not a run directory (no config.json)")
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _damaged(run_dir, "config.json", _short(exc)) from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("protocol"), dict):
        raise _damaged(run_dir, "config.json", "no 'protocol' table")
    try:
        spec = protocol_from_dict(cfg["protocol"], source="protocol")
    except SpecError as exc:
        raise _damaged(run_dir, "config.json", str(exc)) from None
    return cfg, spec


def read_status(run_dir: Path) -> dict:
    """status.json as a dict ({} when missing or unreadable: it is advisory)."""
    try:
        st = json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return st if isinstance(st, dict) else {}


def read_metrics(run_dir: str | Path, required: bool = False) -> pd.DataFrame | None:
    """metrics.csv checked row by row (DamagedRunError): a header with ``step``, every row as
    wide as the header and complete, steps increasing. None when absent (unless required)."""
    import csv

    run_dir = Path(run_dir)
    path = run_dir / "metrics.csv"
    if not path.is_file():
        if required:
            raise SpecError(f"{run_dir}: not a run directory (no metrics.csv)")
        return None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(run_dir, "metrics.csv", _short(exc)) from None
    if not text.strip():
        if required:
            raise _damaged(run_dir, "metrics.csv", "empty")
        return None
    if not text.endswith("\n"):
        raise _damaged(run_dir, "metrics.csv", "its last row is cut short")
    rows = list(csv.reader(text.splitlines()))
    header = rows[0]
    if "step" not in header or "loss" not in header:
        raise _damaged(run_dir, "metrics.csv", "no step/loss header")
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise _damaged(run_dir, "metrics.csv", f"line {i} has {len(r)} of {len(header)} fields")
    try:
        df = pd.read_csv(path)
        steps = pd.to_numeric(df["step"], errors="raise")
    except (ValueError, pd.errors.ParserError) as exc:
        raise _damaged(run_dir, "metrics.csv", _short(exc)) from None
    if steps.isna().any() or (steps != steps.round()).any() or (steps < 0).any():
        raise _damaged(run_dir, "metrics.csv", "a step that is not a whole number >= 0")
    if len(steps) > 1 and not steps.is_monotonic_increasing or steps.duplicated().any():
        raise _damaged(run_dir, "metrics.csv", "steps repeated or out of order")
    if required and not len(df):
        raise _damaged(run_dir, "metrics.csv", "no rows")
    return df


def read_params(run_dir: str | Path) -> dict[str, np.ndarray]:
    """params_final.npz (DamagedRunError when unreadable)."""
    run_dir = Path(run_dir)
    path = run_dir / "params_final.npz"
    if not path.is_file():
        raise SpecError(f"{run_dir}: no params_final.npz (the run has not completed)")
    try:
        with np.load(path, allow_pickle=False) as z:
            params = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    except Exception as exc:  # noqa: BLE001 — a zip, pickle or header error: all damage
        raise _damaged(run_dir, "params_final.npz", _short(exc)) from None
    if not params:
        raise _damaged(run_dir, "params_final.npz", "no arrays")
    return params


def check_run_files(run_dir: str | Path, params: bool = False) -> None:
    """What ``plot`` and ``compare`` read: config.json, metrics.csv (and params_final.npz)."""
    read_config(run_dir)
    read_metrics(run_dir, required=True)
    if params:
        read_params(run_dir)


def _load_checkpoint(run_dir: Path, trainer, steps: int) -> dict:
    """checkpoint.pt loaded and checked against the trainer (DamagedRunError), then loaded
    into it."""
    path = run_dir / "checkpoint.pt"
    try:
        sd = io.load_torch(path)
    except Exception as exc:  # noqa: BLE001 — truncated zip, garbage, unpickling refused
        raise _damaged(run_dir, "checkpoint.pt", _short(exc)) from None
    if not isinstance(sd, dict):
        raise _damaged(run_dir, "checkpoint.pt", "not a checkpoint")
    missing = [k for k in ("step", "weights", "optimizer") if k not in sd]
    if missing:
        raise _damaged(run_dir, "checkpoint.pt", f"missing key {missing[0]!r}")
    w = sd["weights"]
    if not isinstance(w, dict) or set(w) != set(trainer.weights):
        raise _damaged(
            run_dir, "checkpoint.pt", f"weights {sorted(w) if isinstance(w, dict) else w!r} "
            f"do not match the model's {sorted(trainer.weights)}",
        )  # fmt: skip
    for k, v in trainer.weights.items():
        shape = tuple(getattr(w[k], "shape", ()))
        if shape != tuple(v.shape):
            raise _damaged(
                run_dir, "checkpoint.pt", f"{k} has shape {list(shape)}, the model needs "
                f"{list(v.shape)}",
            )  # fmt: skip
    step = sd["step"]
    step = int(step) if isinstance(step, int) or hasattr(step, "item") else step
    if not isinstance(step, int) or not 0 <= step <= steps:
        raise _damaged(run_dir, "checkpoint.pt", f"step {sd['step']!r} outside 0…{steps}")
    try:
        trainer.load_state_dict(sd)
    except Exception as exc:  # noqa: BLE001
        raise _damaged(run_dir, "checkpoint.pt", _short(exc)) from None
    return sd


def _make_trainer(spec: ProtocolSpec, task: Task, params):
    from .train.trainer import Trainer

    if spec.model.kind == "mlp":  # feed-forward models: same trainer contract
        from .train.mlp_trainer import MLPTrainer as Trainer
    if spec.backend == "brian2":  # trials simulated on brian2, same trainer contract
        from .train.brian2_trainer import Brian2Trainer as Trainer
    try:
        return Trainer(spec, task, params)
    except (ValueError, TypeError) as exc:  # a check the run layer missed: still one line
        raise SpecError(_short(exc)) from None


def _comparable(dump: dict) -> dict:
    d = json.loads(json.dumps(dump))
    d.get("train", {}).pop("threads", None)
    return d


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path}: saved {a!r}, now {b!r}"


# -- the API -------------------------------------------------------------------------------
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
        import torch

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
            "torch_threads": torch.get_num_threads(),
            "command": " ".join(sys.argv),
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        io.write_json(out / "config.json", config)
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


def _remove_temporaries(run_dir: Path) -> int:
    n = 0
    for f in run_dir.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            f.unlink()
            n += 1
    return n


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
    from .analysis.plots import plot_run
    from .train.trainer import DivergedError

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
            status("completed")
    final = trainer.params_numpy()
    if reason is None:
        io.write_npz(out / "params_final.npz", final)
    if metrics_path.is_file() and metrics_path.stat().st_size > 0:
        metrics_df = pd.read_csv(metrics_path)
        plot_run(out)
        from .export import export_run

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
