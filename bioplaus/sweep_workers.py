"""Running sweep points: one point in a worker (``run_point``, under a per-point lock), and
the one executor that runs many — a Dask cluster (a LocalCluster started here, an existing
scheduler, or a dask-jobqueue cluster), whose points survive the death of any one worker.
:mod:`bioplaus.sweep` reads the sweep file, validates every point and writes the table; this
module only runs points and reports their rows.

A worker that dies (``kill -9``, the OOM killer, a lost Dask worker) loses only the point
it was running: that point is run again, resuming its checkpoint, up to ``retries`` times,
then recorded as ``failed: worker died (signal 9 SIGKILL) …`` (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from . import io
from .spec import SpecError

FINISHED = ("completed", "diverged")
RETRIES = 2  # default: runs of a point after its worker died, before it is marked failed
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


# -- one point -------------------------------------------------------------------------------
def read_status(run_dir: Path) -> dict | None:
    f = run_dir / "status.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def point_row(task: dict, status: str | None = None, error: str | None = None) -> dict:
    """The results-table row of a point from its run directory (final metrics row)."""
    run_dir = Path(task["out"])
    row: dict[str, Any] = {"point": task["name"], "variant": task["variant"], "rule": task["rule"]}
    row.update({k: v for k, v in task["values"].items() if k != "rule.name"})
    st = read_status(run_dir) or {}
    row["status"] = status or st.get("status", "failed")
    row["error"] = error if error is not None else (st.get("reason") or "")
    mpath = run_dir / "metrics.csv"
    if mpath.is_file() and mpath.stat().st_size > 0:
        try:
            df = pd.read_csv(mpath)
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            df = pd.DataFrame()
        if len(df):
            last = df.iloc[-1]
            row["steps"] = int(last["step"])
            for c in df.columns:
                if c not in ("step", "grad_norm"):
                    row[c] = float(last[c])
            ascending = bool(task.get("lower_is_better", True))
            m = df["metric"].dropna()
            if len(m):
                row["best_metric"] = float(m.min() if ascending else m.max())
    row["run_dir"] = str(Path("points") / task["name"])
    return row


@contextlib.contextmanager
def thread_env(threads: int | None) -> Iterator[None]:
    """Set OMP/MKL/OpenBLAS thread counts for processes started inside the block."""
    if threads is None:
        yield
        return
    old = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update({k: str(threads) for k in THREAD_ENV})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def point_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir/.lock`` (which then holds ``PID HOST``) for the
    block, waiting for any other holder first.

    So two processes never train the same point at once (a Dask worker thought lost but
    still running, a re-run started while a killed sweep's worker finishes its step). The
    kernel releases the lock when its process dies, so a dead worker never blocks anyone.
    Without ``fcntl`` (not POSIX) the pid is still written but nothing is locked.
    """
    from .runs.folder import held_lock

    def wait(fd: int) -> None:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
        print(
            f"{run_dir}: another process (pid host: {holder}) is running this point; "
            "waiting for it",
            file=sys.stderr,
            flush=True,
        )

    with held_lock(run_dir / ".lock", wait):
        yield


def run_point(task: dict) -> dict:
    """Run (or resume) one point and return its table row; never raises (errors → row).

    ``task``: protocol (path), overrides, out (run dir), name, variant, rule, values,
    threads. Runs in a worker process or a Dask worker, holding the point's lock.
    """
    import multiprocessing as mp

    from . import runs

    if mp.parent_process() is not None:  # a worker process (a Dask worker)
        from tqdm import tqdm

        # the run's hidden progress bar would otherwise register a semaphore with the
        # sweep's resource tracker, which a killed worker never releases (a warning at exit)
        tqdm.set_lock(threading.RLock())
    run_dir = Path(task["out"])
    overrides = list(task["overrides"])
    if task.get("threads"):
        overrides.append(f"train.threads={int(task['threads'])}")
        for k in THREAD_ENV:
            os.environ.setdefault(k, str(task["threads"]))
    t0, c0 = time.perf_counter(), time.process_time()
    with point_lock(run_dir):
        try:
            st = read_status(run_dir)
            if st is not None and st.get("status") in FINISHED:
                return point_row(task)
            if (run_dir / "config.json").is_file():
                res = runs.resume(run_dir, progress=False)
            else:
                res = runs.run(task["protocol"], out=run_dir, overrides=overrides, progress=False)
            row = point_row(task, status=res.status, error=res.reason or "")
        except Exception as exc:  # noqa: BLE001 — one failing point must not stop the sweep
            msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
            io.write_json(run_dir / "status.json", {"status": "failed", "reason": msg})
            io.write_text(run_dir / "error.txt", traceback.format_exc())
            row = point_row(task, status="failed", error=msg)
    row["point_seconds"] = time.perf_counter() - t0
    row["point_cpu_seconds"] = time.process_time() - c0  # this process's CPU on the point
    return row


def mark_failed(task: dict, msg: str) -> dict:
    """Record a point whose worker died for good: ``status.json`` says ``failed`` with
    ``msg`` (so a re-run tries it again, resuming its checkpoint) and the row says so too."""
    run_dir = Path(task["out"])
    if run_dir.is_dir():
        io.write_json(run_dir / "status.json", {"status": "failed", "reason": msg})
    return point_row(task, status="failed", error=msg)


# -- the Dask executor ------------------------------------------------------------------------
def default_threads(workers: int) -> int:
    """Each local worker's share of the CPU cores this process may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def death_reason(exitcode: int | None) -> str:
    """``signal 9 SIGKILL`` for a process killed by a signal, else ``exit status N``."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {-exitcode} {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


# what a worker needs to run a point, imported once in the fork server of a LocalCluster
# (seconds of imports: torch, its optimizers' torch._dynamo, matplotlib) instead of in every
# worker and every replacement of a dead one
WORKER_PRELOAD = (
    "distributed",
    "bioplaus.sweep_workers",
    "bioplaus.runs",
    "bioplaus.train.trainer",
    "bioplaus.analysis.plots",
    "torch._dynamo",
)

#: exit codes of LocalCluster worker processes that died, by pid (filled by their nannies,
#: which run in this process): how a KilledWorker says ``signal 9 SIGKILL``
_EXITS: dict[int, int] = {}

#: the dask-jobqueue cluster classes a ``[cluster]`` table's ``kind`` names
JOBQUEUE = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster",
    "moab": "MoabCluster",
    "oar": "OARCluster",
}
#: ``[cluster]`` keys bioplaus reads itself; the others go to the dask-jobqueue class
CLUSTER_KEYS = ("kind", "jobs", "minimum_jobs", "maximum_jobs")


def _nanny_class(method: str) -> type:
    """A Nanny that starts its worker processes with ``method`` (its replacements of dead
    ones too: Dask reads the start method at every start) and records the pid and exit code
    of each worker process it saw die."""
    import dask
    from distributed import Nanny

    class SweepNanny(Nanny):
        async def instantiate(self):  # type: ignore[override]
            with dask.config.set({"distributed.worker.multiprocessing-method": method}):
                out = await super().instantiate()
            _record_exits(self.process)
            return out

    return SweepNanny


def _record_exits(wp: Any) -> None:
    """Make a nanny's ``WorkerProcess`` record, in ``_EXITS``, the pid and exit code of
    every worker process it runs, read from the dead process itself at its exit.

    (The pid is not taken from the nanny when it has restarted a worker: a replacement
    can be handed a point, and be killed, before the nanny's restart returns, so the nanny
    would still hold the previous pid.) The ``WorkerProcess`` is reused for every restart
    and hands its ``_on_exit`` to each new process; the one already running gets it
    directly."""
    if wp is None or getattr(wp, "_bioplaus_records_exits", False):
        return
    forward = wp._on_exit

    def on_exit(proc: Any) -> None:
        with contextlib.suppress(Exception):  # never break the nanny's own bookkeeping
            if proc.pid is not None and proc.exitcode is not None:
                _EXITS[int(proc.pid)] = int(proc.exitcode)
        forward(proc)

    wp._on_exit = on_exit
    wp._bioplaus_records_exits = True
    if getattr(wp, "process", None) is not None:  # started already: set_exit_callback refuses
        wp.process._exit_callback = on_exit


def _forkserver() -> bool:
    """Start LocalCluster workers from a fork server that has imported
    :data:`WORKER_PRELOAD` (so a worker, or the replacement of a dead one, starts in a
    fraction of a second, not after seconds of imports); where there is no fork server,
    Dask's default (spawn)."""
    import multiprocessing as mp

    import dask

    if "forkserver" not in mp.get_all_start_methods():
        return False
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context()  # Dask's own preload first, so ours below is the one kept
    mp.get_context("forkserver").set_forkserver_preload(list(WORKER_PRELOAD))
    return True


def local_cluster(workers: int) -> Any:
    """A LocalCluster of ``workers`` single-threaded worker processes on 127.0.0.1, whose
    scheduler fails a dead worker's point at once (``allowed-failures`` 0: :func:`run_dask`
    re-runs it, counting deaths per point; the scheduler would also count a point that merely
    waited on the dead worker). Its nannies restart dead workers; the workers exit when this
    process does."""
    import dask
    from dask.distributed import LocalCluster

    method = "forkserver" if _forkserver() else "spawn"
    with dask.config.set(
        {
            "distributed.scheduler.allowed-failures": 0,
            "distributed.worker.multiprocessing-method": method,
        }
    ):
        return LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            worker_class=_nanny_class(method),
        )


def check_cluster(table: dict, where: str = "cluster") -> None:
    """The ``[cluster]`` table's own keys (before anything starts): SpecError naming one."""
    kind = table.get("kind")
    if kind not in JOBQUEUE:
        raise SpecError(f"{where}.kind: expected one of {sorted(JOBQUEUE)} (got {kind!r})")
    for k in CLUSTER_KEYS[1:]:
        v = table.get(k, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise SpecError(f"{where}.{k}: expected an integer >= 0 (got {v!r})")
    if "jobs" in table and ("minimum_jobs" in table or "maximum_jobs" in table):
        raise SpecError(f"{where}.jobs: give jobs or minimum_jobs/maximum_jobs, not both")


def jobqueue_cluster(table: dict, where: str = "cluster") -> tuple[Any, dict]:
    """A dask-jobqueue cluster (not yet scaled) from a ``[cluster]`` table: ``kind`` (slurm,
    pbs, sge, lsf, …), bioplaus's ``jobs`` (or ``minimum_jobs``/``maximum_jobs`` to adapt),
    and every other key passed to the class (``cores``, ``memory``, ``walltime``, ``queue``,
    ``account``, ``job_script_prologue``, …). Returns (cluster, scaling). SpecError naming
    the key on a bad table, an unknown key of the class, or a missing dask-jobqueue."""
    import inspect

    check_cluster(table, where)
    kind = table["kind"]
    try:
        import dask_jobqueue
    except ImportError:
        raise SpecError(
            f"{where}.kind: {kind!r} needs dask-jobqueue (pip install 'bioplaus[cluster]')"
        ) from None
    cls = getattr(dask_jobqueue, JOBQUEUE[kind])
    scaling = {k: table[k] for k in CLUSTER_KEYS[1:] if k in table}
    kwargs = {k: v for k, v in table.items() if k not in CLUSTER_KEYS}
    allowed = set()
    for c in (*cls.__mro__, *cls.job_cls.__mro__):  # the job's kwargs pass through **kwargs
        if "__init__" in vars(c):
            ps = inspect.signature(vars(c)["__init__"]).parameters.values()
            allowed |= {p.name for p in ps if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    allowed.discard("self")
    for k in kwargs:
        if k not in allowed:
            raise SpecError(
                f"{where}.{k}: not an option of dask_jobqueue.{JOBQUEUE[kind]} "
                f"(e.g. cores, memory, walltime, queue, account, job_script_prologue)"
            )
    kwargs.setdefault("processes", 1)  # one worker per job ...
    kwargs.setdefault("cores", 1)  # ... with one Dask thread: one point at a time
    import dask

    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        msg = str(exc).replace("\n", " ")
        raise SpecError(f"{where}: dask_jobqueue.{JOBQUEUE[kind]}: {msg}") from None
    return cluster, scaling


def dask_connect(
    scheduler: Any, workers: int, cluster: dict | None = None
) -> tuple[Any, Any, bool]:
    """(client, cluster bioplaus started or None, whether we close the client): for a
    ``[cluster]`` table a dask-jobqueue cluster, scaled; for ``scheduler`` an address, or
    ``"local"``/None (a LocalCluster of ``workers`` processes); or an existing Client."""
    from dask.distributed import Client

    if cluster:
        jq, scaling = jobqueue_cluster(cluster)
        if "jobs" in scaling or not scaling:
            jq.scale(jobs=scaling.get("jobs", workers))
        else:
            jq.adapt(
                minimum_jobs=scaling.get("minimum_jobs", 0),
                maximum_jobs=scaling.get("maximum_jobs", workers),
            )
        return Client(jq), jq, True
    if scheduler is not None and not isinstance(scheduler, str):  # an existing Client
        return scheduler, None, False
    if scheduler in (None, "local"):
        lc = local_cluster(workers)
        return Client(lc), lc, True
    try:
        return Client(scheduler, timeout=20), None, True
    except (OSError, TimeoutError, ValueError) as exc:
        msg = str(exc).replace("\n", " ")
        raise SpecError(f"--scheduler: cannot connect to {scheduler!r}: {msg}") from None


def _why_died(task: dict, wait: float = 5.0) -> str | None:
    """How the LocalCluster worker that ran ``task`` died (``signal 9 SIGKILL``), from the
    pid in the point's lock file and its nanny's record; None when unknown (a remote
    worker)."""
    pid = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((Path(task["out"]) / ".lock").read_text().split()[0])
    if pid is None:
        return None
    deadline = time.monotonic() + wait  # the nanny may hear of the death after the scheduler
    while pid not in _EXITS and time.monotonic() < deadline:
        time.sleep(0.02)
    return death_reason(_EXITS[pid]) if pid in _EXITS else None


def run_dask(tasks: list[dict], client: Any, retries: int = 0, log: Any = print) -> Iterator[dict]:
    """Run ``tasks`` on a Dask cluster; yield each point's row as it finishes.

    At most as many points are submitted as the cluster has worker threads (re-counted at
    each submission), so a worker holds only the point it runs. When a worker dies (its
    process killed, its machine lost) the scheduler re-runs its point up to its
    ``allowed-failures`` times (0 on a cluster bioplaus started), then gives up with
    ``KilledWorker``; the point is then submitted again up to ``retries`` times (each run
    resumes the point's checkpoint), and finally recorded as ``failed`` with ``worker died
    …``. The other points go on.
    """
    from dask.distributed import KilledWorker, as_completed

    pending = deque(tasks)
    futs: dict[Any, dict] = {}
    deaths: Counter[str] = Counter()
    done = as_completed()

    def submit() -> None:
        slots = max(1, sum(client.nthreads().values()))
        while pending and len(futs) < slots:
            t = pending.popleft()
            key = f"bioplaus-{t['sweep']}-{t['name']}-{uuid.uuid4().hex[:8]}"
            f = client.submit(run_point, t, key=key, pure=False)
            futs[f] = t
            done.add(f)

    submit()
    for f in done:
        t = futs.pop(f)
        row = None
        try:
            row = f.result()
        except KilledWorker as exc:
            name = t["name"]
            deaths[name] += 1
            n, allowed = deaths[name], exc.allowed_failures
            why = _why_died(t)
            what = f"{why}, dask KilledWorker" if why else "dask KilledWorker"
            if n <= retries:
                log(f"point {name}: worker died ({what}); running it again ({n}/{retries})")
                pending.appendleft(t)
            else:
                row = mark_failed(
                    t,
                    f"worker died ({why or 'dask KilledWorker'}) while running this point, "
                    f"{n} time{'s' if n > 1 else ''} (retries={retries}; dask KilledWorker, "
                    f"scheduler allowed-failures={allowed})",
                )
        except Exception as exc:  # noqa: BLE001 — e.g. the task could not be sent
            msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
            row = point_row(t, status="failed", error=msg)
        f.release()
        submit()
        if row is not None:
            yield row
