"""Regenerate the noise-sweep figures and table in docs/sweeps.md from a sweep folder.

    bioplaus sweep protocols/sweeps/mackey_glass_noise_small.toml --workers 2 \\
        --out runs/sweeps/mackey_glass_noise_small
    python analysis/noise_sweep_figure.py runs/sweeps/mackey_glass_noise_small \\
        --out docs/figures/noise_sweep

Writes OUT/noise_sweep_metric.png (final held-out NRMSE against σ), OUT/noise_sweep_loss.png
(final held-out loss) and OUT/noise_sweep_table.md (median [min, max] over seeds per rule
and σ), and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from bioplaus import io
from bioplaus.analysis.sweep_plots import plot_sweep, summarise_sweep
from bioplaus.sweep import read_table


def table_markdown(df: pd.DataFrame, x: str, y: str) -> str:
    """Rules as rows, x values as columns: median [min, max] of ``y`` over seeds."""
    s = summarise_sweep(df, x, y)
    xs = sorted(s[x].unique())
    head = f"| rule \\ {x} | " + " | ".join(f"{v:g}" for v in xs) + " |"
    lines = [head, "|---" * (len(xs) + 1) + "|"]
    for rule, sub in s.groupby("rule", sort=False):
        cells = []
        for v in xs:
            r = sub[sub[x] == v]
            if not len(r):
                cells.append("")
            elif r["completed"].iloc[0] == 0:
                cells.append(f"— (0/{int(r['points'].iloc[0])} completed)")
            else:
                r = r.iloc[0]
                extra = (
                    "" if r["completed"] == r["points"] else f" ({r['completed']}/{r['points']})"
                )
                cells.append(f"{r['median']:.3f} [{r['min']:.3f}, {r['max']:.3f}]{extra}")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("sweep", help="sweep folder (holds results.csv)")
    ap.add_argument("--out", default="docs/figures/noise_sweep", help="output folder")
    ap.add_argument("--x", default="model.sigma")
    args = ap.parse_args(argv)
    sweep = Path(args.sweep)
    table = sweep / "results.csv"
    if not table.is_file():
        table = sweep / "results.parquet"
    df = read_table(table)
    out = Path(args.out)
    name = sweep.name
    plot_sweep(
        df,
        out / "noise_sweep_metric.png",
        x=args.x,
        y="metric",
        title=f"{name}: final held-out NRMSE (median, min–max over seeds)",
        ylabel="final held-out NRMSE",
    )
    plot_sweep(
        df,
        out / "noise_sweep_loss.png",
        x=args.x,
        y="eval_loss",
        title=f"{name}: final held-out loss (median, min–max over seeds)",
        ylabel="final held-out loss L",
    )
    md = table_markdown(df, args.x, "metric")
    io.write_text(out / "noise_sweep_table.md", md)
    counts = df["status"].value_counts().to_dict()
    print(f"{len(df)} points: {counts}")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
