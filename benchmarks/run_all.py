"""Run every benchmark and write BENCHMARKS.md (machine, versions, command, numbers).

    python benchmarks/run_all.py            # or: make bench
    python benchmarks/run_all.py --quick    # smaller sizes, for a smoke check

Every figure is a ratio measured within one run (the machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=HERE, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{args}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"torch {torch.__version__}; {dt.date.today().isoformat()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args()
    q = args.quick
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `python benchmarks/run_all.py{' --quick' if q else ''}` "
        "(one torch thread per process unless stated). Each number is a ratio or a "
        "measurement taken within one run.",
        "",
    ]

    # 1. training update: DANP vs BPTT
    n, b, t = (64, 16, 200) if q else (256, 64, 2000)
    s = run(
        [
            "bench_step.py",
            "--n",
            str(n),
            "--batch",
            str(b),
            "--steps",
            str(t),
            "--repeats",
            "3",
            "--threads",
            "1",
            "--json",
        ]
    )
    lines += [
        "## Training update: DANP (time-local ANP + decorrelation) vs full BPTT",
        "",
        f"N = {n}, B = {b}, T = {t}, CPU, 1 thread "
        f"(`python benchmarks/bench_step.py --n {n} --batch {b} --steps {t} --threads 1`).",
        "",
        "| rule | seconds per update | ratio to BPTT | target |",
        "|---|---|---|---|",
    ]
    for r_, sec in s["seconds"].items():
        tgt = "≤ 0.6" if r_ == "danp" else ""
        lines.append(f"| {r_} | {sec:.3f} | {s['ratio_to_bptt'][r_]:.2f} | {tgt} |")
    lines.append("")

    # 2. peak memory against T
    steps = ["200", "2000"] if q else ["200", "2000", "20000"]
    n2, b2 = (64, 16) if q else (256, 64)
    m = run(["bench_memory.py", "--n", str(n2), "--batch", str(b2), "--steps", *steps])
    lines += [
        "## Peak memory of one update against T",
        "",
        f"N = {n2}, B = {b2}; growth of the peak resident set during one update "
        f"(`python benchmarks/bench_memory.py --n {n2} --batch {b2} --steps {' '.join(steps)}`).",
        "",
        "| rule | T | peak growth (MB) |",
        "|---|---|---|",
    ]
    base = {}
    for row in m["rows"]:
        lines.append(f"| {row['rule']} | {row['T']} | {row['peak_growth_mb']:.1f} |")
        base.setdefault(row["rule"], []).append(row["peak_growth_mb"])
    for r_, v in base.items():
        lines.append("")
        lines.append(
            f"{r_}: peak at T = {steps[-1]} is {v[-1] / max(v[0], 1e-9):.2f}× the peak "
            f"at T = {steps[0]}" + (" (target ≤ 1.2×)" if r_ == "danp" else "")
        )
    lines.append("")

    # 3. rollout throughput against a plain matmul
    n3, b3, t3 = (256, 64, 50) if q else (1024, 256, 100)
    out = []
    for th in (1, os.cpu_count() or 1):
        r3 = run(
            [
                "bench_rollout.py",
                "--n",
                str(n3),
                "--batch",
                str(b3),
                "--steps",
                str(t3),
                "--repeats",
                "3",
                "--threads",
                str(th),
            ]
        )
        out.append(r3)
    lines += [
        "## Rate-RNN rollout throughput",
        "",
        f"N = {n3}, B = {b3}, T = {t3}; FLOPs counted: 2·B·N² per step "
        f"(`python benchmarks/bench_rollout.py --n {n3} --batch {b3} --steps {t3} --threads K`).",
        "",
        "| threads | rollout GFLOP/s | matmul GFLOP/s | fraction | target |",
        "|---|---|---|---|---|",
    ]
    for r3 in out:
        lines.append(
            f"| {r3['threads']} | {r3['gflops']['rollout']:.1f} | "
            f"{r3['gflops']['matmul']:.1f} | {r3['fraction_of_matmul']:.2f} | ≥ 0.70 |"
        )
    lines += [
        "",
        "GPU: no GPU was lent to the session that wrote this file; the GPU rows "
        "(N = 4096, B = 1024) are still to be measured with `--device cuda`.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
