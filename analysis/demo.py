"""The README's demo: train DANP and BPTT on the same scaled-down task, one figure.

    python analysis/demo.py --out demo_out

Runs protocols/demo_danp.toml and protocols/demo_bptt.toml into OUT/danp and OUT/bptt
(each a normal run directory), then writes OUT/demo.png comparing their learning curves
with the persistence baseline (forecasting that the series stays where it is: output =
current input) on the same held-out trials, and prints the final numbers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import bioplaus as bp
from bioplaus.analysis.plots import plot_comparison
from bioplaus.random import numpy_rng
from bioplaus.results import metric_label

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="demo_out", help="output folder (replaced if it exists)")
    ap.add_argument("--steps", type=int, default=None, help="override train.steps (quick look)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    overrides = [] if args.steps is None else [f"train.steps={args.steps}"]
    results = {}
    for name in ("danp", "bptt"):
        proto = ROOT / "protocols" / f"demo_{name}.toml"
        results[name] = bp.run(proto, out=out / name, overrides=overrides, progress=not args.quiet)
    run = bp.load_run(out / "danp")
    loss_p, metric_p = persistence(run)
    label = metric_label(run.metric)
    fig = plot_comparison(
        [out / "danp", out / "bptt"],
        out / "demo.png",
        labels=["DANP (noise + reward signal, forward passes only)", "BPTT (exact gradient)"],
        title="Mackey-Glass 5-step forecast, rate RNN (N = 64): DANP vs BPTT at equal updates",
        baselines={"persistence (output = current input)": (loss_p, metric_p)},
    )
    for name, res in results.items():
        last = res.metrics.iloc[-1]
        print(
            f"{name:11s} final held-out loss {last['eval_loss']:.4g}  {label} "
            f"{last['metric']:.4g}  training time {last['wall_time']:.1f} s"
        )
    print(f"{'persistence':11s}       held-out loss {loss_p:.4g}  {label} {metric_p:.4g}")
    print(f"figure: {fig}")
    return 0


def persistence(run) -> tuple[float, float]:
    """Held-out loss and metric of the persistence forecast (output = current input) on
    the run's own held-out trials (the trainer's eval batch: same seed, same split)."""
    p = run.protocol
    task = run.task
    batch = task.sample(p.train.eval_batch, numpy_rng(p.seed, "task", "eval"), split="test")
    m = task.metrics(batch.inputs, batch)  # n_in = n_out = 1: the input is the forecast
    return m["mse"], m[task.metric]  # mse = ½‖o − y‖² over scored steps = the loss L


if __name__ == "__main__":
    sys.exit(main())
