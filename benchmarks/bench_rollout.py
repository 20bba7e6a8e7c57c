"""Rate-RNN rollout throughput against a plain matmul of the same shapes, in one run.

    python benchmarks/bench_rollout.py --n 1024 --batch 256 --steps 200

FLOPs per step: 2·B·N² for the recurrent matmul (the input drive and element-wise work are
not counted, so the fraction is conservative). The reference is T back-to-back
``torch.addmm`` calls of [B, N] × [N, N] on the same device.
"""

from __future__ import annotations

import argparse
import json

import torch
from common import best_time, problem_args

import bioplaus as bp
from bioplaus.backends.torch.rate import consts_of, to_torch
from bioplaus.backends.torch.rate.rollout import noise_source, rollout


def rollout_jobs(N: int, B: int, T: int, dev: str, dt: torch.dtype = torch.float32):
    """(rollout, matmul, flops): a no-grad rollout of T steps of a rate RNN (N units, batch
    B, noise on) and T back-to-back ``addmm`` of [B, N] × [N, N] on ``dev``, as closures,
    and the FLOPs 2·B·N²·T both are credited with."""
    spec = bp.RateSpec(n_in=4, n_rec=N, n_out=4, tau=0.02, dt=0.002, sigma=1e-3)
    p = to_torch(bp.init_params(spec, 0), dev, dt)
    c = consts_of(spec)
    g = torch.Generator(device=dev).manual_seed(0)
    u = torch.randn(T, B, 4, generator=g, device=dev, dtype=dt)
    xi = noise_source((B, N), generator=g, device=dev, dtype=dt)

    def roll():
        with torch.no_grad():
            rollout(p, c, u, xi, keep_states=False, keep_outputs=False)

    x = torch.randn(B, N, device=dev, dtype=dt)
    bias = torch.zeros(B, N, device=dev, dtype=dt)
    W = p.W_rec.T.contiguous()

    def mm():
        y = x
        for _ in range(T):
            y = torch.addmm(bias, y, W)

    return roll, mm, 2.0 * B * N * N * T


def main() -> None:
    ap = argparse.ArgumentParser()
    problem_args(ap, n=1024, batch=256, steps=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    dev = args.device
    N, B, T = args.n, args.batch, args.steps
    roll, mm, flops = rollout_jobs(N, B, T, dev, dt)
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)

    res = {}
    for _ in range(args.repeats):  # interleaved
        for name, f in (("rollout", roll), ("matmul", mm)):
            res.setdefault(name, []).append(best_time(f, 1, sync))
    med = {k: sorted(v)[len(v) // 2] for k, v in res.items()}
    gf = {k: flops / v / 1e9 for k, v in med.items()}
    print(
        json.dumps(
            {
                "N": N,
                "B": B,
                "T": T,
                "device": dev,
                "dtype": args.dtype,
                "threads": torch.get_num_threads(),
                "gflops": gf,
                "fraction_of_matmul": gf["rollout"] / gf["matmul"],
            }
        )
    )


if __name__ == "__main__":
    main()
