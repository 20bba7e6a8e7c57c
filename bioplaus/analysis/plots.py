"""Figures of run directories (matplotlib, Agg back-end: no display needed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .. import io


def subplots(*args, **kwargs):
    """``Figure(...).subplots(...)`` without pyplot: no global figure manager, so runs in
    threads (a Dask worker with processes=False) can draw at the same time."""
    figsize = kwargs.pop("figsize", None)
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def _run_info(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    cfg = json.loads((run_dir / "config.json").read_text())
    return pd.read_csv(run_dir / "metrics.csv"), cfg


def _save(fig, path: Path) -> Path:
    io.atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=120, bbox_inches="tight"))
    return path


def _metric_name(cfg: dict, df: pd.DataFrame) -> str:
    from ..tasks import TASKS

    task = TASKS.get(cfg["protocol"]["task"]["name"])
    return task.metric if task is not None else "metric"


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Training loss, held-out loss and the task metric against the update step."""
    run_dir = Path(run_dir)
    df, cfg = _run_info(run_dir)
    proto = cfg["protocol"]
    metric = _metric_name(cfg, df)
    fig, (a1, a2) = subplots(1, 2, figsize=(10, 3.8))
    a1.plot(df["step"], df["loss"], label="training batch (clean)")
    a1.plot(df["step"], df["eval_loss"], label="held-out")
    a1.set_yscale("log")
    a1.set_xlabel("update step")
    a1.set_ylabel("loss L (mean over steps and trials)")
    a1.set_title("Loss")
    a1.legend()
    a2.plot(df["step"], df["metric"], color="C2")
    a2.set_xlabel("update step")
    a2.set_ylabel(f"held-out {metric}")
    a2.set_title(f"Task metric: {metric}")
    fig.suptitle(f"{proto['name']} — rule {proto['rule']['name']}, task {proto['task']['name']}")
    fig.tight_layout()
    return _save(fig, Path(out) if out else run_dir / "loss.png")


def plot_comparison(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    x: str = "step",
    split: str = "eval",
) -> Path:
    """Learning curves of several runs on one task: loss and metric side by side.
    ``x`` is "step" (updates) or "wall_time" (seconds of training); ``split`` is "eval"
    (held-out trials) or "train" (the fixed batch of training trials)."""
    if split not in ("eval", "train"):
        raise ValueError(f"split: must be 'eval' or 'train' (got {split!r})")
    where = "held-out" if split == "eval" else "training-set"
    fig, (a1, a2) = subplots(1, 2, figsize=(11, 4))
    metric = "metric"
    for i, rd in enumerate(run_dirs):
        df, cfg = _run_info(Path(rd))
        metric = _metric_name(cfg, df)
        lab = (
            labels[i]
            if labels
            else f"{cfg['protocol']['rule']['name']} ({cfg['protocol']['name']})"
        )
        a1.plot(df[x], df[f"{split}_loss"], label=lab, color=f"C{i}")
        a2.plot(df[x], df[f"{split}_{metric}"], label=lab, color=f"C{i}")
    xlabel = "update step" if x == "step" else "training wall time (s)"
    a1.set_yscale("log")
    a1.set_xlabel(xlabel)
    a1.set_ylabel(f"{where} loss L")
    a1.set_title(f"{where.capitalize()} loss")
    a2.set_xlabel(xlabel)
    a2.set_ylabel(f"{where} {metric}")
    a2.set_title(f"{where.capitalize()} {metric}")
    a1.legend()
    a2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, Path(out))
