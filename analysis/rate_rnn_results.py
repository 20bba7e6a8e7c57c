"""Measure NP, ANP, DANP, TBPTT(1) and BPTT on the scaled-down copy and Mackey-Glass tasks.

    python analysis/rate_rnn_results.py --out runs/rate_rnn_results --doc docs/rate-rnn-results.md

Runs protocols/{copy,mackey_glass}_{np,anp,danp,tbptt1,bptt}.toml (equal budget: the same
number of updates and trials for every rule), then writes one figure per task and a Markdown
table of the final held-out metrics, training wall time and the command, to ``--doc``.
Existing finished runs are reused (delete the folder to re-measure).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

import bioplaus as bp
from bioplaus.analysis.plots import plot_comparison

ROOT = Path(__file__).resolve().parent.parent
RULES = {
    "np": "NP",
    "anp": "ANP",
    "danp": "DANP",
    "tbptt1": "TBPTT(1)",
    "bptt": "BPTT",
}
# section -> (protocol prefix, extra overrides, headline metric)
TASKS = {
    "copy": ("copy", [], "error_bits"),
    "copy_fixed": ("copy", ["task.fixed_sequence=true"], "error_bits"),
    "mackey_glass": ("mackey_glass", [], "nrmse"),
}
NOTES = {
    "copy": "Fresh random sequences every batch; held-out sequences are new. An output that "
    "gets every blank step right but no symbol scores 10 error bits; silence scores 25.",
    "copy_fixed": "Paper-exact data: one training sequence repeated (memorisation); the "
    "held-out sequence is a different one, so only the train column can improve.",
    "mackey_glass": "5-step-ahead forecast; predicting the input (persistence) scores NRMSE 0.68.",
}


def finished(run_dir: Path) -> bool:
    st = run_dir / "status.json"
    return st.is_file() and json.loads(st.read_text())["status"] == "completed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="runs/rate_rnn_results")
    ap.add_argument("--doc", default="docs/rate-rnn-results.md")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    args = ap.parse_args(argv)
    out = Path(args.out)
    rows = []
    figs = {}
    for task in args.tasks:
        dirs, labels = [], []
        for rule, label in RULES.items():
            for seed in args.seeds:
                rd = out / task / f"{rule}-s{seed}"
                if not finished(rd):
                    if rd.exists():
                        import shutil

                        shutil.rmtree(rd)
                    prefix, extra, _ = TASKS[task]
                    proto = ROOT / "protocols" / f"{prefix}_{rule}.toml"
                    overrides = [f"seed={seed}", *extra, *args.overrides]
                    bp.run(proto, out=rd, overrides=overrides, progress=True)
                m = pd.read_csv(rd / "metrics.csv")
                last = m.iloc[-1]
                metric = TASKS[task][2]
                tail = m.iloc[-5:]  # the last five evaluations: perturbation learning is noisy
                rows.append(
                    {
                        "task": task,
                        "rule": label,
                        "seed": seed,
                        "steps": int(last["step"]),
                        f"held-out {metric}": last[f"eval_{metric}"],
                        f"held-out {metric}, mean of last 5 evals": tail[f"eval_{metric}"].mean(),
                        f"best held-out {metric}": m[f"eval_{metric}"].min(),
                        f"train {metric}": last[f"train_{metric}"],
                        "held-out loss": last["eval_loss"],
                        "wall time (s)": last["wall_time"],
                    }
                )
                if seed == args.seeds[0]:
                    dirs.append(rd)
                    labels.append(label)
        figs[task] = plot_comparison(
            dirs,
            out / f"{task}.png",
            labels=labels,
            title=f"{task}: every rule at equal budget (seed {args.seeds[0]})",
            split="train" if task == "copy_fixed" else "eval",
        )
    df = pd.DataFrame(rows)
    df.to_csv(out / "results.csv", index=False)
    write_doc(Path(args.doc), df, figs, args, out)
    print(df.to_string(index=False))
    return 0


def write_doc(doc: Path, df: pd.DataFrame, figs: dict, args, out: Path) -> None:
    import shutil

    doc.parent.mkdir(parents=True, exist_ok=True)
    img = doc.parent / "img"
    img.mkdir(exist_ok=True)
    cmd = "python analysis/rate_rnn_results.py " + " ".join(
        [f"--out {args.out}", f"--doc {args.doc}", "--seeds " + " ".join(map(str, args.seeds))]
        + [f"--set {o}" for o in args.overrides]
    )
    lines = [
        "# Rate RNN: NP, ANP, DANP, TBPTT(1) and BPTT at equal budget",
        "",
        f"Measured with `{cmd}` (2-core CPU, one torch thread per run).",
        "",
    ]
    for task, fig in figs.items():
        sub = df[df.task == task].drop(columns=["task"]).dropna(axis=1, how="all")
        agg = sub.groupby("rule", sort=False).mean(numeric_only=True).drop(columns=["seed"])
        n = sub.groupby("rule", sort=False).size().iloc[0]
        lines += [
            f"## {task}",
            "",
            NOTES[task],
            "",
            f"Mean over {n} seed(s).",
            "",
            agg.to_markdown(floatfmt=".4g"),
            "",
        ]
        shutil.copy(fig, img / f"rate-rnn-{task}.png")
        lines += [f"![{task}](img/rate-rnn-{task}.png)", ""]
    doc.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
