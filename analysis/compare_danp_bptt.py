"""Train DANP and BPTT on the same scaled-down Mackey-Glass task and write the comparison
report shown in docs/analysis.md.

    python analysis/compare_danp_bptt.py [--runs runs/compare]
                                         [--out docs/figures/compare_danp_bptt] [--steps N]
                                         [--set KEY=VALUE ...]

Trains protocols/mackey_glass_danp.toml and protocols/mackey_glass_bptt.toml (2000 Adam
updates each, seed 0; ``--steps`` cuts them) into RUNS/danp and RUNS/bptt — in parallel, one
process each, keeping finished runs and resuming interrupted ones — then runs
``bioplaus compare RUNS/danp RUNS/bptt --out OUT --alignment``.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _train(args: tuple[str, str, list[str]]) -> str:
    import bioplaus as bp

    proto, out, overrides = args
    done, res = bp.ensure_run(proto, out, overrides)
    if res is None:
        return f"{out}: finished run found, not retrained"
    return (
        f"{out}: {done}, {res.status}, final held-out metric {res.metrics['metric'].iloc[-1]:.4g}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", default="runs/compare", help="folder of the two run directories")
    ap.add_argument("--out", default="docs/figures/compare_danp_bptt", help="report folder")
    ap.add_argument("--steps", type=int, default=None, help="override train.steps")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a protocol key of both runs, e.g. --set train.lr=3e-3 (repeatable)",
    )
    ap.add_argument("--trials", type=int, default=32)
    args = ap.parse_args(argv)
    runs = Path(args.runs)
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    jobs = [
        (str(ROOT / "protocols" / f"mackey_glass_{name}.toml"), str(runs / name), overrides)
        for name in ("danp", "bptt")
    ]
    with ProcessPoolExecutor(len(jobs), mp_context=get_context("spawn")) as ex:
        for line in ex.map(_train, jobs):
            print(line)
    from bioplaus.analysis.compare import compare_runs

    res = compare_runs(runs / "danp", runs / "bptt", args.out, alignment=True, n_trials=args.trials)
    print(Path(res["report"]).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
