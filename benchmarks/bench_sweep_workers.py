"""Sweep throughput: 2 local workers against 1 on the same 8-point sweep.

    python benchmarks/bench_sweep_workers.py [--steps 100] [--repeat 2] [--threads2]

The sweep is the scaled-down Mackey-Glass ANP protocol (H = 64, T = 200, batch 16) over
σ ∈ {1e-4, 1e-3, 1e-2, 1e-1} × seeds {0, 1}: 8 independent runs of ``--steps`` updates.
Each configuration runs into a fresh folder, timed end to end (``run_sweep`` wall time,
worker start-up included):

    1 worker,  train.threads = 1   (in this process: the serial baseline)
    2 workers, train.threads = 1   (a Dask LocalCluster of 2 worker processes, start-up and
                                    shut-down included)
    1 worker,  train.threads = 2   (only with --threads2: one run using both cores)

The configurations run interleaved ``--repeat`` times (A, B, A, B, …) so that load from
other jobs hits both alike; the table reports the best (minimum) and the median wall time
of each, and the CPU time the sweep used (this process and its workers), whose ratio to
the wall time shows how many cores it actually got (the workers' CPU on the points is read
from the table's ``point_cpu_seconds``; their start-up imports are not counted).
Speed-up = baseline best time / 2-worker best time. The machine's load average is printed
before and after: on a shared machine other jobs take cores away, so read the numbers
with it. Prints a Markdown table and a JSON line for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SWEEP = """
name = "bench_workers"
protocol = "{protocol}"
[fixed]
"train.steps" = {steps}
"train.eval_every" = {steps}
"train.checkpoint_every" = {steps}
[grid]
"model.sigma" = [1e-4, 1e-3, 1e-2, 1e-1]
seed = [0, 1]
"""


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    import resource

    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    import statistics

    from bioplaus.sweep import load_sweep, run_sweep

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="updates per point (100)")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved repeats (2)")
    ap.add_argument("--out", default="/tmp/bench_sweep", help="scratch folder (replaced)")
    ap.add_argument(
        "--threads2", action="store_true", help="also 1 worker with 2 threads (slow when loaded)"
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    f = out / "sweep.toml"
    f.write_text(
        SWEEP.format(protocol=ROOT / "protocols" / "mackey_glass_anp.toml", steps=args.steps)
    )
    sweep = load_sweep(f)
    configs = [("1 worker, 1 thread", 1, 1)]
    if args.threads2:
        configs.append(("1 worker, 2 threads", 1, 2))
    configs.append(("2 workers, 1 thread each", 2, 1))
    load0 = os.getloadavg()
    times: dict[str, list[float]] = {c[0]: [] for c in configs}
    cpus: dict[str, list[float]] = {c[0]: [] for c in configs}
    for rep in range(args.repeat):
        for label, workers, threads in configs:
            c0, t0 = _cpu(), time.perf_counter()
            df = run_sweep(
                sweep,
                out / f"r{rep}w{workers}t{threads}",
                workers=workers,
                threads=threads,
                progress=False,
                plot=False,
            )
            times[label].append(time.perf_counter() - t0)
            # this process (and its reaped children) + what the Dask workers spent on the
            # points (their own process_time, in the table: workers are not our children)
            worker_cpu = float(df["point_cpu_seconds"].sum()) if workers > 1 else 0.0
            cpus[label].append(_cpu() - c0 + worker_cpu)
            assert (df["status"] == "completed").all(), df[["point", "status", "error"]]
            print(
                f"repeat {rep}: {label}: {times[label][-1]:.1f} s wall, "
                f"{cpus[label][-1]:.1f} s CPU, load {os.getloadavg()[0]:.2f}",
                file=sys.stderr,
            )
    load1 = os.getloadavg()
    best = {k: min(v) for k, v in times.items()}
    base = best["1 worker, 1 thread"]
    two = best["2 workers, 1 thread each"]
    print(
        f"\n8 points × {args.steps} updates, {args.repeat} interleaved repeats; cores visible: "
        f"{len(os.sched_getaffinity(0))}; load average before {load0[0]:.2f}, "
        f"after {load1[0]:.2f}\n"
    )
    print(
        "| configuration | best wall (s) | median wall (s) | CPU (s) | cores used "
        "| speed-up (best) |"
    )
    print("|---|---|---|---|---|---|")
    for label, ts in times.items():
        i = ts.index(min(ts))
        print(
            f"| {label} | {min(ts):.1f} | {statistics.median(ts):.1f} | {cpus[label][i]:.1f} "
            f"| {cpus[label][i] / ts[i]:.2f} | {base / min(ts):.2f}× |"
        )
    print(
        json.dumps(
            {
                "steps": args.steps,
                "times_s": times,
                "cpu_s": cpus,
                "speedup_2w_best": base / two,
                "load_before": load0,
                "load_after": load1,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
