"""Figures of run directories (matplotlib, Agg back-end: no display needed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from .. import io
from ..labels import metric_label, rule_label


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
    a2.set_ylabel(f"held-out {metric_label(metric)}")
    a2.set_title(f"Task metric: {metric_label(metric)}")
    fig.suptitle(f"{proto['name']} — rule {rule_label(proto)}, task {proto['task']['name']}")
    fig.tight_layout()
    return _save(fig, Path(out) if out else run_dir / "loss.png")


def plot_comparison(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    x: str = "step",
    split: str = "eval",
    baselines: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Learning curves of several runs on one task: loss and metric side by side.
    ``x`` is "step" (updates) or "wall_time" (seconds of training); ``split`` is "eval"
    (held-out trials) or "train" (the fixed batch of training trials). ``baselines``:
    ``{label: (loss, metric)}`` drawn as horizontal dashed lines (e.g. a persistence
    forecast on the same trials)."""
    if split not in ("eval", "train"):
        raise ValueError(f"split: must be 'eval' or 'train' (got {split!r})")
    where = "held-out" if split == "eval" else "training-set"
    fig, (a1, a2) = subplots(1, 2, figsize=(11, 4))
    metric = "metric"
    for i, rd in enumerate(run_dirs):
        df, cfg = _run_info(Path(rd))
        metric = _metric_name(cfg, df)
        lab = labels[i] if labels else f"{rule_label(cfg['protocol'])} ({cfg['protocol']['name']})"
        a1.plot(df[x], df[f"{split}_loss"], label=lab, color=f"C{i}")
        a2.plot(df[x], df[f"{split}_{metric}"], label=lab, color=f"C{i}")
    for j, (lab, (loss, met)) in enumerate((baselines or {}).items()):
        style = dict(color="0.4", ls=("--", ":", "-.")[j % 3], lw=1.2, label=lab)
        a1.axhline(loss, **style)
        a2.axhline(met, **style)
    xlabel = "update step" if x == "step" else "training wall time (s)"
    a1.set_yscale("log")
    a1.set_xlabel(xlabel)
    a1.set_ylabel(f"{where} loss L")
    a1.set_title(f"{where.capitalize()} loss")
    a2.set_xlabel(xlabel)
    a2.set_ylabel(f"{where} {metric_label(metric)}")
    a2.set_title(f"{where.capitalize()} {metric_label(metric)}")
    # one legend for both panels, below them, so that it hides no curve
    handles, names = a1.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(handles), 3), frameon=False)
    if title:
        fig.suptitle(title)
    rows = -(-len(handles) // 3)  # legend rows
    fig.tight_layout(rect=(0, 0.06 * rows + 0.02, 1, 1))
    return _save(fig, Path(out))


def raster(ax, spikes, dt: float | None = None, trial: int = 0, color: str = "k", **kw):
    """Draw a spike raster of one trial into ``ax``: ``spikes`` [T, B, N] (or [T, N]) of
    0/1 values, as ``bp.simulate(lif_spec, u, spikes=True)`` returns them; one row per
    neuron, one tick per spike. ``dt`` (seconds) puts time on the x axis in seconds,
    otherwise in steps. Returns ``ax``."""
    import numpy as np

    s = np.asarray(spikes)
    if s.ndim == 3:
        s = s[:, trial]
    if s.ndim != 2:
        raise ValueError(f"spikes: expected shape [T, B, N] or [T, N], got {np.shape(spikes)}")
    t, n = np.nonzero(s > 0.5)
    x = t * dt if dt else t
    ax.scatter(x, n, marker="|", s=kw.pop("s", 12), color=color, linewidths=0.8, **kw)
    T, N = s.shape
    ax.set_xlim(0, T * dt if dt else T)
    ax.set_ylim(-0.5, N - 0.5)
    ax.set_xlabel("time (s)" if dt else "time step")
    ax.set_ylabel("neuron")
    return ax


def plot_rasters(
    spikes: Sequence,
    out: str | Path,
    labels: Sequence[str] | None = None,
    dt: float | None = None,
    trial: int = 0,
    title: str | None = None,
) -> Path:
    """Spike rasters of several networks on the same trial, one panel each, with each
    panel's mean firing rate (Hz when ``dt`` is given) in its title."""
    import numpy as np

    fig, axes = subplots(len(spikes), 1, figsize=(9, 1.2 + 1.6 * len(spikes)), squeeze=False)
    for i, (ax, s) in enumerate(zip(axes[:, 0], spikes, strict=True)):
        s = np.asarray(s)
        raster(ax, s, dt=dt, trial=trial, color=f"C{i}")
        one = s[:, trial] if s.ndim == 3 else s
        rate = one.mean() / dt if dt else one.mean()
        unit = "Hz" if dt else "spikes/step"
        lab = labels[i] if labels else f"network {i}"
        ax.set_title(f"{lab}: mean rate {rate:.3g} {unit}", fontsize=9)
        if i < len(spikes) - 1:
            ax.set_xlabel("")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, Path(out))
