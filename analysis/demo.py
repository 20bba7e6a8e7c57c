"""The README's demo: train DANP and BPTT on the same scaled-down task, one figure.

    python analysis/demo.py --out demo_out

Runs protocols/demo_danp.toml and protocols/demo_bptt.toml into OUT/danp and OUT/bptt
(each a normal run directory), then writes OUT/demo.png comparing their learning curves
and prints the final numbers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import bioplaus as bp
from bioplaus.analysis.plots import plot_comparison

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
    fig = plot_comparison(
        [out / "danp", out / "bptt"],
        out / "demo.png",
        labels=["DANP (noise + reward signal, forward passes only)", "BPTT (exact gradient)"],
        title="Mackey-Glass 5-step forecast, rate RNN (N = 64): DANP vs BPTT at equal updates",
    )
    for name, res in results.items():
        last = res.metrics.iloc[-1]
        print(
            f"{name:5s} final held-out loss {last['eval_loss']:.4g}  metric {last['metric']:.4g}  "
            f"training time {last['wall_time']:.1f} s"
        )
    print(f"figure: {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
