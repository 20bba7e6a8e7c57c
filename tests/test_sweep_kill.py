"""Sweeps survive dying workers and a killed sweep process (docs/reliability.md, item 4).

Worker processes are those of a Dask LocalCluster, the sweep's one executor (``workers=2``).

A watcher thread finds the process running a point from the point's lock file
(``points/NAME/.lock`` holds the pid while the point runs) and kills it with SIGKILL
mid-point; the sweep must lose only that point (run again, or marked failed), finish every
other point with results identical to an undisturbed sweep, keep a parseable table, and
re-running must only do what is missing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioplaus.sweep import read_table, run_sweep

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

PROTOCOL = """
name = "kill_tiny"
seed = 0
[model]
n_in = 10
n_rec = 12
n_out = 10
tau = 1.0
dt = 1.0
sigma = 1e-2
[task]
name = "copy"
length = 3
delay = 1
[rule]
name = "anp"
[train]
steps = 300
eval_every = 20
checkpoint_every = 20
batch_size = 4
eval_batch = 4
lr = 1e-2
threads = 1
"""

SWEEP = """
name = "kill"
protocol = "base.toml"
threads = 1
retries = 1
[grid]
seed = [0, 1, 2, 3]
"""

A = "seed=0"  # its worker is killed once: run again, completed
B = "seed=1"  # its worker is killed every time it runs: failed after its 1 retry
KEEP = ["point", "seed", "status", "steps", "loss", "eval_loss", "metric", "best_metric"]
KILLS = 4  # kills of the whole sweep process


def make_sweep(tmp_path: Path) -> Path:
    (tmp_path / "base.toml").write_text(PROTOCOL)
    f = tmp_path / "sweep.toml"
    f.write_text(SWEEP)
    return f


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``pid`` is a live descendant of ``ancestor`` (never kill anything else)."""
    for _ in range(10):
        parent = _ppid(pid)
        if parent is None or parent <= 1:
            return False
        if parent == ancestor:
            return True
        pid = parent
    return False


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _holder(run_dir: Path) -> int | None:
    """The pid written in the point's lock file, if any."""
    try:
        return int((run_dir / ".lock").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Killer(threading.Thread):
    """Kill with SIGKILL the process running point NAME, ``plan[NAME]`` times, each time
    once the point has logged ``rows`` metrics rows (so mid-run, after a checkpoint)."""

    def __init__(self, out: Path, plan: dict[str, int], rows: int = 4) -> None:
        super().__init__(daemon=True)
        self.out, self.plan, self.rows = out, dict(plan), rows
        self.killed: list[tuple[str, int]] = []
        self.stop = threading.Event()

    def killed_names(self) -> list[str]:
        return [name for name, _ in self.killed]

    def __enter__(self) -> Killer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join()

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            for name, left in self.plan.items():
                d = self.out / "points" / name
                pid = _holder(d)
                if left == 0 or pid is None or any(p == pid for _, p in self.killed):
                    continue
                try:
                    n_rows = len((d / "metrics.csv").read_text().splitlines()) - 1
                    status = json.loads((d / "status.json").read_text())["status"]
                except (OSError, ValueError, KeyError):
                    continue
                if n_rows >= self.rows and status == "running" and _descends_from(pid, me):
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append((name, pid))
                    self.plan[name] -= 1
            time.sleep(0.01)


def _same_as_reference(df: pd.DataFrame, ref: pd.DataFrame, out: Path, refdir: Path) -> None:
    """Rows, metrics.csv and final parameters equal the undisturbed sweep's (wall time aside)."""
    pd.testing.assert_frame_equal(df[KEEP].reset_index(drop=True), ref[KEEP].reset_index(drop=True))
    for p in ref["point"]:
        a = pd.read_csv(refdir / "points" / p / "metrics.csv").drop(columns="wall_time")
        b = pd.read_csv(out / "points" / p / "metrics.csv").drop(columns="wall_time")
        pd.testing.assert_frame_equal(a, b)
        pa = np.load(refdir / "points" / p / "params_final.npz")
        pb = np.load(out / "points" / p / "params_final.npz")
        assert all(np.array_equal(pa[k], pb[k]) for k in pa.files), p


def _check_after_kills(f: Path, out: Path, df: pd.DataFrame, reference, killer) -> None:
    """A was killed once and completed, B killed twice and failed; every other point
    completed untouched; re-running finishes B, and a third run changes nothing."""
    ref, refdir = reference
    assert sorted(killer.killed_names()) == sorted([A, B, B]), killer.killed
    table = read_table(out / "results.csv")  # the table on disk parses, one row per point
    assert list(table["point"]) == list(df["point"]) == list(ref["point"])
    st = dict(zip(table["point"], table["status"], strict=True))
    assert st[A] == "completed"  # run again after its worker died, from its checkpoint
    assert st[B] == "failed"
    assert "worker died" in table.set_index("point").loc[B, "error"]
    assert json.loads((out / "points" / B / "status.json").read_text())["status"] == "failed"
    assert all(s == "completed" for p, s in st.items() if p != B)  # points lost: 0
    ok = ref["point"] != B
    _same_as_reference(df[ok.to_numpy()], ref[ok], out, refdir)

    # re-run: only B runs (it resumes its checkpoint); the sweep is now the undisturbed one
    kept = {p: (out / "points" / p / "metrics.csv").stat().st_mtime_ns for p in ref["point"]}
    kept.pop(B)
    again = run_sweep(f, out, workers=1, progress=False, plot=False)
    assert kept == {p: (out / "points" / p / "metrics.csv").stat().st_mtime_ns for p in kept}
    _same_as_reference(again, ref, out, refdir)
    # and again: nothing runs, nothing changes
    stamps = {p: (out / "points" / p / "metrics.csv").stat().st_mtime_ns for p in ref["point"]}
    third = run_sweep(f, out, workers=1, progress=False, plot=False)
    pd.testing.assert_frame_equal(third[KEEP], again[KEEP])
    pd.testing.assert_frame_equal(read_table(out / "results.csv")[KEEP], again[KEEP])
    assert stamps == {
        p: (out / "points" / p / "metrics.csv").stat().st_mtime_ns for p in ref["point"]
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The undisturbed sweep, run in this process."""
    d = tmp_path_factory.mktemp("ref")
    df = run_sweep(make_sweep(d), d / "out", workers=1, progress=False, plot=False)
    assert (df["status"] == "completed").all()
    return df, d / "out"


def test_killed_local_worker_loses_only_its_point(tmp_path, reference):
    # --workers 2: a Dask LocalCluster (the one executor), its nannies restarting the killed
    # worker processes (forked from a fork server that has imported torch once)
    f = make_sweep(tmp_path)
    out = tmp_path / "out"
    with Killer(out, {A: 1, B: 2}) as killer:
        df = run_sweep(f, out, workers=2, progress=False, plot=False)
    err = df.set_index("point").loc[B, "error"]
    assert err.startswith("worker died (signal 9 SIGKILL) while running this point, 2 times")
    assert "dask KilledWorker" in err  # it ran on Dask
    _check_after_kills(f, out, df, reference, killer)


@pytest.mark.slow  # the same as above through scheduler="local"
def test_killed_dask_worker_loses_only_its_point(tmp_path, reference):
    pytest.importorskip("dask.distributed")
    f = make_sweep(tmp_path)
    out = tmp_path / "out"
    # scheduler="local": a LocalCluster whose scheduler fails a lost worker's point at once
    # (KilledWorker) and bioplaus runs it again `retries` (1) times; its nannies restart
    # the killed worker processes
    with Killer(out, {A: 1, B: 2}) as killer:
        df = run_sweep(f, out, scheduler="local", workers=2, progress=False, plot=False)
    assert "KilledWorker" in df.set_index("point").loc[B, "error"]
    _check_after_kills(f, out, df, reference, killer)


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (workers, the fork server, the resource tracker)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            parent[int(d.name)] = _ppid(int(d.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


def _check_readable(out: Path) -> None:
    """The table, sweep.json and every point's files are complete and parse."""
    table = out / "results.csv"
    if table.exists():
        text = table.read_text()
        assert text.endswith("\n")
        df = pd.read_csv(table)
        assert df["point"].is_unique and df["status"].notna().all()
    if (out / "sweep.json").exists():
        json.loads((out / "sweep.json").read_text())
    for f in (out / "points").glob("*/*"):
        if f.name.startswith("."):
            continue  # the lock file, an unfinished temporary file (never a real name)
        if f.suffix == ".json":
            json.loads(f.read_text())
        elif f.suffix == ".csv":
            assert len({line.count(",") for line in f.read_text().splitlines()}) == 1, f
        elif f.suffix == ".npz":
            dict(np.load(f))
        elif f.suffix == ".pt":
            import torch

            torch.load(f, weights_only=True)


def test_killing_the_sweep_process_never_leaves_a_half_written_table(tmp_path, reference):
    ref, refdir = reference
    f = make_sweep(tmp_path)
    out = tmp_path / "out"
    rng = np.random.default_rng(0)
    kills = orphans = tables = busy_workers = 0
    for i in range(KILLS):
        workers = 2 if i == 1 else 1  # once with worker processes, which must not outlive it
        started = time.time()
        cmd = ["sweep", str(f), "--out", str(out), "--quiet", "--workers", str(workers)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "bioplaus", *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # kill it at a random moment soon after it has written the table (finished a point;
        # in itself), or after a worker has taken a point's lock (in worker processes)
        deadline = started + 120
        while proc.poll() is None and time.time() < deadline:
            with contextlib.suppress(OSError):
                marks = [out / "results.csv"] if workers == 1 else out.glob("points/*/.lock")
                if any(m.stat().st_mtime > started for m in marks):
                    break
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0.0, 1.0)))
        kids = _descendants(proc.pid)
        holders = [p for p in map(_holder, out.glob("points/*")) if p in kids]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0
            break  # the sweep finished before its kill: nothing left to interrupt
        kills += 1
        busy_workers += len(holders)
        _check_readable(out)
        tables += (out / "results.csv").exists()
        # a worker running a point notices and exits at once (no orphan keeps training);
        # helper processes (the fork server, the resource tracker) follow
        for pids, wait in ((holders, 10), (kids, 120)):
            deadline = time.time() + wait
            while any(_alive(k) for k in pids) and time.time() < deadline:
                time.sleep(0.05)
        orphans += sum(_alive(k) for k in kids)
    print(f"kills {kills}, table on disk {tables}, busy workers {busy_workers}, orphans {orphans}")
    assert orphans == 0
    assert kills >= 3 and busy_workers >= 1
    # re-running finishes the sweep with the undisturbed results; once more changes nothing
    df = run_sweep(f, out, workers=1, progress=False, plot=False)
    _same_as_reference(df, ref, out, refdir)
    before = pd.read_csv(io.StringIO((out / "results.csv").read_text()))
    again = run_sweep(f, out, workers=1, progress=False, plot=False)
    pd.testing.assert_frame_equal(again[KEEP], before[KEEP])
    pd.testing.assert_frame_equal(read_table(out / "results.csv")[KEEP], before[KEEP])
