"""Scaling of one training update (DANP and BPTT): wall time against N, peak memory against T.

    python benchmarks/bench_scaling.py                       # writes docs/figures/scaling.png
    python benchmarks/bench_scaling.py --quick               # small sizes, smoke check
    python benchmarks/bench_scaling.py --replot benchmarks/results/scaling.json  # redraw

Every (rule, size) point runs in a fresh process with one torch thread (bench_memory.py's
child): the reported memory is the growth of the peak resident set during the first update,
the time the median of ``--repeats`` further updates. "danp" is the time-local ANP estimate
with decorrelation statistics (rate/perturb_fast.py); "bptt" is autograd through the same
decorrelated forward (r̂ = D_rec φ(x)), without the decorrelation statistics.

Caps (1 core, a few minutes): against N the batch and length are fixed at B = 16, T = 100
(N = 128 … 4096); against T the width is N = 256, B = 64 (T = 200 … 20,000).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_memory import measure

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RULES = ("danp", "bptt")


def sweep(args) -> dict:
    rows_n, rows_t = [], []
    for n in args.ns:
        for rule in RULES:
            m = measure(rule, n, args.batch_n, args.steps_n, repeats=args.repeats)
            rows_n.append({"rule": rule, "N": n, "B": args.batch_n, "T": args.steps_n, **m})
            print(json.dumps(rows_n[-1]), flush=True)
    for t in args.ts:
        for rule in RULES:
            m = measure(rule, args.n_t, args.batch_t, t, repeats=0)
            rows_t.append({"rule": rule, "N": args.n_t, "B": args.batch_t, "T": t, **m})
            print(json.dumps(rows_t[-1]), flush=True)
    return {"against_N": rows_n, "against_T": rows_t}


def figure(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    style = {"danp": dict(color="C0", marker="o"), "bptt": dict(color="C3", marker="s")}
    for rule in RULES:
        rn = [r for r in res["against_N"] if r["rule"] == rule]
        a1.plot([r["N"] for r in rn], [r["seconds"] for r in rn], label=rule, **style[rule])
        rt = [r for r in res["against_T"] if r["rule"] == rule]
        a2.plot([r["T"] for r in rt], [r["peak_growth_mb"] for r in rt], label=rule, **style[rule])
    r0 = res["against_N"][0]
    a1.set(
        xscale="log", yscale="log", xlabel="N (hidden units)", ylabel="seconds per update",
        title=f"time vs N (B = {r0['B']}, T = {r0['T']}, 1 thread)",
    )  # fmt: skip
    t0 = res["against_T"][0]
    a2.set(
        xscale="log", yscale="log", xlabel="T (steps)", ylabel="peak memory growth (MB)",
        title=f"memory vs T (N = {t0['N']}, B = {t0['B']})",
    )  # fmt: skip
    ns = sorted({r["N"] for r in res["against_N"]})
    a1.set_xticks(ns, [str(v) for v in ns])
    a1.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for a in (a1, a2):
        a.grid(True, which="both", alpha=0.3)
        a.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ns", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096])
    ap.add_argument("--batch-n", type=int, default=16)
    ap.add_argument("--steps-n", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ts", type=int, nargs="+", default=[200, 632, 2000, 6325, 20000])
    ap.add_argument("--n-t", type=int, default=256)
    ap.add_argument("--batch-t", type=int, default=64)
    ap.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "scaling.png"))
    ap.add_argument("--replot", default=None, help="a saved result to redraw")
    args = ap.parse_args()
    if args.quick:
        args.ns, args.steps_n, args.repeats = [64, 128, 256], 20, 1
        args.ts, args.n_t, args.batch_t = [50, 200], 64, 16
    if args.replot:  # redraw the figure from a saved result
        res = json.loads(Path(args.replot).read_text())
    else:
        res = sweep(args)
        if args.figure:
            saved = HERE / "results" / (Path(args.figure).stem + ".json")
            saved.parent.mkdir(exist_ok=True)
            saved.write_text(json.dumps(res, indent=1))
    if args.figure:
        figure(res, Path(args.figure))
        res["figure"] = str(Path(args.figure).resolve())
    print(json.dumps(res))


if __name__ == "__main__":
    main()
