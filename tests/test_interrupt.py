"""SIGINT / SIGTERM: the step in flight finishes, a checkpoint at that step is written, the run
is marked interrupted, the CLI exits 130 with the exact resume command, and resume ends
bit-identical to an uninterrupted run (issue 17, What to build 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import bioplaus as bp
from bioplaus import cli
from bioplaus.runs import RunInterrupted
from bioplaus.tomlwrite import dumps
from bioplaus.train import trainer as trainer_mod

PROTO = {
    "name": "intr",
    "seed": 2,
    "model": {"n_in": 10, "n_rec": 16, "n_out": 10, "tau": 1.0, "dt": 1.0, "sigma": 1e-3},
    "task": {"name": "copy", "length": 3, "delay": 1},
    "rule": {"name": "anp"},
    "train": {
        "steps": 30,
        "batch_size": 4,
        "lr": 0.01,
        "eval_every": 4,
        "eval_batch": 4,
        "checkpoint_every": 500,  # only the step-0 and the final checkpoint, unless interrupted
        "threads": 1,
    },
}


def _same(a, b):
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    pd.testing.assert_frame_equal(
        a.metrics.drop(columns="wall_time"), b.metrics.drop(columns="wall_time")
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_checkpoints_that_step_and_resume_is_bit_identical(
    tmp_path, monkeypatch, sig
):
    full = bp.run(PROTO, out=tmp_path / "full", progress=False)
    real = trainer_mod.Trainer.step

    def step(self):
        info = real(self)
        if self.step_count == 13:  # the signal arrives while step 13 is computed
            os.kill(os.getpid(), sig)
        return info

    monkeypatch.setattr(trainer_mod.Trainer, "step", step)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(RunInterrupted) as e:
        bp.run(PROTO, out=tmp_path / "cut", progress=False)
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # handlers restored
    assert e.value.step == 13 and e.value.signal == signal.Signals(sig).name
    st = json.loads((tmp_path / "cut" / "status.json").read_text())
    assert st["status"] == "interrupted" and st["checkpoint_step"] == 13 and st["step"] == 13
    monkeypatch.setattr(trainer_mod.Trainer, "step", real)
    lines = []
    res = bp.resume(tmp_path / "cut", progress=False, log=lines.append)
    assert lines == [f"resuming {tmp_path / 'cut'} from step 13 of 30"]
    _same(full, res)


def test_status_carries_the_last_checkpoint_during_training(tmp_path, monkeypatch):
    seen = []
    real = trainer_mod.Trainer.step
    out = tmp_path / "r"

    def step(self):
        if self.step_count in (7, 12):
            seen.append(json.loads((out / "status.json").read_text()))
        return real(self)

    monkeypatch.setattr(trainer_mod.Trainer, "step", step)
    proto = {**PROTO, "train": {**PROTO["train"], "checkpoint_every": 5, "steps": 14}}
    bp.run(proto, out=out, progress=False)
    assert [(s["status"], s["checkpoint_step"]) for s in seen] == [("running", 5), ("running", 10)]
    final = json.loads((out / "status.json").read_text())
    assert final["status"] == "completed" and final["checkpoint_step"] == 14


def test_stale_temporaries_removed_on_resume(tmp_path, monkeypatch):
    real = trainer_mod.Trainer.step

    def step(self):
        if self.step_count == 5:
            raise KeyboardInterrupt  # stops at once: the last checkpoint (step 0) stands
        return real(self)

    monkeypatch.setattr(trainer_mod.Trainer, "step", step)
    with pytest.raises(RunInterrupted) as e:
        bp.run(PROTO, out=tmp_path / "r", progress=False)
    assert e.value.step == 0 and "at step 5 (last checkpoint: step 0)" in str(e.value)
    monkeypatch.setattr(trainer_mod.Trainer, "step", real)
    for i in range(3):
        (tmp_path / "r" / f".checkpoint.pt.x{i}.tmp").write_bytes(b"partial")
    lines = []
    bp.resume(tmp_path / "r", progress=False, log=lines.append)
    assert not list((tmp_path / "r").glob(".*.tmp"))
    assert "removed 3 stale temporary file(s)" in lines[0]


def test_cli_prints_the_exact_resume_command(tmp_path, capsys, monkeypatch):
    real = trainer_mod.Trainer.step

    def step(self):
        info = real(self)
        if self.step_count == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return info

    monkeypatch.setattr(trainer_mod.Trainer, "step", step)
    p = tmp_path / "p.toml"
    p.write_text(dumps(PROTO))
    out = tmp_path / "r"
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err.strip().endswith(f"continue with: bioplaus resume {out}")
    assert "checkpoint at step 6" in err and "bp.resume" not in err
    monkeypatch.setattr(trainer_mod.Trainer, "step", real)
    assert cli.main(["resume", str(out), "--quiet"]) == 0
    assert f"resuming {out} from step 6 of 30" in capsys.readouterr().out


@pytest.mark.slow  # two CLI processes and a reference run: ~45 s on 2 shared cores
def test_ctrl_c_on_the_command_line_then_resume_is_bit_identical(tmp_path):
    """A real SIGINT to a `bioplaus run` process: exit 130, then `bioplaus resume` finishes
    with the weights of an uninterrupted run."""
    proto = {**PROTO, "train": {**PROTO["train"], "steps": 800, "eval_every": 25}}
    p = tmp_path / "p.toml"
    p.write_text(dumps(proto))
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bioplaus", "run", str(p), "--out", str(cut), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # interrupt once a few rows after step 0 exist
        m = cut / "metrics.csv"
        if m.exists() and len(m.read_text().splitlines()) > 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].endswith(f"continue with: bioplaus resume {cut}")
    st = json.loads((cut / "status.json").read_text())
    assert st["status"] == "interrupted" and st["checkpoint_step"] == st["step"]
    assert 0 < st["step"] < 800
    r = subprocess.run(
        [sys.executable, "-m", "bioplaus", "resume", str(cut), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert f"from step {st['step']} of 800" in r.stdout
    full = bp.run(proto, out=tmp_path / "full", progress=False)
    b = np.load(cut / "params_final.npz")
    for k in full.params:
        assert np.array_equal(full.params[k], b[k]), k
    mb = pd.read_csv(cut / "metrics.csv")
    assert list(full.metrics["step"]) == list(mb["step"])


def test_non_finite_step_0_evaluation_marks_the_run_diverged(tmp_path, monkeypatch):
    """Before issue 17 a DivergedError at the step-0 evaluation left status.json 'running'."""

    def bad_eval(self):
        raise trainer_mod.DivergedError("non-finite evaluation loss at step 0")

    monkeypatch.setattr(trainer_mod.Trainer, "evaluate", bad_eval)
    p = tmp_path / "p.toml"
    p.write_text(dumps(PROTO))
    out = tmp_path / "r"
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 3
    st = json.loads((out / "status.json").read_text())
    assert st["status"] == "diverged" and "step 0" in st["reason"]


def test_completed_is_written_only_once_params_final_is_on_disk(tmp_path, monkeypatch):
    """status.json "completed" is the run's commit mark: a process killed just before it
    leaves a "running" run that resumes, never a completed one without its final parameters."""
    from bioplaus.runs import loop

    out = tmp_path / "r"
    seen = []
    real = loop.io.write_json

    def write_json(path, obj):
        if path.name == "status.json":
            seen.append((obj["status"], (out / "params_final.npz").is_file()))
        return real(path, obj)

    monkeypatch.setattr(loop.io, "write_json", write_json)
    full = bp.run(PROTO, out=out, progress=False)
    assert seen[-1] == ("completed", True)
    assert all(has is False for s, has in seen[:-1]), seen
    monkeypatch.undo()
    # killed between the two writes: params_final.npz gone, status "running" at the last step
    (out / "params_final.npz").unlink()
    st = json.loads((out / "status.json").read_text())
    (out / "status.json").write_text(json.dumps({**st, "status": "running"}))
    res = bp.resume(out, progress=False, log=lambda _: None)
    assert res.status == "completed" and (out / "params_final.npz").is_file()
    _same(full, res)
