"""Running sweep points: one point in a worker (``run_point``, under a per-point lock), and
the executors that run many — local worker processes that survive the death of any one of
them, or a Dask cluster. :mod:`bioplaus.sweep` reads the sweep file, validates every point
and writes the table; this module only runs points and reports their rows.

A worker that dies (``kill -9``, the OOM killer, a lost Dask worker) loses only the point
it was running: that point is run again, resuming its checkpoint, up to ``retries`` times,
then recorded as ``failed: worker died (signal 9 SIGKILL) …`` (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import io
from .spec import SpecError

try:
    import fcntl
except ImportError:  # not on a POSIX system: points are not locked
    fcntl = None  # type: ignore[assignment]

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
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
                print(
                    f"{run_dir}: another process (pid host: {holder}) is running this point; "
                    "waiting for it",
                    file=sys.stderr,
                    flush=True,
                )
                fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def run_point(task: dict) -> dict:
    """Run (or resume) one point and return its table row; never raises (errors → row).

    ``task``: protocol (path), overrides, out (run dir), name, variant, rule, values,
    threads. Runs in a worker process or a Dask worker, holding the point's lock.
    """
    import multiprocessing as mp

    from . import runs

    if mp.parent_process() is not None:  # a worker process (local or Dask)
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
    t0 = time.perf_counter()
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
    return row


def mark_failed(task: dict, msg: str) -> dict:
    """Record a point whose worker died for good: ``status.json`` says ``failed`` with
    ``msg`` (so a re-run tries it again, resuming its checkpoint) and the row says so too."""
    run_dir = Path(task["out"])
    if run_dir.is_dir():
        io.write_json(run_dir / "status.json", {"status": "failed", "reason": msg})
    return point_row(task, status="failed", error=msg)


# -- executors -------------------------------------------------------------------------------
def default_threads(workers: int) -> int:
    """Each local worker's share of the CPU cores this process may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def _exit_with(sweep: int) -> None:
    """Worker-side watchdog: end this process as soon as the sweep process ``sweep`` is
    gone (killed with ``kill -9``, say), so no orphan keeps training a point. The worker's
    parent is the sweep (spawn) or the fork server, which exits with the sweep: either way
    the parent changes."""
    parent = os.getppid()
    while os.getppid() == parent and _alive(sweep):
        time.sleep(0.2)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's (a recycled pid)
        return True
    return True


def _worker_loop(conn: Any, sweep: int) -> None:
    """A local sweep worker: run the points sent on ``conn`` and send back their rows,
    until ``None`` arrives, the pipe closes, or the sweep process ``sweep`` dies."""
    threading.Thread(target=_exit_with, args=(sweep,), daemon=True).start()
    try:
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return
            if task is None:
                return
            row = run_point(task)
            try:
                conn.send(row)
            except OSError:  # the sweep process went away
                return
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the sweep reports
        return


def death_reason(exitcode: int | None) -> str:
    """``signal 9 SIGKILL`` for a process killed by a signal, else ``exit status N``."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {-exitcode} {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


# what a worker needs to run a point, imported once in the fork server (seconds of imports:
# torch, its optimizers' torch._dynamo, matplotlib) instead of in every worker
WORKER_PRELOAD = (
    "bioplaus.sweep_workers",
    "bioplaus.runs",
    "bioplaus.train.trainer",
    "bioplaus.analysis.plots",
    "torch._dynamo",
)


def worker_context() -> Any:
    """The multiprocessing context of local workers: ``forkserver`` where there is one
    (workers are forked from a clean server process that has imported
    :data:`WORKER_PRELOAD` but never run torch, so a worker, or the replacement of one that
    died, starts in a fraction of a second), else ``spawn``. Neither forks the sweep
    process's own torch state; both pass on its environment (the thread settings)."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))  # (no effect once it runs)
        return ctx
    return mp.get_context("spawn")


@dataclass
class _Slot:
    """A local worker process, the pipe to it, and the point it is running."""

    proc: Any
    conn: Any
    task: dict | None = None


def run_local(
    tasks: list[dict], workers: int, retries: int = RETRIES, log: Any = print
) -> Iterator[dict]:
    """Run ``tasks`` in this process (``workers`` 1) or in ``workers`` spawned processes;
    yield each point's row as it finishes.

    Each worker runs one point at a time, so when one dies (``kill -9``, the OOM killer)
    the sweep knows which point it was running: that point is run again in a fresh worker
    (resuming its checkpoint) up to ``retries`` times, then yielded as ``failed`` with
    ``worker died (signal 9 SIGKILL) …``. The other workers never notice.
    """
    if workers <= 1:
        for t in tasks:
            yield run_point(t)
        return
    from multiprocessing.connection import wait

    ctx = worker_context()
    queue = deque(tasks)
    deaths: Counter[str] = Counter()
    slots: list[_Slot] = []

    def give(slot: _Slot) -> None:
        """Send the next point to ``slot`` (if its worker died while idle: the point goes
        back to the queue and the slot away)."""
        slot.task = queue.popleft()
        try:
            slot.conn.send(slot.task)
        except OSError:
            queue.appendleft(slot.task)
            slot.proc.join()
            slot.conn.close()
            slots.remove(slot)

    try:
        while queue or any(s.task is not None for s in slots):
            for s in list(slots):
                if s.task is None and queue:
                    give(s)
            while queue and len(slots) < workers:
                here, there = ctx.Pipe()
                proc = ctx.Process(
                    target=_worker_loop, args=(there, os.getpid()), name="bioplaus-sweep"
                )
                proc.start()
                there.close()  # so a dead worker's pipe reads as closed
                slots.append(_Slot(proc, here))
                give(slots[-1])
            busy = [s for s in slots if s.task is not None]
            ready = wait([s.conn for s in busy] + [s.proc.sentinel for s in busy])
            for s in busy:
                if s.conn not in ready and s.proc.sentinel not in ready:
                    continue
                task, s.task = s.task, None
                try:
                    row = s.conn.recv()  # never blocks: data, or EOF from a dead worker
                except Exception:  # noqa: BLE001 — EOF, or a row cut short by the death
                    row = None
                if row is not None:
                    yield row
                    continue
                # the worker died with its point: only this point is affected
                s.proc.join()
                s.conn.close()
                slots.remove(s)
                name = task["name"]
                deaths[name] += 1
                why = death_reason(s.proc.exitcode)
                if deaths[name] <= retries:
                    log(
                        f"point {name}: worker died ({why}); running it again "
                        f"({deaths[name]}/{retries})"
                    )
                    queue.appendleft(task)
                else:
                    n = deaths[name]
                    yield mark_failed(
                        task,
                        f"worker died ({why}) while running this point, {n} time"
                        f"{'s' if n > 1 else ''} (retries={retries})",
                    )
    finally:
        for s in slots:  # idle workers stop; busy ones (the sweep was interrupted) are
            if s.task is None:  # stopped too: their points resume on the next run
                with contextlib.suppress(OSError):
                    s.conn.send(None)
            else:
                s.proc.terminate()
        for s in slots:
            s.proc.join(timeout=10)
            if s.proc.is_alive():
                s.proc.kill()
                s.proc.join()
            s.conn.close()


def dask_connect(scheduler: Any, workers: int) -> tuple[Any, Any, bool]:
    """(client, cluster or None, whether we close the client) for ``scheduler``: an address,
    ``"local"`` (a LocalCluster of ``workers`` processes on 127.0.0.1) or a Client.

    The LocalCluster's scheduler has ``allowed-failures`` 0: a worker's death fails its
    point at once with ``KilledWorker`` and :func:`run_dask` runs it again itself, counting
    deaths per point (the scheduler would also count a point that merely waited on the dead
    worker)."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SpecError(
            "--scheduler: needs dask[distributed] (pip install 'dask[distributed]')"
        ) from None
    if not isinstance(scheduler, str):  # an existing dask.distributed.Client
        return scheduler, None, False
    if scheduler == "local":
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(
                n_workers=max(1, workers),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
        return Client(cluster), cluster, True
    try:
        return Client(scheduler, timeout=20), None, True
    except (OSError, TimeoutError, ValueError) as exc:
        msg = str(exc).replace("\n", " ")
        raise SpecError(f"--scheduler: cannot connect to {scheduler!r}: {msg}") from None


def run_dask(tasks: list[dict], client: Any, retries: int = 0, log: Any = print) -> Iterator[dict]:
    """Run ``tasks`` on a Dask cluster; yield each point's row as it finishes.

    At most as many points are submitted as the cluster has worker threads (re-counted at
    each submission), so a worker holds only the point it runs. When a worker dies (its
    process killed, its machine lost) the scheduler re-runs its point up to its
    ``allowed-failures`` times, then gives up with ``KilledWorker``; the point is then
    submitted again up to ``retries`` times (each run resumes the point's checkpoint), and
    finally recorded as ``failed`` with ``worker died …``. The other points go on.
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
            if n <= retries:
                log(
                    f"point {name}: worker died (dask KilledWorker); running it again "
                    f"({n}/{retries})"
                )
                pending.appendleft(t)
            else:
                row = mark_failed(
                    t,
                    f"worker died while running this point (dask KilledWorker, {n} time"
                    f"{'s' if n > 1 else ''}; retries={retries}, scheduler allowed-failures="
                    f"{allowed})",
                )
        except Exception as exc:  # noqa: BLE001 — e.g. the task could not be sent
            msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
            row = point_row(t, status="failed", error=msg)
        f.release()
        submit()
        if row is not None:
            yield row
