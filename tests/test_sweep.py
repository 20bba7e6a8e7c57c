"""Sweeps: expansion and validation, failing points, re-runs, local processes vs Dask."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bioplaus.cli import main
from bioplaus.spec import SpecError
from bioplaus.sweep import load_sweep, point_name, run_sweep, toml_literal
from bioplaus.sweep_workers import death_reason, point_lock

PROTOCOL = """
name = "sweep_tiny"
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
steps = 4
eval_every = 2
batch_size = 4
eval_batch = 4
lr = 1e-2
"""

SWEEP = """
name = "tiny"
protocol = "base.toml"
threads = 1
[fixed]
"train.steps" = 4
[grid]
"model.sigma" = {{ logspace = [-3, -2, 2] }}
seed = [0]
{extra}
"""

# deterministic outcome columns (timings differ between runs)
KEEP = [
    "point",
    "variant",
    "rule",
    "model.sigma",
    "seed",
    "status",
    "steps",
    "loss",
    "eval_loss",
    "metric",
    "best_metric",
]


def make_sweep(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "base.toml").write_text(PROTOCOL)
    f = tmp_path / "sweep.toml"
    f.write_text(SWEEP.format(extra=extra))
    return f


def test_expansion_names_and_literals(tmp_path):
    f = make_sweep(
        tmp_path,
        '[variants.anp]\n"rule.name" = "anp"\n[variants.bptt]\n"rule.name" = "bptt"\n'
        '"model.sigma" = 0.0\n',
    )
    sw = load_sweep(f)
    names = [p.name for p in sw.points]
    # the BPTT variant pins σ, so its two grid points collapse into one
    assert names == [
        "anp_model.sigma=0.001_seed=0",
        "anp_model.sigma=0.01_seed=0",
        "bptt_model.sigma=0_seed=0",
    ]
    assert 'rule.name="bptt"' in sw.points[-1].overrides
    assert sw.points[0].overrides[0] == "train.steps=4"
    assert sw.plot_x == "model.sigma"
    assert toml_literal(1e-5) == "1e-05" and toml_literal(True) == "true"
    assert len(point_name("x", {"k": "v" * 300})) <= 120


def test_random_samples_are_seeded(tmp_path):
    extra = '[random]\nsamples = 3\nseed = 4\n"train.lr" = { loguniform = [1e-4, 1e-2] }\n'
    a, b = load_sweep(make_sweep(tmp_path, extra)), load_sweep(make_sweep(tmp_path, extra))
    assert len(a.points) == 6  # 2 grid × 3 samples
    assert [p.values for p in a.points] == [p.values for p in b.points]
    assert all(1e-4 <= p.values["train.lr"] <= 1e-2 for p in a.points)


@pytest.mark.parametrize(
    "extra,needle",
    [
        ('[variants.bad]\n"train.lrr" = 1.0\n', "point bad_"),
        ('[variants.bad]\n"rule.K" = 0\n', "rule.K"),
        ("[plott]\nx = 1\n", "plott: unknown key"),
    ],
)
def test_bad_sweep_is_one_line_nothing_written(tmp_path, extra, needle):
    f = make_sweep(tmp_path, extra)
    out = tmp_path / "out"
    with pytest.raises(SpecError) as err:
        run_sweep(f, out, progress=False)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()


def test_bad_sweep_cli_exit_2(tmp_path, capsys):
    f = make_sweep(tmp_path, '[variants.bad]\n"train.lrr" = 1.0\n')
    out = tmp_path / "out"
    assert main(["sweep", str(f), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "train.lrr" in lines[0] and str(f) in lines[0] and "point bad_" in lines[0]
    assert not out.exists()


def test_failing_point_is_recorded_and_rerun_skips_finished(tmp_path, capsys):
    # one variant diverges at the first update (its weights exceed max_abs_weight)
    f = make_sweep(tmp_path, '[variants.ok]\n[variants.boom]\n"train.max_abs_weight" = 1e-6\n')
    out = tmp_path / "out"
    df = run_sweep(f, out, workers=1, progress=False)
    assert len(df) == 4
    st = dict(zip(df["point"], df["status"], strict=True))
    assert st == {
        "ok_model.sigma=0.001_seed=0": "completed",
        "ok_model.sigma=0.01_seed=0": "completed",
        "boom_model.sigma=0.001_seed=0": "diverged",
        "boom_model.sigma=0.01_seed=0": "diverged",
    }
    assert df.loc[df["status"] == "diverged", "error"].str.contains("max_abs_weight").all()
    assert (df.loc[df["status"] == "completed", "steps"] == 4).all()
    table = pd.read_csv(out / "results.csv")
    assert list(table["point"]) == list(df["point"])
    assert (out / "sweep.png").is_file()
    for p in df["point"]:
        assert (out / "points" / p / "config.json").is_file()  # each a normal run directory

    # re-run: every point is finished (completed or diverged) → nothing runs again
    stamp = {p: (out / "points" / p / "metrics.csv").stat().st_mtime_ns for p in df["point"]}
    again = run_sweep(f, out, workers=1, progress=False)
    pd.testing.assert_frame_equal(again[KEEP], df[KEEP])
    assert stamp == {
        p: (out / "points" / p / "metrics.csv").stat().st_mtime_ns for p in df["point"]
    }

    # a point that raises (a corrupt checkpoint of an interrupted run) is marked failed,
    # the others are still skipped, and the CLI says so with exit status 3
    bad = out / "points" / "ok_model.sigma=0.01_seed=0"
    (bad / "status.json").write_text(json.dumps({"status": "interrupted", "step": 2}))
    (bad / "checkpoint.pt").write_bytes(b"not a checkpoint")
    # (in a worker process: the local process pool records the failure too)
    assert main(["sweep", str(f), "--out", str(out), "--quiet", "--workers", "2"]) == 3
    assert "failed: ok_model.sigma=0.01_seed=0" in capsys.readouterr().err
    third = pd.read_csv(out / "results.csv")
    row = third.set_index("point").loc["ok_model.sigma=0.01_seed=0"]
    assert row["status"] == "failed" and "Error" in row["error"]
    assert (bad / "error.txt").is_file()
    assert (third["status"] == "completed").sum() == 1
    assert (
        stamp["ok_model.sigma=0.001_seed=0"]
        == (out / "points" / "ok_model.sigma=0.001_seed=0" / "metrics.csv").stat().st_mtime_ns
    )


def test_dask_local_cluster_gives_the_same_table(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    f = make_sweep(tmp_path, '[variants.anp]\n[variants.np]\n"rule.name" = "np"\n')
    local = run_sweep(f, tmp_path / "local", workers=1, progress=False)  # in this process
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        dask = run_sweep(f, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False)
    assert (local["status"] == "completed").all()
    pd.testing.assert_frame_equal(local[KEEP], dask[KEEP])
    # and the per-point metrics files are identical row for row
    for p in local["point"]:
        a = pd.read_csv(tmp_path / "local" / "points" / p / "metrics.csv")
        b = pd.read_csv(tmp_path / "dask" / "points" / p / "metrics.csv")
        pd.testing.assert_frame_equal(a.drop(columns="wall_time"), b.drop(columns="wall_time"))


@pytest.mark.parametrize("bad", ["-1", "1.5", "true", '"2"'])
def test_bad_retries_is_one_line(tmp_path, bad):
    f = make_sweep(tmp_path)
    f.write_text(f.read_text().replace("threads = 1\n", f"threads = 1\nretries = {bad}\n"))
    with pytest.raises(SpecError, match="retries: expected an integer >= 0"):
        load_sweep(f)
    f.write_text(f.read_text().replace(f"retries = {bad}", "retries = 0"))
    assert load_sweep(f).retries == 0


def test_point_lock_is_exclusive_and_names_its_holder(tmp_path, capsys):
    """Two processes never run one point at once: a second holder waits for the first."""
    import os
    import threading
    import time

    run_dir = tmp_path / "points" / "p"
    order: list[str] = []
    with point_lock(run_dir):
        assert (run_dir / ".lock").read_text().split()[0] == str(os.getpid())

        def second() -> None:
            with point_lock(run_dir):
                order.append("second")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        order.append("first")  # the second holder is still waiting
    t.join(timeout=10)
    assert order == ["first", "second"]
    assert f"another process (pid host: {os.getpid()} " in capsys.readouterr().err


def test_death_reason_names_the_signal():
    assert death_reason(-9) == "signal 9 SIGKILL"
    assert death_reason(-15) == "signal 15 SIGTERM"
    assert death_reason(1) == "exit status 1"
