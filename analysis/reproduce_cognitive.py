"""Cognitive tasks × {online three-factor, DANP, BPTT}: train, then plot one figure per task.

    python analysis/reproduce_cognitive.py                       # all 12 protocols
    python analysis/reproduce_cognitive.py --tasks delayed_match --workers 2
    python analysis/reproduce_cognitive.py --plot-only           # figures from existing runs

Runs go to runs/cognitive/<protocol name> (an existing complete run is reused, an
interrupted one resumed); figures to docs/figures/cognitive_<task>.png; a summary table
(final held-out metric, trials to reach 90 % accuracy) to docs/figures/cognitive_summary.md.
The x axis is trials seen (updates × batch size), the same budget for every rule of a task.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ROOT / "protocols" / "cognitive"
TASKS = ("delayed_match", "decision", "context", "pattern")
RULES = {"three_factor": "online three-factor", "danp": "DANP", "bptt": "BPTT"}
COLORS = {"three_factor": "C3", "danp": "C0", "bptt": "C2"}


def _train(args: tuple[str, str, list[str]]) -> str:
    import bioplaus as bp

    proto, out, overrides = args
    done, res = bp.ensure_run(proto, out, overrides)
    return f"{out}: {done}" + ("" if res is None else f", {res.status}")


def trials_to(df: pd.DataFrame, col: str, level: float, batch: int) -> float:
    """Trials seen at the first evaluation where ``col`` ≥ ``level`` (NaN if never)."""
    hit = df[df[col] >= level]
    return float(hit["step"].iloc[0] * batch) if len(hit) else float("nan")


def plot_task(task: str, runs: Path, figures: Path) -> list[dict]:
    rows = []
    fig, ax = plt.subplots(figsize=(6, 3.8))
    metric = "eval_r2" if task == "pattern" else "eval_accuracy"
    for rule, label in RULES.items():
        run = runs / f"{task}_{rule}"
        if not (run / "metrics.csv").is_file():
            continue
        df = pd.read_csv(run / "metrics.csv")
        cfg = json.loads((run / "config.json").read_text())["protocol"]
        batch = cfg["train"]["batch_size"]
        status = json.loads((run / "status.json").read_text())["status"]
        ax.plot(df["step"] * batch, df[metric], color=COLORS[rule], label=f"{label} ({status})")
        rows.append(
            {
                "task": task,
                "rule": label,
                "status": status,
                "trials": int(df["step"].iloc[-1] * batch),
                metric: round(float(df[metric].iloc[-1]), 3),
                f"best {metric}": round(float(df[metric].max()), 3),
                "trials to 90% accuracy": trials_to(df, "eval_accuracy", 0.9, batch),
                "wall s": round(float(df["wall_time"].iloc[-1]), 1),
            }
        )
    if task != "pattern":
        ax.axhline(0.9, color="0.6", lw=0.8, ls="--")
        ax.set_ylim(0.3, 1.02)
    ax.set_xlabel("trials")
    ax.set_ylabel(f"held-out {metric.removeprefix('eval_')}")
    ax.set_title(f"{task}: held-out {metric.removeprefix('eval_')} at equal trial budget")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figures.mkdir(parents=True, exist_ok=True)
    fig.savefig(figures / f"cognitive_{task}.png", dpi=120)
    plt.close(fig)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "cognitive"))
    ap.add_argument("--figures", default=str(ROOT / "docs" / "figures"))
    ap.add_argument("--workers", type=int, default=1, help="parallel runs (1 thread each)")
    ap.add_argument("--set", action="append", default=[], help="override for every protocol")
    ap.add_argument("--plot-only", action="store_true")
    a = ap.parse_args(argv)
    runs, figures = Path(a.runs), Path(a.figures)
    if not a.plot_only:
        jobs = [
            (str(PROTOCOLS / f"{t}_{r}.toml"), str(runs / f"{t}_{r}"), a.set)
            for t in a.tasks
            for r in a.rules
        ]
        if a.workers > 1:
            with ProcessPoolExecutor(a.workers) as ex:
                for msg in ex.map(_train, jobs):
                    print(msg, flush=True)
        else:
            for job in jobs:
                print(_train(job), flush=True)
    rows = [r for t in a.tasks for r in plot_task(t, runs, figures)]
    table = pd.DataFrame(rows)
    if len(table):
        text = table.to_markdown(index=False)
        (figures / "cognitive_summary.md").write_text(text + "\n")
        print(text)


if __name__ == "__main__":
    main()
