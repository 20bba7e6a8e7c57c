"""Read finished work back: ``bp.load_run(dir)`` and ``bp.load_sweep(dir)``.

::

    run = bp.load_run("demo_out/danp")
    run.status                     # "completed" (or running | diverged | interrupted)
    run.metrics                    # pandas DataFrame: step, loss, eval_loss, metric, ...
    run.params["W_rec"]            # final parameters (numpy); None until the run finished
    run.config["protocol"]["rule"] # the resolved protocol, every default filled in
    run.protocol                   # ... the same, validated (ProtocolSpec)
    run.metric, run.final          # "nrmse"; the last metrics row
    run.task, run.init             # the task object and the initial parameters (rebuilt)

    table = bp.load_sweep("runs/sweeps/mg_noise_tiny")   # one row per point (DataFrame)

A folder that is not a run (or a sweep), or a file in it that is damaged, raises
:class:`~bioplaus.spec.SpecError` (a ``ValueError``) with one line naming the file.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .labels import METRIC_LABELS, metric_label  # noqa: F401  (re-exported)
from .protocol import ProtocolSpec, protocol_from_dict
from .spec import SpecError


@dataclass(eq=False)
class Run:
    """A run directory read back: what :func:`bioplaus.run` wrote."""

    path: Path
    config: dict[str, Any]  # config.json: resolved protocol, seeds, versions, command
    protocol: ProtocolSpec
    metrics: pd.DataFrame  # metrics.csv
    params: dict[str, np.ndarray] | None  # params_final.npz (None: not finished, or diverged)
    status: str  # running | completed | diverged | interrupted | unknown (no status.json)
    reason: str | None = None  # why it diverged or was interrupted
    step: int | None = None  # the step status.json records

    @cached_property
    def task(self):
        """The run's task, rebuilt from the resolved protocol (same seeds, same data)."""
        from .tasks.build import task_for

        p = self.protocol
        return task_for(p.task, p.model, p.seed, str(self.path / "config.json"))

    @property
    def metric(self) -> str:
        """Name of the task's headline metric (the ``metric`` column), e.g. ``"nrmse"``."""
        return self.task.metric

    @property
    def final(self) -> pd.Series:
        """The last row of the metrics table."""
        return self.metrics.iloc[-1]

    @cached_property
    def init(self) -> dict[str, np.ndarray]:
        """The initial parameters, rebuilt from the recorded seed."""
        from .params import init_params
        from .random import child_seed

        return init_params(self.protocol.model, seed=child_seed(self.protocol.seed, "init_params"))

    @property
    def label(self) -> str:
        """``"anp + decorrelation (danp)"``: the rule as trained, and the folder name."""
        return f"{rule_label(self.protocol)} ({self.path.name})"

    def summary(self) -> str:
        """One line: status, folder, step, held-out loss and the named metric."""
        return summary_line(self.status, self.path, self.final, metric_label(self.metric))

    def __repr__(self) -> str:
        return (
            f"Run({str(self.path)!r}, status={self.status!r}, rule={rule_label(self.protocol)!r}, "
            f"steps={int(self.final['step'])}, {self.metric}={float(self.final['metric']):.4g})"
        )


def rule_label(protocol: ProtocolSpec) -> str:
    """The rule's name with the decorrelation it trains with (``"anp + decorrelation"``)."""
    from .labels import rule_label as label_of

    return label_of(protocol.model_dump(mode="json"))


def summary_line(status: str, out: Path | str, last: pd.Series, metric: str) -> str:
    return (
        f"{status}: {out} — step {int(last['step'])}, held-out loss {last['eval_loss']:.4g}, "
        f"{metric} {last['metric']:.4g}"
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: unreadable (expected a JSON object)")
    return data


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise SpecError(f"{path}: missing ({what})")
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SpecError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory: its config, metrics table, final parameters and status.

    Works on a finished run and on one that is still running or was interrupted (then
    ``params`` is None). A folder that is not a run, or a damaged file in it, raises
    :class:`~bioplaus.spec.SpecError` naming the file.
    """
    d = Path(run_dir)
    if not d.exists():
        raise SpecError(f"{d}: no such run directory")
    if not d.is_dir():
        raise SpecError(f"{d}: not a run directory (a file, not a folder)")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        hint = ""
        if (d / "sweep.json").is_file():
            hint = "; it is a sweep folder: bp.load_sweep"
        raise SpecError(f"{d}: not a run directory (no config.json{hint})")
    cfg = _read_json(cfg_path)
    if not isinstance(cfg.get("protocol"), dict):
        raise SpecError(f"{cfg_path}: unreadable run config (no 'protocol' table)")
    proto = protocol_from_dict(cfg["protocol"], source=str(cfg_path))
    metrics = _read_csv(d / "metrics.csv", "every run writes its metrics table")
    for col in ("step", "eval_loss", "metric"):
        if col not in metrics.columns:
            raise SpecError(f"{d / 'metrics.csv'}: unreadable (no {col!r} column)")
    if metrics.empty:
        raise SpecError(f"{d / 'metrics.csv'}: unreadable (no rows)")
    status, reason, step = "unknown", None, None
    st_path = d / "status.json"
    if st_path.is_file():
        st = _read_json(st_path)
        status = str(st.get("status", "unknown"))
        reason, step = st.get("reason"), st.get("step")
    params = None
    pf = d / "params_final.npz"
    if pf.is_file():
        try:
            with np.load(pf) as z:
                params = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise SpecError(f"{pf}: unreadable ({type(exc).__name__}: {exc})") from None
    elif status == "completed":
        raise SpecError(f"{pf}: missing (status.json says completed)")
    return Run(d, cfg, proto, metrics, params, status, reason, step)


def _sweep_table(d: Path) -> Path | None:
    """results.csv, the table the sweep writes; results.parquet (bioplaus.export's copy of
    it, with pyarrow) only where the CSV is missing."""
    for ext in ("csv", "parquet"):
        if (d / f"results.{ext}").is_file():
            return d / f"results.{ext}"
    return None


def load_sweep(sweep_dir: str | Path) -> pd.DataFrame:
    """A sweep's tidy results table: one row per point (name, variant, swept values,
    status, error, the final metrics row, ``best_metric``, ``wall_time``).

    ``sweep_dir`` is the sweep's folder (``runs/sweeps/NAME`` by default) or its results
    file; a sweep *file* (``.toml``) reads the results at that sweep's default folder.
    Each point's run directory is ``sweep_dir/points/<point>`` (read it with
    :func:`load_run`).
    """
    d = Path(sweep_dir)
    if d.suffix == ".toml" and d.is_file():
        from .spec import read_toml

        name = read_toml(d).get("name", d.stem)  # the sweep's default folder (bioplaus.sweep)
        d = Path("runs") / "sweeps" / str(name)
    if d.is_file() and d.name.startswith("results."):
        table: Path | None = d
    elif not d.exists():
        raise SpecError(f"{d}: no such sweep folder")
    elif not d.is_dir():
        raise SpecError(f"{d}: not a sweep folder (a file, not a folder)")
    else:
        table = _sweep_table(d)
        if table is None:
            hint = "; it is a run directory: bp.load_run" if (d / "config.json").is_file() else ""
            what = "no results table yet" if (d / "sweep.json").is_file() else "no results.csv"
            raise SpecError(f"{d}: not a sweep folder ({what}{hint})")
    try:
        if table.suffix == ".parquet":
            return pd.read_parquet(table)
        return pd.read_csv(table)
    except ImportError as exc:
        raise SpecError(f"{table}: reading Parquet needs pyarrow ({exc})") from None
    except Exception as exc:  # a damaged table: one line naming the file
        raise SpecError(f"{table}: unreadable ({type(exc).__name__}: {exc})") from None
