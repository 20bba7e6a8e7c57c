"""Results anywhere (bioplaus/export.py): tidy CSV/Parquet tables, labelled xarray datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bioplaus as bp
from bioplaus import export

xr = pytest.importorskip("xarray", reason="xarray not installed (pip install 'bioplaus[export]')")

PROTOCOL = """
name = "export_tiny"
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
name = "{rule}"
[train]
steps = 4
eval_every = 2
batch_size = 4
eval_batch = 4
lr = 1e-2
threads = 1
"""


def _run(tmp_path: Path, name: str, rule: str = "anp") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(PROTOCOL.format(rule=rule))
    bp.run(p, out=tmp_path / name, progress=False)
    return tmp_path / name


def test_run_writes_tidy_metrics_csv_and_parquet(tmp_path):
    d = _run(tmp_path, "a")
    wide = pd.read_csv(d / "metrics.csv")
    long = pd.read_csv(d / "metrics_long.csv")
    assert list(long.columns) == ["step", "wall_time", "split", "quantity", "value"]
    # one row per (step, split, quantity); every non-missing cell of metrics.csv is there
    assert not long.duplicated(["step", "split", "quantity"]).any()
    assert len(long) == int(wide.drop(columns=["step", "wall_time"]).notna().sum().sum())
    ev = long[(long.split == "eval") & (long.quantity == "loss")].set_index("step")["value"]
    np.testing.assert_allclose(ev.to_numpy(), wide.set_index("step")["eval_loss"].to_numpy())
    if export.has_parquet():
        pd.testing.assert_frame_equal(pd.read_parquet(d / "metrics.parquet"), wide)
        pd.testing.assert_frame_equal(pd.read_parquet(d / "metrics_long.parquet"), long)


def test_sweep_writes_csv_parquet_and_long_curves(tmp_path):
    from bioplaus.sweep import run_sweep

    (tmp_path / "base.toml").write_text(PROTOCOL.format(rule="anp"))
    f = tmp_path / "sweep.toml"
    f.write_text('protocol = "base.toml"\n[grid]\n"model.sigma" = [0.001, 0.01]\nseed = [0]\n')
    df = run_sweep(f, tmp_path / "out", progress=False, plot=False)
    out = tmp_path / "out"
    csv = pd.read_csv(out / "results.csv")
    assert list(csv["point"]) == list(df["point"])
    long = pd.read_csv(out / "metrics_long.csv")
    assert set(long["point"]) == set(df["point"])
    assert {"model.sigma", "seed", "status", "step", "split", "quantity", "value"} <= set(long)
    # each point's curve is its own metrics.csv
    p0 = df["point"][0]
    mine = (
        long[long.point == p0]
        .drop(columns=["point", "variant", "rule", "model.sigma", "seed", "status"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(mine, export.metrics_long(out / "points" / p0))
    if export.has_parquet():
        pq = pd.read_parquet(out / "results.parquet")
        pd.testing.assert_frame_equal(
            pq[["point", "status", "metric"]], csv[["point", "status", "metric"]]
        )
        assert len(pd.read_parquet(out / "metrics_long.parquet")) == len(long)


def test_to_xarray_states_of_simulate(tmp_path):
    spec = bp.RateSpec(n_in=2, n_rec=5, n_out=1, tau=0.02, dt=0.005, sigma=0.0)
    params = bp.init_params(spec, seed=0)
    u = np.random.default_rng(0).standard_normal((7, 3, 2))
    x = bp.simulate(spec, u, params=params, seed=0)
    ds = bp.to_xarray(x, spec, inputs=u)
    assert ds["x"].dims == ("time", "batch", "unit") and ds["x"].shape == (7, 3, 5)
    np.testing.assert_allclose(ds["time"].to_numpy(), np.arange(7) * 0.005)
    assert ds["time"].attrs["units"] == "s" and ds.attrs["tau"] == 0.02
    np.testing.assert_array_equal(ds["x"].sel(batch=1, unit=4).to_numpy(), x[:, 1, 4])
    assert ds["inputs"].dims == ("time", "batch", "input")
    # written and read back with xarray alone
    path = export.save_dataset(ds, tmp_path / "states.nc")
    back = xr.open_dataset(path)
    np.testing.assert_allclose(back["x"].to_numpy(), x)
    back.close()
    with pytest.raises(ValueError, match="states must be"):
        bp.to_xarray(x[0], spec)
    with pytest.raises(ValueError, match="inputs must be"):
        bp.to_xarray(x, spec, inputs=u[:3])


def test_lif_states_are_v():
    spec = bp.LIFSpec(n_in=2, n_rec=4, n_out=1)
    ds = bp.to_xarray(np.zeros((3, 2, 4)), spec, dt=1e-3)
    assert "v" in ds and ds["v"].attrs["long_name"] == "membrane potential"


def test_compare_dataset_matches_the_report(tmp_path):
    from bioplaus.analysis.compare import clean_states, load_run, readout
    from bioplaus.random import numpy_rng

    a, b = _run(tmp_path, "a", "anp"), _run(tmp_path, "b", "bptt")
    ds = export.compare_dataset(a, b, n_trials=6, seed=1)
    assert ds["x_A"].dims == ("time", "batch", "unit") and ds.sizes["batch"] == 6
    for v in ("x_B", "x_A_init", "x_B_init", "outputs_A", "outputs_B", "targets", "mask"):
        assert v in ds, v
    ra = load_run(a)
    batch = ra.task.sample(6, numpy_rng(1, "compare", "trials"), split="test")
    xa = clean_states(ra, batch.inputs)
    np.testing.assert_allclose(ds["x_A"].to_numpy(), xa)
    np.testing.assert_allclose(ds["outputs_A"].to_numpy(), readout(ra, xa))
    np.testing.assert_allclose(ds["inputs"].to_numpy(), batch.inputs)
    assert ds.attrs["run_B"] == str(b)
