"""Reliability guarantees (docs/reliability.md): bad input, crashes, determinism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bioplaus import cli
from bioplaus.tomlwrite import dumps, value

VALID = {
    "name": "rel",
    "seed": 0,
    "model": {
        "n_in": 10,
        "n_rec": 12,
        "n_out": 10,
        "tau": 1.0,
        "dt": 1.0,
        "sigma": 0.001,
        "nonlinearity": "tanh",
    },
    "task": {"name": "copy", "length": 3, "delay": 1},
    "rule": {"name": "anp", "K": 1},
    "train": {
        "steps": 3,
        "batch_size": 2,
        "lr": 0.01,
        "optimizer": "sgd",
        "eval_every": 1,
        "eval_batch": 2,
    },
}

# (path, bad values) — every value is wrong for its key: type, range or name
BAD_VALUES = {
    ("seed",): [-1, "zero", 1.5, [0]],
    ("model", "n_in"): [0, -3, 2.5, "10", True, 7],  # 7: does not match the task
    ("model", "n_rec"): [0, -1, "12", 3.0, [12]],
    ("model", "n_out"): [0, "x", 4],
    ("model", "tau"): [0.0, -1.0, "1", [1.0], {"a": 1}],
    ("model", "dt"): [0.0, -0.1, 2.0, "0.1"],  # 2.0 > tau
    ("model", "sigma"): [-1e-3, "small", [0.1]],
    ("model", "nonlinearity"): ["tanhh", 3, "ReLU"],
    ("model", "kind"): ["spiking", 1],
    ("task", "name"): ["cpy", 3, ""],
    ("task", "length"): [0, -2, 2.5, "3"],
    ("task", "delay"): [-1, "1", 0.5],
    ("rule", "name"): ["backprop", "ANP", 1],
    ("rule", "K"): [0, -1, 1.5, "2"],
    ("rule", "sigma"): [0.0, -1.0, "1e-3"],
    ("rule", "signal"): ["global", 1],
    ("rule", "baseline"): ["none", True],
    ("train", "steps"): [0, -1, 2.5, "3"],
    ("train", "batch_size"): [0, "2", 1.5],
    ("train", "lr"): [0.0, -0.1, "fast"],
    ("train", "optimizer"): ["rmsprop", 1],
    ("train", "eval_every"): [0, "1"],
    ("train", "lr_decor"): [-1.0, 0.1],  # 0.1 without a decorrelating model
    ("train", "dtype"): ["float16", 32],
    ("train", "device"): ["cuda:7"] if not __import__("torch").cuda.is_available() else [],
    ("backend",): ["nest", 2],
}
UNKNOWN = [("model", "n_hidden"), ("train", "lrr"), ("rule", "eta"), ("task", "lenght"), ("extra",)]
REQUIRED = [
    ("model",),
    ("task",),
    ("rule",),
    ("train",),
    ("model", "n_in"),
    ("model", "n_rec"),
    ("train", "steps"),
    ("rule", "name"),
    ("task", "name"),
]


def mutate(kind: int, idx: int, bad_pick: int):
    data = json.loads(json.dumps(VALID))
    if kind == 0:
        keys = [k for k, v in BAD_VALUES.items() if v]
        path = keys[idx % len(keys)]
        vals = BAD_VALUES[path]
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = vals[bad_pick % len(vals)]
    elif kind == 1:
        path = UNKNOWN[idx % len(UNKNOWN)]
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = 1
    else:
        path = REQUIRED[idx % len(REQUIRED)]
        node = data
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return data, path


COUNT = {"n": 0}


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.integers(0, 2), idx=st.integers(0, 200), bad=st.integers(0, 20), via_set=st.booleans()
)
def test_every_bad_configuration_is_one_line_exit_2_nothing_written(
    tmp_path_factory, capsys, kind, idx, bad, via_set
):
    d = tmp_path_factory.mktemp("bad")
    data, path = mutate(kind, idx, bad)
    proto = d / "p.toml"
    out = d / "run"
    args = ["run", str(proto), "--out", str(out), "--quiet"]
    if via_set and kind == 0 and len(path) == 2:
        # the same bad value through --set on a valid file
        proto.write_text(dumps(VALID))
        node = data[path[0]]
        args += ["--set", f"{path[0]}.{path[1]}={value(node[path[1]])}"]
    else:
        proto.write_text(dumps(data))
    rc = cli.main(args)
    err = capsys.readouterr().err
    COUNT["n"] += 1
    assert rc == 2, (data, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert path[-1] in lines[0] or (path[-1] in ("n_in", "n_out") and "n_" in lines[0]), (path, err)
    assert not out.exists()


def test_malformed_and_missing_files(tmp_path, capsys):
    for text in ["[model\nn_in = 3", "name = ", "\x00\x01", "model = [1, 2"]:
        p = tmp_path / "p.toml"
        p.write_text(text)
        assert cli.main(["run", str(p), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(p) in err[0]
    assert cli.main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# -- crashes ------------------------------------------------------------------------------

KILL_PROTO = {
    **VALID,
    "model": {**VALID["model"], "n_rec": 32},
    "task": {"name": "copy", "length": 5, "delay": 2},
    "train": {
        "steps": 400,
        "batch_size": 4,
        "lr": 0.01,
        "eval_every": 10,
        "eval_batch": 4,
        "checkpoint_every": 25,
        "threads": 1,
    },
}


def start(proto: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bioplaus", "run", str(proto), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def check_readable(out: Path) -> None:
    """Every file a killed run left is complete and parses."""
    for f in out.iterdir():
        assert not f.name.endswith(".tmp") or f.name.startswith("."), f
        if f.name.startswith("."):
            continue  # an unfinished temporary file (never the real name)
        if f.suffix == ".json":
            json.loads(f.read_text())
        elif f.suffix == ".csv":
            text = f.read_text()
            assert text.endswith("\n")
            df = pd.read_csv(f)
            assert df.notna()["step"].all()
            widths = {line.count(",") for line in text.splitlines()}
            assert len(widths) == 1, "a truncated row"
        elif f.suffix == ".pt":
            import torch

            torch.load(f, weights_only=True)
        elif f.suffix == ".npz":
            dict(np.load(f))
        elif f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_killing_a_run_at_20_random_moments_leaves_only_readable_files(tmp_path):
    proto = tmp_path / "p.toml"
    proto.write_text(dumps(KILL_PROTO))
    rng = np.random.default_rng(0)
    survived = 0
    for i in range(20):
        out = tmp_path / f"r{i}"
        proc = start(proto, out)
        time.sleep(float(rng.uniform(1.5, 6.0)))  # start-up (imports) takes ~1.5-3 s
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if out.exists():
            check_readable(out)
        survived += 1
    assert survived == 20


def test_resume_after_kill_9_is_bit_identical(tmp_path):
    proto = tmp_path / "p.toml"
    proto.write_text(dumps(KILL_PROTO))
    full = tmp_path / "full"
    assert (
        subprocess.run(
            [sys.executable, "-m", "bioplaus", "run", str(proto), "--out", str(full), "--quiet"],
            capture_output=True,
        ).returncode
        == 0
    )
    cut = tmp_path / "cut"
    proc = start(proto, cut)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once a mid-run checkpoint exists
        m = cut / "metrics.csv"
        if m.exists() and len(m.read_text().splitlines()) > 8:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((cut / "status.json").read_text())["status"] == "running"
    r = subprocess.run(
        [sys.executable, "-m", "bioplaus", "resume", str(cut), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    a, b = np.load(full / "params_final.npz"), np.load(cut / "params_final.npz")
    for k in a.files:
        assert np.array_equal(a[k], b[k]), k
    ma, mb = pd.read_csv(full / "metrics.csv"), pd.read_csv(cut / "metrics.csv")
    assert list(ma["step"]) == list(mb["step"])
    pd.testing.assert_frame_equal(ma.drop(columns="wall_time"), mb.drop(columns="wall_time"))


def test_resolved_config_reloads(tmp_path):
    """config.json's protocol validates again (resume relies on it) and round-trips TOML."""
    from bioplaus.protocol import protocol_from_dict
    from bioplaus.runs import run

    res = run(VALID, out=tmp_path / "r", progress=False)
    cfg = json.loads((res.out / "config.json").read_text())["protocol"]
    again = protocol_from_dict(cfg)
    assert again.model_dump(mode="json") == cfg
    assert protocol_from_dict(tomllib.loads(dumps(cfg))) == again


@pytest.mark.parametrize("n", [2])
def test_two_runs_same_seed_identical_bytes(tmp_path, n):
    from bioplaus.runs import run

    outs = [run(VALID, out=tmp_path / f"r{i}", progress=False) for i in range(n)]
    for k in outs[0].params:
        assert outs[0].params[k].tobytes() == outs[1].params[k].tobytes()
    m = [(o.out / "metrics.csv").read_text().splitlines() for o in outs]
    strip = [[",".join(line.split(",")[:-1]) for line in mm] for mm in m]  # wall_time last
    assert strip[0] == strip[1]


def test_resume_from_the_step_0_checkpoint_logs_step_0_once(tmp_path, monkeypatch):
    """A run killed after its first checkpoint (step 0) but before its first update resumes
    to the same metrics as an uninterrupted run (step 0 is not logged twice)."""
    from bioplaus.runs import resume, run
    from bioplaus.train.trainer import Trainer

    full = run(VALID, out=tmp_path / "full", progress=False)
    step = Trainer.step

    def interrupted(self):
        raise KeyboardInterrupt  # stands in for a kill right after the step-0 checkpoint

    monkeypatch.setattr(Trainer, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(VALID, out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(Trainer, "step", step)
    res = resume(tmp_path / "cut", progress=False)
    assert list(res.metrics["step"]) == list(full.metrics["step"])
    pd.testing.assert_frame_equal(
        res.metrics.drop(columns="wall_time"), full.metrics.drop(columns="wall_time")
    )
    for k in full.params:
        assert np.array_equal(full.params[k], res.params[k]), k
