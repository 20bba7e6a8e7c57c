"""``compare`` on two spiking (LIF) runs: spike rasters, rates, similarity of the filtered
spike trains; the raster helpers; refusing to compare a LIF run with a rate run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bioplaus as bp
from bioplaus.analysis.compare import compare_runs
from bioplaus.analysis.plots import plot_rasters, raster, subplots
from bioplaus.spec import SpecError

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "train.steps=4",
    "train.eval_every=2",
    "train.eval_batch=4",
    "train.batch_size=4",
    "model.n_rec=10",
    "task.pattern=0.1",
]


@pytest.fixture(scope="module")
def lif_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lif_cmp")
    out = {}
    for rule in ("danp", "bptt"):
        out[rule] = tmp / rule
        bp.run(ROOT / "protocols" / "lif" / f"pattern_{rule}.toml", out=out[rule],
               overrides=SMALL, progress=False)  # fmt: skip
    return tmp, out


def test_compare_two_lif_runs_draws_rasters(lif_runs):
    tmp, runs = lif_runs
    res = compare_runs(runs["danp"], runs["bptt"], tmp / "cmp", n_trials=4)
    assert res["kind"] == "lif"
    assert set(res["figures"]) == {"learning_curves", "outputs", "rasters", "spectra"}
    for f in res["figures"].values():
        assert (tmp / "cmp" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("A", "B"):
        fin = res["final"][name]
        assert 0 < fin["rate_hz_final"] < 500 and 0 <= fin["silent_fraction"] <= 1
        assert np.isfinite(fin["r2"])
    assert 0 <= res["similarity"]["cka_final"] <= 1 + 1e-9
    # identical initial networks (same seed, same size) on the same noise: CKA 1
    assert res["similarity"]["cka_init"] == pytest.approx(1.0)
    md = (tmp / "cmp" / "report.md").read_text()
    assert "rasters.png" in md and "anp + decorrelation" in md and "firing rate" in md
    assert json.loads((tmp / "cmp" / "compare.json").read_text())["kind"] == "lif"


def test_compare_refuses_a_lif_and_a_rate_run(lif_runs, tmp_path):
    tmp, runs = lif_runs
    rate = tmp_path / "rate"
    bp.run(
        ROOT / "protocols" / "demo_bptt.toml",
        out=rate,
        overrides=["train.steps=2", "train.eval_every=1", "model.n_rec=8", "task.length=30"],
        progress=False,
    )
    with pytest.raises(SpecError, match="a spiking \\(LIF\\) and a rate run"):
        compare_runs(runs["danp"], rate, tmp_path / "c")
    with pytest.raises(SpecError, match="--alignment"):
        compare_runs(runs["danp"], runs["bptt"], tmp_path / "c2", alignment=True)
    assert not (tmp_path / "c").exists() and not (tmp_path / "c2").exists()


def test_raster_helpers(tmp_path):
    s = np.zeros((20, 2, 5))
    s[3, 0, 1] = s[7, 0, 4] = s[9, 1, 2] = 1.0
    fig, ax = subplots(figsize=(3, 2))
    raster(ax, s, dt=0.001)
    (pts,) = ax.collections
    np.testing.assert_allclose(pts.get_offsets(), [[0.003, 1], [0.007, 4]])
    assert ax.get_xlabel() == "time (s)"
    raster(ax, s[:, 1], trial=0)  # [T, N] also, in steps
    with pytest.raises(ValueError, match="spikes: expected shape"):
        raster(ax, s[0, 0])
    p = plot_rasters([s, s], tmp_path / "r.png", labels=["a", "b"], dt=0.001)
    assert p.read_bytes()[:4] == b"\x89PNG"
