"""bp.analysis.alignment: angles between a rule's estimate and the exact gradient."""

from __future__ import annotations

import numpy as np
import pytest

import bioplaus as bp
from bioplaus.analysis.alignment import angle, angles, layer_groups


def test_angle_basics():
    a = np.array([1.0, 0.0])
    assert angle(a, a) == pytest.approx(0.0)
    assert angle(a, np.array([0.0, 2.0])) == pytest.approx(90.0)
    assert angle(a, -a) == pytest.approx(180.0)
    assert np.isnan(angle(a, np.zeros(2)))


def test_layer_groups_for_mlp_and_rnn():
    assert layer_groups(["W0", "b0", "W1"]) == {"layer0": ["W0", "b0"], "layer1": ["W1"]}
    g = layer_groups(["W_in", "W_rec", "W_out", "b"])
    assert g == {"hidden": ["W_in", "W_rec", "b"], "readout": ["W_out"]}


def test_angles_flatten_all_parameters():
    g = {"W0": np.array([[1.0, 0.0]]), "W1": np.array([0.0, 1.0])}
    e = {"W0": np.array([[1.0, 0.0]]), "W1": np.array([0.0, -1.0])}
    out = angles(e, g)
    assert out["layer0"] == pytest.approx(0.0) and out["layer1"] == pytest.approx(180.0)
    assert out["all"] == pytest.approx(90.0)


def test_alignment_of_bp_is_zero_and_of_np_is_between():
    spec = bp.MLPSpec(sizes=[5, 8, 3], output="linear_mse")
    p = bp.init_params(spec, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 5)), rng.standard_normal((10, 3))
    assert bp.analysis.alignment("bp", spec, p, x, y, dtype="float64")["all"] == pytest.approx(
        0.0, abs=1e-5
    )
    a = bp.analysis.alignment("np", spec, p, x, y, seed=1, K=50, dtype="float64")
    assert set(a) >= {"W0", "b0", "W1", "b1", "layer0", "layer1", "all"}
    assert 0 < a["all"] < 90


def test_alignment_on_the_rate_rnn():
    spec = bp.RateSpec(n_in=2, n_rec=6, n_out=2, tau=1.0, dt=1.0)
    p = bp.init_params(spec, seed=0)
    rng = np.random.default_rng(0)
    u, y = rng.standard_normal((5, 4, 2)), rng.standard_normal((5, 4, 2))
    a = bp.analysis.alignment("anp", spec, p, u, y, seed=0, K=20, dtype="float64")
    assert {"hidden", "readout", "all"} <= set(a) and 0 < a["all"] < 90
