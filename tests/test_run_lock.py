"""A run folder in use is refused with the holder's pid (issue 17, What to build 2): a
`resume` while the run trains, two `run`s started at the same instant on one folder."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

import bioplaus as bp
from bioplaus import cli
from bioplaus.runs import LOCK, RunBusyError, run_lock
from bioplaus.tomlwrite import dumps

PROTO = {
    "name": "lock",
    "seed": 1,
    "model": {"n_in": 10, "n_rec": 16, "n_out": 10, "tau": 1.0, "dt": 1.0},
    "task": {"name": "copy", "length": 3, "delay": 1},
    "rule": {"name": "anp"},
    "train": {
        "steps": 300,
        "batch_size": 4,
        "eval_every": 10,
        "eval_batch": 4,
        "checkpoint_every": 50,
        "threads": 1,
    },
}


def _hold(folder, pid="424242"):
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid} otherhost\n".encode(), 0)
    return fd


def test_run_and_resume_of_a_folder_in_use_name_the_pid(tmp_path, capsys):
    small = {**PROTO, "train": {**PROTO["train"], "steps": 4}}
    p = tmp_path / "p.toml"
    p.write_text(dumps(small))
    done = tmp_path / "done"
    bp.run(small, out=done, progress=False)
    before = {f.name: f.read_bytes() for f in done.iterdir() if f.name != LOCK}
    fd = _hold(done)
    try:
        assert cli.main(["resume", str(done), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"bioplaus: error: {done}: in use by another process (pid 424242); nothing was changed"
        ]
        fresh = tmp_path / "fresh"
        fd2 = _hold(fresh, "777")
        try:
            assert cli.main(["run", str(p), "--out", str(fresh), "--quiet"]) == 2
            assert "pid 777" in capsys.readouterr().err
            assert sorted(f.name for f in fresh.iterdir()) == [LOCK]
        finally:
            os.close(fd2)
    finally:
        os.close(fd)
    assert {f.name: f.read_bytes() for f in done.iterdir() if f.name != LOCK} == before
    with pytest.raises(RunBusyError), run_lock(done), run_lock(done):  # exclusive in-process too
        pass


def _start(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "bioplaus", *args, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _unique_steps(out):
    df = pd.read_csv(out / "metrics.csv")
    assert df["step"].is_unique
    assert list(df["step"]) == list(range(0, 301, 10))


def test_two_threads_start_one_folder_at_once(tmp_path):
    """The race in-process: both pass the up-front checks, one takes the lock, the other is
    refused (busy, or the run is there by the time it looks); no duplicated rows."""
    import threading

    small = {**PROTO, "train": {**PROTO["train"], "steps": 40}}
    out = tmp_path / "r"
    barrier = threading.Barrier(2)
    results = []

    def go():
        barrier.wait()
        try:
            results.append(bp.run(small, out=out, progress=False).status)
        except bp.SpecError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("completed") == 1, results
    other = next(r for r in results if r != "completed")
    assert "in use by another process" in other or "already holds a run" in other
    df = pd.read_csv(out / "metrics.csv")
    assert list(df["step"]) == list(range(0, 41, 10))


@pytest.mark.slow  # CLI processes (~35 s on 2 shared cores)
def test_resume_while_the_run_trains_is_refused(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text(dumps(PROTO))
    out = tmp_path / "r"
    proc = _start("run", str(p), "--out", str(out))
    deadline = time.time() + 120
    while time.time() < deadline:
        m = out / "metrics.csv"
        if m.exists() and len(m.read_text().splitlines()) > 2:
            break
        time.sleep(0.05)
    r = subprocess.run(
        [sys.executable, "-m", "bioplaus", "resume", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    running = proc.poll() is None
    proc.communicate(timeout=300)
    assert proc.returncode == 0
    if running:  # the usual case: refused, naming the trainer's pid
        assert r.returncode == 2, r.stderr
        assert f"in use by another process (pid {proc.pid})" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    _unique_steps(out)


@pytest.mark.slow  # CLI processes (~35 s on 2 shared cores)
def test_two_runs_started_at_the_same_instant(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text(dumps(PROTO))
    out = tmp_path / "r"
    procs = [_start("run", str(p), "--out", str(out)) for _ in range(2)]
    results = [(pr.communicate(timeout=300), pr.returncode) for pr in procs]
    codes = sorted(rc for _, rc in results)
    assert codes == [0, 2], results
    (_, err), _ = next(r for r in results if r[1] == 2)
    assert "in use by another process" in err or "already holds a run" in err
    assert len(err.strip().splitlines()) == 1
    _unique_steps(out)
