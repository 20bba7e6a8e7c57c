"""The brian2 protocols on brian2 and on torch: train, then one figure of the learning curves.

    python analysis/reproduce_brian2.py                  # 4 runs (~8 min on brian2, 2 cores)
    python analysis/reproduce_brian2.py --plot-only      # figure/table from existing runs

Runs go to <runs>/<protocol>_<backend> (default runs/brian2; an existing complete run is
kept, an interrupted one resumed): protocols/brian2/pattern_three_factor.toml and
pattern_anp.toml, once as shipped (backend = "brian2") and once with backend = "torch".
Both back-ends start from the same weights and evaluate the same held-out trials (clean,
σ = 0), so their step-0 losses are identical; afterwards they differ only through the
exploration noise (brian2's xi/rand vs torch's generator). Figure:
docs/figures/brian2_learning.png; the table (start/end eval loss, wall time) is printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ROOT / "protocols" / "brian2"
RULES = {
    "pattern_three_factor": "online three-factor (kicks)",
    "pattern_anp": "paired ANP + decor.",
}
BACKENDS = {"brian2": ("C3", "-"), "torch": ("C0", "--")}


def run_dir(runs: Path, name: str, backend: str) -> Path:
    return runs / f"{name}_{backend}"


def train(runs: Path) -> None:
    """Bring the four runs to completion, one at a time (brian2 runs use one core)."""
    import bioplaus as bp

    for name in RULES:
        for backend in BACKENDS:
            out = run_dir(runs, name, backend)
            done, _ = bp.ensure_run(PROTOCOLS / f"{name}.toml", out, [f'backend="{backend}"'])
            print(f"{out}: {done}", flush=True)


def summary(runs: Path) -> pd.DataFrame:
    """Start/end held-out loss and wall time of every finished run."""
    rows = []
    for name, label in RULES.items():
        for backend in BACKENDS:
            run = run_dir(runs, name, backend)
            if not (run / "metrics.csv").is_file():
                continue
            df = pd.read_csv(run / "metrics.csv").dropna(subset=["eval_loss"])
            status = json.loads((run / "status.json").read_text())["status"]
            rows.append({
                "protocol": name, "rule": label, "backend": backend, "status": status,
                "updates": int(df["step"].iloc[-1]),
                "eval loss start": round(float(df["eval_loss"].iloc[0]), 4),
                "eval loss end": round(float(df["eval_loss"].iloc[-1]), 4),
                "end / start": round(float(df["eval_loss"].iloc[-1] / df["eval_loss"].iloc[0]), 2),
                "eval r2 end": round(float(df["eval_r2"].iloc[-1]), 2),
                "wall s": round(float(df["wall_time"].iloc[-1]), 1),
            })  # fmt: skip
    return pd.DataFrame(rows)


def plot(runs: Path, figure: Path) -> None:
    """Held-out loss against updates, one panel per protocol, brian2 vs torch."""
    fig, axes = plt.subplots(1, len(RULES), figsize=(10, 3.6), sharey=True)
    for ax, (name, label) in zip(axes, RULES.items(), strict=True):
        for backend, (color, ls) in BACKENDS.items():
            run = run_dir(runs, name, backend)
            if not (run / "metrics.csv").is_file():
                continue
            df = pd.read_csv(run / "metrics.csv").dropna(subset=["eval_loss"])
            wall = df["wall_time"].iloc[-1]
            ax.plot(df["step"], df["eval_loss"], color=color, ls=ls, marker="o", ms=3,
                    label=f"{backend} ({wall:.0f} s)")  # fmt: skip
        ax.set_title(f"{name}.toml\n{label}", fontsize=9)
        ax.set_xlabel("update (16 trials each)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("held-out loss (clean, ½ MSE)")
    fig.suptitle(
        "protocols/brian2: N = 32, pattern (2 cues, one sinusoid each), T = 60", fontsize=9
    )
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "brian2")
    ap.add_argument(
        "--figure", type=Path, default=ROOT / "docs" / "figures" / "brian2_learning.png"
    )
    ap.add_argument("--table", type=Path, default=None, help="also write the table (markdown)")
    ap.add_argument("--plot-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.plot_only:
        train(args.runs)
    plot(args.runs, args.figure)
    table = summary(args.runs)
    if args.table is not None:
        args.table.write_text(table.to_markdown(index=False) + "\n")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
