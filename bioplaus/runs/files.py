"""Reading a run's files back, each checked: config.json, status.json, metrics.csv,
params_final.npz and checkpoint.pt. A file that cannot be read is a one-line
:class:`~.folder.DamagedRunError` and nothing is changed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..protocol import ProtocolSpec, protocol_from_dict
from ..spec import SpecError
from .folder import DamagedRunError


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
