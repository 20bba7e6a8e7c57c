"""Damaged run files give one line each, exit 2, and change nothing; never a silent restart
(issue 17, What to build 4)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from helpers import interrupted_at

import bioplaus as bp
from bioplaus import cli

PROTO = {
    "name": "dmg",
    "seed": 0,
    "model": {"n_in": 10, "n_rec": 12, "n_out": 10, "tau": 1.0, "dt": 1.0},
    "task": {"name": "copy", "length": 3, "delay": 1},
    "rule": {"name": "anp"},
    "train": {
        "steps": 12,
        "batch_size": 2,
        "eval_every": 2,
        "eval_batch": 2,
        "checkpoint_every": 4,
    },
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An interrupted run (checkpoint at step 8), a completed one, a completed one of
    another size."""
    base = tmp_path_factory.mktemp("runs")
    with interrupted_at(9), pytest.raises(KeyboardInterrupt):
        bp.run(PROTO, out=base / "cut", progress=False)
    bp.run(PROTO, out=base / "done", progress=False)
    other = {**PROTO, "model": {**PROTO["model"], "n_rec": 7}}
    bp.run(other, out=base / "other", progress=False)
    return base


def _digest(d):
    return {
        f.name: hashlib.sha1(f.read_bytes()).hexdigest()
        for f in sorted(d.iterdir())
        if f.name != ".run.lock"
    }


def _copy(runs, name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(runs / name, dst)
    return dst


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _ckpt_without(key):
    def damage(d, runs):
        sd = torch.load(d / "checkpoint.pt", weights_only=True)
        del sd[key]
        torch.save(sd, d / "checkpoint.pt")

    return damage


DAMAGE = {
    "config truncated": ("config.json", lambda d, r: _truncate(d / "config.json")),
    "config garbage": ("config.json", lambda d, r: (d / "config.json").write_bytes(b"\x00\xffzz")),
    "config no protocol": ("config.json", lambda d, r: (d / "config.json").write_text("{}")),
    "config invalid protocol": (
        "config.json",
        lambda d, r: (d / "config.json").write_text(
            json.dumps({"protocol": {**PROTO, "train": {"steps": -1}}})
        ),
    ),
    "checkpoint truncated": ("checkpoint.pt", lambda d, r: _truncate(d / "checkpoint.pt")),
    "checkpoint garbage": ("checkpoint.pt", lambda d, r: (d / "checkpoint.pt").write_text("no")),
    "checkpoint other size": (
        "checkpoint.pt",
        lambda d, r: shutil.copy(r / "other" / "checkpoint.pt", d / "checkpoint.pt"),
    ),
    "checkpoint missing weights": ("checkpoint.pt", _ckpt_without("weights")),
    "checkpoint missing optimizer": ("checkpoint.pt", _ckpt_without("optimizer")),
    "checkpoint missing generator": ("checkpoint.pt", _ckpt_without("gen_noise")),
    "metrics truncated": ("metrics.csv", lambda d, r: _truncate(d / "metrics.csv")),
    "metrics garbage": (
        "metrics.csv",
        lambda d, r: (d / "metrics.csv").write_bytes(b"\x89\x00,,\n"),
    ),
    "metrics no step": ("metrics.csv", lambda d, r: (d / "metrics.csv").write_text("a,b\n1,2\n")),
    "metrics repeated steps": (
        "metrics.csv",
        lambda d, r: (d / "metrics.csv").write_text(
            (d / "metrics.csv").read_text() + (d / "metrics.csv").read_text().splitlines()[2] + "\n"
        ),
    ),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_resume_of_a_damaged_run_is_one_line_and_changes_nothing(runs, tmp_path, capsys, name):
    fname, damage = DAMAGE[name]
    d = _copy(runs, "cut", tmp_path)
    damage(d, runs)
    before = _digest(d)
    assert cli.main(["resume", str(d), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{d}: {fname} is damaged (" in err[0] and err[0].endswith("; nothing was changed"), err
    assert _digest(d) == before


def test_missing_checkpoint_never_restarts_silently(runs, tmp_path, capsys):
    d = _copy(runs, "cut", tmp_path)
    (d / "checkpoint.pt").unlink()
    before = _digest(d)
    assert cli.main(["resume", str(d), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt is missing (the run had reached step 8); nothing was changed" in err
    assert _digest(d) == before
    # a completed run without its checkpoint: kept as it is (its final params are there)
    d = _copy(runs, "done", tmp_path)
    (d / "checkpoint.pt").unlink()
    before = _digest(d)
    assert cli.main(["resume", str(d), "--quiet"]) == 0
    assert "already completed at step 12" in capsys.readouterr().out
    assert _digest(d) == before
    # … and without its final params as well: refused, not retrained from step 0
    (d / "params_final.npz").unlink()
    before = _digest(d)
    assert cli.main(["resume", str(d), "--quiet"]) == 2
    assert "checkpoint.pt is missing (status.json says completed)" in capsys.readouterr().err
    assert _digest(d) == before


def test_missing_metrics_with_a_later_checkpoint(runs, tmp_path, capsys):
    d = _copy(runs, "cut", tmp_path)
    (d / "metrics.csv").unlink()
    assert cli.main(["resume", str(d), "--quiet"]) == 2
    assert "metrics.csv is missing but checkpoint.pt is at step 8" in capsys.readouterr().err


def test_garbage_status_is_advisory(runs, tmp_path):
    d = _copy(runs, "cut", tmp_path)
    (d / "status.json").write_text("{{{")
    res = bp.resume(d, progress=False)
    assert res.status == "completed" and list(res.metrics["step"]) == list(range(0, 13, 2))


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01\x02garbage", b"step,loss\n", b"step,loss\n1,2\n3"],
    ids=["empty", "garbage", "header only", "cut row"],
)
def test_plot_of_damaged_metrics(runs, tmp_path, capsys, content):
    d = _copy(runs, "done", tmp_path)
    (d / "metrics.csv").write_bytes(content)
    assert cli.main(["plot", str(d), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.csv is damaged" in err[0], err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_compare_of_a_corrupt_params_final(runs, tmp_path, capsys, damage):
    a = _copy(runs, "done", tmp_path)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    p = b / "params_final.npz"
    _truncate(p) if damage == "truncated" else p.write_bytes(b"PK\x03\x04 not a zip")
    assert cli.main(["compare", str(a), str(b), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{b}: params_final.npz is damaged" in err[0], err
    assert not (tmp_path / "rep").exists()
