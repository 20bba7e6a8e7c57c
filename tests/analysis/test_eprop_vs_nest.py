"""analysis/eprop_vs_nest.py: the numpy re-implementation of NEST's e-prop
(eprop_*_bsshslm_2020) against NEST itself (skipped where NEST is not installed, as in
CI) and against finite differences (always)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "analysis" / "eprop_vs_nest.py"


def load():
    spec = importlib.util.spec_from_file_location("eprop_vs_nest", PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("eprop_vs_nest", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_reference_readout_gradient_is_the_exact_gradient():
    """NEST's readout update Σ_k err_k z̄_k is the exact ∂E/∂W_out of E = ½ Σ_k err_k²
    (the spikes do not depend on W_out): central differences on the reference."""
    m = load()
    s = m.Setup(T=60)
    data = m.make_data(s)
    ref = m.reference(s, data)
    assert ref["z"].sum() > 0

    def energy(W_out):
        r = m.reference(s, {**data, "W_out": W_out})
        return 0.5 * float((r["err"] ** 2).sum())

    fd = np.zeros_like(data["W_out"])
    h = 1e-6
    for idx in np.ndindex(fd.shape):
        Wp, Wm = data["W_out"].copy(), data["W_out"].copy()
        Wp[idx] += h
        Wm[idx] -= h
        fd[idx] = (energy(Wp) - energy(Wm)) / (2 * h)
    np.testing.assert_allclose(-ref["dW_out"], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("c_reg,average", [(0.0, False), (3.0, True)])
def test_reference_matches_nest(c_reg, average):
    """Same spike trains and the same ΔW_in, ΔW_rec, ΔW_out as NEST to float precision."""
    pytest.importorskip("nest")
    m = load()
    s = m.Setup(c_reg=c_reg, average_gradient=average)
    data = m.make_data(s)
    got = m.run_nest(s, data)
    ref = m.reference(s, data)
    assert np.array_equal(m.spike_matrix(got, s), ref["z"])
    assert ref["z"].sum(0).min() > 0  # every recurrent neuron fires: W_rec, W_out exercised
    for key in m.MATRICES:
        assert np.abs(got[key]).max() > 0
        assert m.similarity(ref[key], got[key], key)["rel"] < 1e-10, key
    if c_reg:
        plain = m.reference(replace(s, c_reg=0.0), data)
        assert m.similarity(plain["dW_in"], ref["dW_in"])["rel"] > 1e-3  # the term is there


def test_bioplaus_forward_matches_reference_with_its_conventions():
    """bioplaus's LIF (bp.simulate, float64), re-parametrised as in bioplaus_problem, is the
    reference with a hard reset and τ_s = dt: same spikes, same ṽ (the reset spikes zeroed)."""
    pytest.importorskip("torch")
    m = load()
    s = m.Setup()
    data = m.make_data(s)
    got = m.run_bioplaus(s, data, rule="")
    ref = m.reference(s, data, reset="hard", beta_s=m.bioplaus_problem(s, data)["beta_s"])
    assert ref["z"].sum() > 0
    assert np.array_equal(got["z"], ref["z"])
    np.testing.assert_allclose(got["v"], ref["v"] * (1 - ref["z"]), rtol=0, atol=1e-12)
    nest_like = m.reference(s, data)
    assert not np.array_equal(nest_like["z"], ref["z"])  # the reset is a real difference


@pytest.mark.parametrize("c_reg", [0.0, 3.0])
def test_bioplaus_eprop_matches_reference_with_its_conventions(c_reg):
    """bp.estimate("e-prop") on LIF = the reference with a hard reset, τ_s = dt and the
    trace cut at the reset, in NEST's parametrisation (off-diagonal W_rec), to float64
    precision; the regulariser mapped as c_reg' = c_reg dt²/T."""
    pytest.importorskip("torch")
    m = load()
    if not m.has_bioplaus_eprop():
        pytest.skip("bioplaus has no 'e-prop' rule here")
    s = m.Setup(c_reg=c_reg)
    data = m.make_data(s)
    got = m.run_bioplaus(s, data)
    bs = m.bioplaus_problem(s, data)["beta_s"]
    ref = m.reference(s, data, reset="hard", beta_s=bs, cut=True)
    no_cut = m.reference(s, data, reset="hard", beta_s=bs)
    for key in m.MATRICES:
        assert np.abs(m.entries(key, ref[key])).max() > 0
        assert m.similarity(got[key], ref[key], key)["rel"] < 1e-12, key
    assert m.similarity(no_cut["dW_in"], ref["dW_in"])["rel"] > 1e-2  # the cut matters
