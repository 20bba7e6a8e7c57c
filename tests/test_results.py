"""``bp.load_run`` / ``bp.load_sweep``: what a finished run or sweep reads back as, and a
one-line SpecError naming the file for a folder that is not one or a damaged file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bioplaus as bp
from bioplaus.spec import SpecError


def tiny(steps=6, seed=3, decor=True):
    return {
        "name": "tiny_load",
        "seed": seed,
        "model": {
            "n_in": 10,
            "n_rec": 12,
            "n_out": 10,
            "tau": 1.0,
            "dt": 1.0,
            "sigma": 1e-3,
            "decorrelate_rec": decor,
        },
        "task": {"name": "copy", "length": 3, "delay": 1},
        "rule": {"name": "anp"},
        "train": {
            "steps": steps,
            "batch_size": 4,
            "optimizer": "adam",
            "lr": 3e-3,
            "lr_decor": 1e-3 if decor else 0.0,
            "eval_every": 3,
            "eval_batch": 4,
            "checkpoint_every": 3,
        },
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("load") / "run"
    res = bp.run(tiny(), out=out, progress=False)
    return out, res


def test_load_run_reads_back_what_run_returned(finished):
    out, res = finished
    run = bp.load_run(out)
    assert run.status == "completed" and run.reason is None and run.step == 6
    pd.testing.assert_frame_equal(run.metrics, res.metrics)
    assert set(run.params) == set(res.params)
    for k, v in res.params.items():
        np.testing.assert_allclose(run.params[k], v)
    assert run.config["seeds"]["root"] == 3
    assert run.config["protocol"]["rule"]["name"] == "anp"
    assert run.protocol.train.steps == 6 and run.protocol.model.n_rec == 12
    assert run.metric == "error_bits"
    assert int(run.final["step"]) == 6
    assert run.label == f"anp + decorrelation ({out.name})"
    assert "error bits" in run.summary() and "metric" not in run.summary()
    assert set(run.init) == set(run.params)  # rebuilt initial parameters
    assert not np.allclose(run.init["W_rec"], run.params["W_rec"])
    assert "status='completed'" in repr(run)


def test_load_run_of_an_unfinished_run_has_no_params(finished, tmp_path):
    out, _ = finished
    cut = tmp_path / "cut"
    cut.mkdir()
    for f in ("config.json", "metrics.csv"):
        (cut / f).write_bytes((out / f).read_bytes())
    (cut / "status.json").write_text(json.dumps({"status": "running", "step": 3, "reason": None}))
    run = bp.load_run(cut)
    assert run.status == "running" and run.params is None and run.step == 3
    assert len(run.metrics) == len(bp.load_run(out).metrics)


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize(
    "damage, needle",
    [
        ("nothing", "no such run directory"),
        ("empty", "not a run directory (no config.json)"),
        ("config.json", "config.json: unreadable"),
        ("metrics.csv", "metrics.csv: unreadable"),
        ("no metrics", "metrics.csv: missing"),
        ("status.json", "status.json: unreadable"),
        ("params_final.npz", "params_final.npz: unreadable"),
        ("no params", "params_final.npz: missing (status.json says completed)"),
    ],
)
def test_load_run_errors_are_one_line_naming_the_file(finished, tmp_path, damage, needle):
    out, _ = finished
    d = tmp_path / "d"
    if damage == "empty":
        d.mkdir()
    elif damage != "nothing":
        copy_run(out, d)
        if damage == "no metrics":
            (d / "metrics.csv").unlink()
        elif damage == "no params":
            (d / "params_final.npz").unlink()
        elif damage == "metrics.csv":
            (d / "metrics.csv").write_text("")
        else:
            (d / damage).write_bytes(b"\x00garbage{")
    with pytest.raises(SpecError) as ei:
        bp.load_run(d)
    msg = str(ei.value)
    assert needle in msg and "\n" not in msg
    assert isinstance(ei.value, ValueError)


def test_load_run_names_a_sweep_folder(tmp_path):
    (tmp_path / "sweep.json").write_text("{}")
    with pytest.raises(SpecError, match="bp.load_sweep"):
        bp.load_run(tmp_path)


SWEEP = """
name = "tiny_load_sweep"
protocol = "p.toml"
[fixed]
"train.steps" = 3
[grid]
"model.sigma" = [1e-3, 1e-2]
[plot]
x = "model.sigma"
"""


def test_load_sweep_reads_the_table(tmp_path):
    from bioplaus.tomlwrite import dumps

    (tmp_path / "p.toml").write_text(dumps(tiny(steps=3, decor=False)))
    (tmp_path / "s.toml").write_text(SWEEP)
    from bioplaus import sweep as sw

    df = sw.run_sweep(tmp_path / "s.toml", tmp_path / "out", progress=False, plot=False)
    table = bp.load_sweep(tmp_path / "out")
    pd.testing.assert_frame_equal(table, sw.read_table(tmp_path / "out" / "results.csv"))
    assert list(table["point"]) == list(df["point"])
    np.testing.assert_allclose(table["metric"], df["metric"])
    assert list(table["status"]) == ["completed", "completed"]
    assert sorted(table["model.sigma"]) == [1e-3, 1e-2]
    # the results file itself, and each point as a run
    assert len(bp.load_sweep(tmp_path / "out" / "results.csv")) == 2
    point = bp.load_run(tmp_path / "out" / "points" / table["point"][0])
    assert point.status == "completed"


def test_load_sweep_errors(tmp_path, finished):
    with pytest.raises(SpecError, match="no such sweep folder"):
        bp.load_sweep(tmp_path / "nope")
    with pytest.raises(SpecError, match="it is a run directory: bp.load_run"):
        bp.load_sweep(finished[0])
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "results.csv").write_bytes(b'a,b\n"unclosed,1\n')
    with pytest.raises(SpecError, match=r"results\.csv: unreadable"):
        bp.load_sweep(tmp_path / "s")


def test_lif_readout_matches_the_backend(tmp_path):
    """compare's LIF activity (public simulate with spikes=True + filtered spike trains)
    gives the back-end's own outputs on the same background noise."""
    import torch

    from bioplaus.analysis.compare import lif_activity, lif_readout
    from bioplaus.backends.torch.lif import consts_of, to_torch
    from bioplaus.backends.torch.lif.rollout import background, rollout
    from bioplaus.results import Run

    spec = bp.LIFSpec(n_in=2, n_rec=8, n_out=1, dt=0.002, decorrelate_rec=True, out_bias=True)
    params = bp.init_params(spec, seed=1)
    params["D_rec"] = params["D_rec"] + 0.05 * np.random.default_rng(0).standard_normal((8, 8))
    u = np.random.default_rng(2).uniform(0, 1, (50, 3, 2))
    xi = np.random.default_rng(3).standard_normal((50, 3, 8))

    class _P:  # the two fields lif_activity reads
        model = spec

    run = Run(tmp_path, {}, _P(), pd.DataFrame(), params, "completed")
    s, r = lif_activity(run, u, xi)
    assert s.sum() > 0 and set(np.unique(s)) <= {0.0, 1.0}
    o = lif_readout(run, r)
    c = consts_of(spec)
    p = to_torch(params, "cpu", torch.float64)
    src = background(c, (3, 8), noise=torch.as_tensor(xi), dtype=torch.float64)
    with torch.no_grad():
        ref = rollout(p, c, torch.as_tensor(u), src).o.numpy()
    np.testing.assert_allclose(o, ref, atol=1e-10)
