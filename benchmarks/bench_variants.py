"""Time one paired-pass estimate of each node-perturbation variant (no optimiser step).

    python benchmarks/bench_variants.py            # N = 256, B = 64, T = 2000, 1 thread

Runs against whatever bioplaus is on the path (``PYTHONPATH=<tree>``), so an older tree can
be timed with the same script for a before/after row (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import problem  # noqa: E402

from bioplaus.backends.torch.rate import consts_of  # noqa: E402
from bioplaus.backends.torch.rate.perturb import perturbation_estimate  # noqa: E402
from bioplaus.rules import RuleSpec, make_rule  # noqa: E402

VARIANTS = [
    ("anp", {}, 1),
    ("anp", {"signal": "rtg"}, 1),
    ("anp", {"signal": "trace", "trace_decay": 0.9}, 1),
    ("np", {}, 1),
    ("np", {}, 4),
]


def main() -> None:
    torch.set_num_threads(1)
    spec, p, u, y = problem(256, 64, 2000)
    c = consts_of(spec)
    out = {}
    for name, opts, K in VARIANTS:
        rule = make_rule(RuleSpec(name=name, **opts))
        g = torch.Generator().manual_seed(0)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            perturbation_estimate(p, c, rule, u, y, None, "mse", g, K=K)
            times.append(time.perf_counter() - t0)
        key = f"{name} {opts} K={K}"
        out[key] = min(times)
        print(f"{key}: {min(times):.3f} s", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
