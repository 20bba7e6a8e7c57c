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
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIGURE = Path("docs") / "figures" / "scaling.png"


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


def gpu_section(path: Path) -> list[str]:
    """The "## GPU check" section of the existing file, kept as it is: its numbers come from
    ``benchmarks/gpu_check.py`` on a GPU machine, which this script does not run."""
    if not path.exists():
        return []
    out: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            if out:
                break
            if line.startswith("## GPU check"):
                out.append(line)
        elif out:
            out.append(line)
    return out + [""] if out else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--note", default="", help="a line about the run (e.g. machine load)")
    args = ap.parse_args()
    q = args.quick
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.",
        *(["", args.note, ""] if args.note else [""]),
        f"Command: `python benchmarks/run_all.py{' --quick' if q else ''}` "
        "(one torch thread per process unless stated). Each number is a ratio or a "
        "measurement taken within one run.",
        "",
    ]

    # 1. training update: DANP vs BPTT
    n, b, t = (64, 16, 200) if q else (256, 64, 2000)
    step_cmd = (
        f"--n {n} --batch {b} --steps {t} --repeats 7 --threads 1 "
        "--rules danp dbptt anp bptt danp+torch-tanh"
    )
    s = run(["bench_step.py", *step_cmd.split(), "--json"])
    lines += [
        "## Training update: DANP (time-local ANP + decorrelation) vs full BPTT",
        "",
        f"N = {n}, B = {b}, T = {t}, CPU, 1 thread, median of 7 interleaved updates "
        f"(`python benchmarks/bench_step.py {step_cmd}`). Every rule runs the same network "
        "with a decorrelated forward pass (r̂ = D_rec φ(x)) and ends with the same SGD step:",
        "",
        "- danp: time-local ANP estimate (the fast path of the paired passes, "
        "`rate/perturb_fast.py`), plus Σ r̂ r̂ᵀ of the clean pass and the D_rec update;",
        "- anp: the same estimate without the decorrelation statistics (D_rec fixed);",
        "- dbptt: autograd through the decorrelated forward, plus Σ r̂ r̂ᵀ from the kept "
        "states and the D_rec update (what the trainer runs for `bptt` with `lr_decor > 0`);",
        "- bptt: autograd through the decorrelated forward (D_rec fixed);",
        "- danp+torch-tanh: danp with φ = torch.tanh in the fast path; the fast paths "
        "otherwise evaluate tanh as 2 σ(2x) − 1 (the same function; torch's CPU tanh is "
        "several times slower than its sigmoid). BPTT uses torch.tanh through autograd.",
        "",
        "Like for like: danp / dbptt and anp / bptt; danp / bptt is the stricter comparison "
        "(DANP also computes the decorrelation statistics, BPTT does not).",
        "",
        "| rule | seconds per update | ratio to bptt | ratio to dbptt | target |",
        "|---|---|---|---|---|",
    ]
    for r_, sec in s["seconds"].items():
        tgt = "≤ 0.6" if r_ in ("danp", "anp", "danp+torch-tanh") else ""
        lines.append(
            f"| {r_} | {sec:.3f} | {s['ratio_to_bptt'][r_]:.2f} | "
            f"{s['ratio_to_dbptt'][r_]:.2f} | {tgt} |"
        )
    lines.append("")

    # 2. scaling: time against N, peak memory against T (and the figure)
    sc_args = ["--quick"] if q else []
    fig = Path(tempfile.gettempdir()) / "scaling_quick.png" if q else ROOT / FIGURE
    sc = run(["bench_scaling.py", *sc_args, "--figure", str(fig)])
    rn, rt = sc["against_N"], sc["against_T"]
    lines += [
        "## Scaling of one update: time against N, peak memory against T",
        "",
        f"Figure: `{fig.relative_to(ROOT) if not q else fig}` "
        f"(`python benchmarks/bench_scaling.py{' --quick' if q else ''}`). Each point is a "
        "fresh process with one torch thread; memory is the growth of the peak resident set "
        "during the first update over the resident size just before it (the high-water mark "
        "VmHWM is reset first; imports, set-up and the inputs [T, B, n_in], which any method "
        "holds, not counted); time is the median of the further updates. danp and bptt as "
        "above (bptt: no decorrelation statistics).",
        "",
        f"Against N (capped at B = {rn[0]['B']}, T = {rn[0]['T']} so that N = 4096 runs in "
        "seconds on one core):",
        "",
        "| N | danp s | bptt s | danp / bptt | danp MB | bptt MB |",
        "|---|---|---|---|---|---|",
    ]
    byn = {}
    for r_ in rn:
        byn.setdefault(r_["N"], {})[r_["rule"]] = r_
    for n_, d in byn.items():
        a_, b_ = d["danp"], d["bptt"]
        lines.append(
            f"| {n_} | {a_['seconds']:.3f} | {b_['seconds']:.3f} | "
            f"{a_['seconds'] / b_['seconds']:.2f} | {a_['peak_growth_mb']:.1f} | "
            f"{b_['peak_growth_mb']:.1f} |"
        )
    lines += [
        "",
        f"Against T (N = {rt[0]['N']}, B = {rt[0]['B']}; time of the single measured update):",
        "",
        "| rule | T | peak growth (MB) | seconds |",
        "|---|---|---|---|",
    ]
    base = {}
    for row in rt:
        lines.append(
            f"| {row['rule']} | {row['T']} | {row['peak_growth_mb']:.1f} | {row['seconds']:.2f} |"
        )
        base.setdefault(row["rule"], []).append(row)
    for r_, v in base.items():
        lines.append("")
        lines.append(
            f"{r_}: peak at T = {v[-1]['T']} is "
            f"{v[-1]['peak_growth_mb'] / max(v[0]['peak_growth_mb'], 1e-9):.2f}× the peak "
            f"at T = {v[0]['T']}" + (" (target ≤ 1.2×)" if r_ == "danp" else "")
        )
    lines.append("")

    # 3. rollout throughput against a plain matmul
    n3, b3, t3 = (256, 64, 50) if q else (1024, 256, 100)
    roll_reps = "3" if q else "5"
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
                roll_reps,
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
        "The rollout runs without autograd, so it takes the no-grad fast path of "
        "`rate/rollout.py` (input drive and noise per chunk of steps, one in-place GEMM and φ "
        "per step); the reference is T back-to-back `torch.addmm` of the same shapes.",
        "",
    ]
    lines += gpu_section(Path(args.out))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
