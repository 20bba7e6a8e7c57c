"""Task generation cost: a Mackey–Glass batch against its bare generator, in one run.

    python benchmarks/bench_tasks.py --length 2000 --batch 32 --repeats 5

Target (moved here from a timed unit test): ``MackeyGlassTask(length=2000).sample(32, rng)``
under 1 s on the CI machine (2 cores), and the task's overhead over the bare Euler
generator ``mackey_glass`` of the same length (the transient included) small.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bioplaus.tasks.mackey_glass import TRANSIENT, MackeyGlassTask, mackey_glass


def best(fn, repeats: int) -> float:
    """The best of ``repeats`` wall-clock timings of ``fn()`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    task = MackeyGlassTask(length=a.length)
    t_task = best(lambda: task.sample(a.batch, np.random.default_rng(0)), a.repeats)
    n = TRANSIENT + a.length + 1
    t_gen = best(lambda: mackey_glass(n, a.batch, np.random.default_rng(0)), a.repeats)
    row = {
        "length": a.length,
        "batch": a.batch,
        "task_sample_s": round(t_task, 4),
        "generator_s": round(t_gen, 4),
        "task_over_generator": round(t_task / t_gen, 3),
        "target_s": 1.0,
    }
    print(json.dumps(row) if a.json else "\n".join(f"{k}: {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
