"""The standard sweep figure: a final loss or metric against a swept key (σ above all), one
line per rule (variant), with the spread over seeds.

For each rule and x value the line is the median over seeds, the band spans min … max, and
every seed is a dot. A rule swept at a single x (e.g. BPTT, which has no σ) is drawn as a
horizontal reference line with its band. Points that diverged or failed are marked × at the
top of the axes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .plots import _save  # noqa: E402


def summarise_sweep(df: pd.DataFrame, x: str, y: str = "metric") -> pd.DataFrame:
    """Per rule and x: number of seeds run, completed, median/min/max of ``y``
    (completed points only)."""
    group = "variant" if "variant" in df and df["variant"].notna().any() else "rule"
    ok = df[df["status"] == "completed"]
    g = ok.groupby([group, x], sort=False)[y]
    summ = g.agg(["median", "min", "max", "mean", "std", "count"]).reset_index()
    tot = df.groupby([group, x], sort=False).size().rename("points").reset_index()
    summ = tot.merge(summ, on=[group, x], how="left")
    summ["count"] = summ["count"].fillna(0).astype(int)
    return summ.rename(columns={group: "rule", "count": "completed"})


def plot_sweep(
    df: pd.DataFrame,
    out: str | Path,
    x: str = "model.sigma",
    y: str = "metric",
    title: str | None = None,
    logy: bool | None = None,
    ylabel: str | None = None,
) -> Path:
    """Draw ``y`` against ``x`` per rule with the spread over seeds; return the PNG path."""
    group = "variant" if "variant" in df and df["variant"].notna().any() else "rule"
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    xs_all = pd.to_numeric(df[x], errors="coerce")
    # log x when the swept values span decades; a reference rule pinned at 0 (BPTT's σ)
    # is drawn as a horizontal line and does not count
    pos = xs_all[xs_all > 0]
    logx = bool(len(pos) and pos.max() / pos.min() > 50)
    ok = df[df["status"] == "completed"].copy()
    bad = df[df["status"] != "completed"]
    for i, (rule, sub) in enumerate(df.groupby(group, sort=False)):
        color = f"C{i}"
        s_ok = ok[ok[group] == rule]
        if len(s_ok) == 0:
            ax.plot([], [], color=color, label=f"{rule} (no completed point)")
            continue
        stats = s_ok.groupby(x)[y].agg(["median", "min", "max"]).sort_index()
        if len(stats) == 1 and sub[x].nunique() == 1:
            med, lo, hi = stats.iloc[0]
            ax.axhline(med, color=color, ls="--", label=f"{rule} ({x}={stats.index[0]:g})")
            ax.axhspan(lo, hi, color=color, alpha=0.12)
            continue
        xv = stats.index.to_numpy(dtype=float)
        ax.plot(xv, stats["median"], "-o", color=color, ms=4, label=str(rule))
        ax.fill_between(xv, stats["min"], stats["max"], color=color, alpha=0.18, lw=0)
        ax.scatter(s_ok[x], s_ok[y], color=color, s=8, alpha=0.6, zorder=3)
    if len(bad):
        top = ax.get_ylim()[1]
        for i, (rule, _) in enumerate(df.groupby(group, sort=False)):
            b = bad[bad[group] == rule]
            if len(b):
                ax.scatter(
                    b[x], np.full(len(b), top), marker="x", color=f"C{i}", s=40, clip_on=False
                )
        ax.scatter([], [], marker="x", color="k", label="diverged / failed")
    if logx:
        ax.set_xscale("log")
    vals = ok[y].to_numpy(dtype=float)
    if logy is None:
        logy = bool(len(vals) and (vals > 0).all() and vals.max() / vals.min() > 10)
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(x + (" (noise σ)" if x.endswith("sigma") else ""))
    ax.set_ylabel(ylabel or f"final {y}" + (" (held-out)" if y in ("metric", "eval_loss") else ""))
    ax.set_title(title or f"{y} against {x}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(out))
