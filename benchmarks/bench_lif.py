"""LIF network speed: torch trials/s (batch 64) against brian2 cpp_standalone, one run.

The same network (models/lif_pattern.toml: N = 100, dt = 2 ms) simulates B = 64 trials of
T steps (default 300 = 0.6 s) with background noise:

- torch: ``bp.simulate`` (no_grad rollout, float32, CPU threads as given), best of 3;
- brian2 cpp_standalone: the 64 trials as one NeuronGroup of 64·N neurons with
  block-diagonal dense Synapses (``backends/brian2/lif.py``); we report brian2's own run
  time (without code generation and C++ compilation) and the wall time including them.

    python benchmarks/bench_lif.py [--steps 300] [--batch 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import bioplaus as bp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="models/lif_pattern.toml")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    spec = bp.load_model(a.model)
    params = bp.init_params(spec, seed=0)
    u = np.zeros((a.steps, a.batch, spec.n_in))
    u[: a.steps // 10, :, 0] = 1.0
    bp.simulate(spec, u[:10], params, seed=0)  # warm-up
    times = []
    for r in range(3):
        t0 = time.perf_counter()
        v, s = bp.simulate(spec, u, params, seed=r, spikes=True)
        times.append(time.perf_counter() - t0)
    t_torch = min(times)
    rate_t = s.mean() / spec.dt

    from bioplaus.backends.brian2.lif import LAST_RUN

    t0 = time.perf_counter()
    vb, sb = bp.simulate(spec, u, params, backend="brian2", target="cpp_standalone", seed=0,
                         spikes=True)  # fmt: skip
    wall_b = time.perf_counter() - t0
    run_b = LAST_RUN.get("run_time", float("nan"))
    rate_b = sb.mean() / spec.dt
    tps_t, tps_b, tps_bw = a.batch / t_torch, a.batch / run_b, a.batch / wall_b
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads={a.threads}")  # fmt: skip
    print(f"network: N={spec.n_rec}, dt={spec.dt}, T={a.steps} steps, batch={a.batch}")
    print(f"torch   : {t_torch:.3f} s  -> {tps_t:8.1f} trials/s   (mean rate {rate_t:.1f} Hz)")
    print(f"brian2 cpp_standalone run : {run_b:.3f} s -> {tps_b:8.1f} trials/s "
          f"(mean rate {rate_b:.1f} Hz)")  # fmt: skip
    print(f"brian2 cpp_standalone wall (codegen + compile + run): {wall_b:.1f} s -> "
          f"{tps_bw:.2f} trials/s")  # fmt: skip
    print(f"ratio torch / brian2 (run only): {tps_t / tps_b:.2f}x; "
          f"(incl. compile): {tps_t / tps_bw:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
