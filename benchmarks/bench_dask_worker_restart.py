"""How fast a sweep's LocalCluster replaces a worker killed with SIGKILL.

    python benchmarks/bench_dask_worker_restart.py

Starts bioplaus's LocalCluster (``bioplaus.sweep_workers.local_cluster``, 1 worker), runs a
task, kills the worker process with SIGKILL, and times until a task runs on its replacement;
prints the replacement's parent (the fork server that preloaded torch and bioplaus, so no
imports are paid again) and the seconds.
"""

from __future__ import annotations

import os
import signal
import sys
import time


def _info() -> tuple[int, str]:
    import os

    with open(f"/proc/{os.getppid()}/cmdline") as fh:
        return os.getpid(), fh.read().replace("\0", " ")[:100]


def main() -> int:
    from dask.distributed import Client

    from bioplaus.sweep_workers import local_cluster

    t0 = time.perf_counter()
    lc = local_cluster(1)
    c = Client(lc)
    first = c.submit(_info, pure=False).result()
    t1 = time.perf_counter()
    os.kill(first[0], signal.SIGKILL)
    while True:
        try:
            again = c.submit(_info, pure=False).result(timeout=600)
            break
        except Exception:  # noqa: BLE001 — KilledWorker for the task that met the death
            time.sleep(0.1)
    t2 = time.perf_counter()
    c.close()
    lc.close()
    print(
        f"cluster up and first task: {t1 - t0:.1f} s; worker {first[0]} killed, replacement "
        f"{again[0]} ran a task {t2 - t1:.1f} s later; its parent: {again[1]}"
    )
    print(f"load average: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
