"""CKA, Procrustes, participation ratio, PCA alignment and spectra on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from bioplaus.analysis import dynamics as dyn


def ortho(n: int, seed: int) -> np.ndarray:
    """A random orthogonal matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q * np.sign(np.diag(r))


@pytest.fixture
def traj() -> np.ndarray:
    """A low-dimensional trajectory [T=100, B=4, N=20] with an uneven spectrum."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 6 * np.pi, 100)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (1, 4, 1))
    latent = np.concatenate(
        [np.sin(t + phase), 0.5 * np.cos(2 * t + phase), 0.2 * t / 20 + 0 * phase], -1
    )
    return latent @ rng.standard_normal((3, 20)) + 0.01 * rng.standard_normal((100, 4, 20))


def test_cka_self_is_one(traj):
    assert dyn.linear_cka(traj, traj) == pytest.approx(1.0, abs=1e-12)
    assert dyn.procrustes_distance(traj, traj) == pytest.approx(0.0, abs=1e-6)


def test_cka_and_procrustes_invariant_to_rotation_and_scale(traj):
    Q = ortho(20, 1)
    rotated = 3.7 * traj @ Q + 5.0  # rotation, isotropic scale and an offset
    assert dyn.linear_cka(traj, rotated) == pytest.approx(1.0, abs=1e-10)
    res = dyn.procrustes(traj, rotated)
    assert res.distance == pytest.approx(0.0, abs=1e-6)
    assert res.residual == pytest.approx(0.0, abs=1e-6)


def test_rotation_into_more_units(traj):
    """Networks of different sizes: an isometric embedding of 20 units into 30."""
    Q = ortho(30, 2)[:20]  # [20, 30], orthonormal rows
    assert dyn.linear_cka(traj, traj @ Q) == pytest.approx(1.0, abs=1e-10)
    assert dyn.procrustes_distance(traj, traj @ Q) == pytest.approx(0.0, abs=1e-6)


def test_independent_noise_near_zero():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4000, 10))
    b = rng.standard_normal((4000, 10))
    assert dyn.linear_cka(a, b) < 0.01
    # normalised independent matrices are nearly orthogonal: distance near π/2
    assert dyn.procrustes_distance(a, b) > 1.4


def test_mismatched_samples_raise(traj):
    with pytest.raises(ValueError, match="same number of samples"):
        dyn.linear_cka(traj, traj[:50])


def test_participation_ratio():
    rng = np.random.default_rng(4)
    iso = rng.standard_normal((20000, 8))
    assert dyn.participation_ratio(iso) == pytest.approx(8.0, rel=0.02)
    one = rng.standard_normal((500, 1)) @ rng.standard_normal((1, 8))
    assert dyn.participation_ratio(one) == pytest.approx(1.0, abs=1e-9)
    # eigenvalues (1, 1, 0.25, 0.25): PR = 2.5² / 2.125
    lam = np.sqrt([1, 1, 0.25, 0.25])
    x = rng.standard_normal((200000, 4)) * lam
    assert dyn.participation_ratio(x) == pytest.approx(2.5**2 / 2.125, rel=0.02)


def test_aligned_pca_recovers_rotation(traj):
    Q = ortho(20, 5)
    pa, pb, aligned = dyn.aligned_pca(traj, traj @ Q, k=3)
    assert aligned.shape == pa.scores.shape
    np.testing.assert_allclose(aligned, pa.scores, atol=1e-8)
    assert pa.explained.sum() > 0.99


def test_spectrum_uses_decorrelation():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((5, 5))
    D = np.eye(5) * 0.5
    ev = dyn.spectrum({"W_rec": W, "D_rec": D})
    np.testing.assert_allclose(np.sort_complex(ev), np.sort_complex(np.linalg.eigvals(0.5 * W)))
    assert np.all(np.diff(np.abs(ev)) <= 1e-12)
