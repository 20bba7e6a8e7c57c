"""Similarity and dimensionality of hidden dynamics (numpy only).

Trajectories are arrays [T, B, N] (as ``bp.simulate`` returns) or matrices [P, N] of P
samples (time steps × trials) by N units; two networks are compared on the *same* inputs,
so sample p of one matches sample p of the other, while their units need not correspond
(N_A ≠ N_B is allowed).

Linear CKA (Kornblith et al. 2019), with column-centred X [P, N_A], Y [P, N_B]::

    CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)   ∈ [0, 1]

invariant to rotations and isotropic scaling of either; 1 for X vs XQ (Q orthogonal).

Procrustes distance (Williams et al. 2021, the angular shape metric): centre, scale each
to unit Frobenius norm, zero-pad to a common width, then

    d(X, Y) = arccos( max_Q tr(Qᵀ XᵀY) ) = arccos( ‖XᵀY‖_* ) ∈ [0, π/2]

(‖·‖_* the nuclear norm: the best orthogonal alignment Q = U Vᵀ from XᵀY = U S Vᵀ).
Also returned: the residual ‖X − YQ‖_F ∈ [0, √2] of the aligned, normalised pair.

Participation ratio of the covariance eigenvalues λ_i (effective dimensionality)::

    PR = (Σ λ_i)² / Σ λ_i²   ∈ [1, N]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def as_samples(x: np.ndarray) -> np.ndarray:
    """[T, B, N] or [P, N] → float64 [P, N] (time and trials flattened together)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3:
        a = a.reshape(-1, a.shape[-1])
    if a.ndim != 2:
        raise ValueError(f"trajectory must be [T, B, N] or [P, N] (got shape {a.shape})")
    return a


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X, Y = as_samples(x), as_samples(y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"trajectories must have the same number of samples (got {X.shape[0]} and "
            f"{Y.shape[0]}): simulate both networks on the same inputs"
        )
    return X - X.mean(0), Y - Y.mean(0)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) of centred trajectories (1: same up to
    rotation and scale; ≈ 0 for independent noise with P ≫ N)."""
    X, Y = _pair(x, y)
    # feature-space form: cheap when N ≪ P
    num = np.linalg.norm(Y.T @ X, "fro") ** 2
    den = np.linalg.norm(X.T @ X, "fro") * np.linalg.norm(Y.T @ Y, "fro")
    return float(num / den) if den > 0 else float("nan")


class ProcrustesResult(NamedTuple):
    distance: float  # angular distance arccos(‖XᵀY‖_*) in radians, 0 … π/2
    residual: float  # ‖X − Y Q‖_F of the normalised pair, 0 … √2
    Q: np.ndarray  # [N, N] orthogonal map applied to (padded) Y
    scale_x: float  # Frobenius norms used to normalise the centred X, Y
    scale_y: float


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    return a if a.shape[1] == n else np.pad(a, ((0, 0), (0, n - a.shape[1])))


def procrustes(x: np.ndarray, y: np.ndarray) -> ProcrustesResult:
    """Orthogonal Procrustes alignment of Y onto X after centring and unit-norm scaling.

    Q = argmin_Q ‖X − Y Q‖_F over orthogonal Q, = U Vᵀ where YᵀX = U S Vᵀ.
    """
    X, Y = _pair(x, y)
    n = max(X.shape[1], Y.shape[1])
    X, Y = _pad(X, n), _pad(Y, n)
    sx, sy = np.linalg.norm(X), np.linalg.norm(Y)
    if sx == 0 or sy == 0:
        raise ValueError("a trajectory is constant: Procrustes distance undefined")
    X, Y = X / sx, Y / sy
    U, S, Vt = np.linalg.svd(Y.T @ X)
    Q = U @ Vt
    nuc = float(np.clip(S.sum(), -1.0, 1.0))
    return ProcrustesResult(
        distance=float(np.arccos(nuc)),
        residual=float(np.linalg.norm(X - Y @ Q)),
        Q=Q,
        scale_x=float(sx),
        scale_y=float(sy),
    )


def procrustes_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Angular Procrustes distance arccos(‖X̃ᵀỸ‖_*) between normalised, centred
    trajectories: 0 when one is a rotation (and scaling) of the other."""
    return procrustes(x, y).distance


def covariance_spectrum(x: np.ndarray) -> np.ndarray:
    """Eigenvalues of the unit covariance of a trajectory, descending."""
    X = as_samples(x)
    X = X - X.mean(0)
    s = np.linalg.svd(X, compute_uv=False)
    return s**2 / max(X.shape[0] - 1, 1)


def participation_ratio(x: np.ndarray) -> float:
    """PR = (Σλ)² / Σλ² of the covariance eigenvalues λ (1 … N)."""
    lam = covariance_spectrum(x)
    den = float((lam**2).sum())
    return float(lam.sum() ** 2 / den) if den > 0 else float("nan")


class PCA(NamedTuple):
    mean: np.ndarray  # [N]
    components: np.ndarray  # [k, N], rows orthonormal
    explained: np.ndarray  # [k] fraction of variance per component
    scores: np.ndarray  # [T, B, k] (or [P, k]) projections


def pca(x: np.ndarray, k: int = 3) -> PCA:
    """Principal components of a trajectory; scores keep the input's [T, B] layout."""
    a = np.asarray(x, dtype=np.float64)
    X = as_samples(a)
    mu = X.mean(0)
    Xc = X - mu
    _, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    k = min(k, Vt.shape[0])
    var = S**2
    comps = Vt[:k]
    scores = Xc @ comps.T
    if a.ndim == 3:
        scores = scores.reshape(a.shape[0], a.shape[1], k)
    return PCA(mu, comps, var[:k] / var.sum() if var.sum() > 0 else var[:k], scores)


def aligned_pca(x: np.ndarray, y: np.ndarray, k: int = 3) -> tuple[PCA, PCA, np.ndarray]:
    """Each trajectory in its own top-k PCs, then Y's scores rotated onto X's by
    orthogonal Procrustes (no scaling), so both can be drawn in one set of axes.
    Returns (pca_x, pca_y, y_scores_aligned) with the aligned scores shaped like pca_y's."""
    px, py = pca(x, k), pca(y, k)
    sx, sy = as_samples(px.scores), as_samples(py.scores)
    kk = min(sx.shape[1], sy.shape[1])
    sx, sy = sx[:, :kk], sy[:, :kk]
    U, _, Vt = np.linalg.svd(sy.T @ sx)
    aligned = sy @ (U @ Vt)
    return px, py, aligned.reshape(*np.shape(py.scores)[:-1], kk)


def effective_w_rec(params: dict[str, np.ndarray]) -> np.ndarray:
    """The recurrent matrix acting on φ(x): W_rec D_rec (W_rec without decorrelation)."""
    W = np.asarray(params["W_rec"], dtype=np.float64)
    D = params.get("D_rec")
    return W @ np.asarray(D, dtype=np.float64) if D is not None else W


def spectrum(params: dict[str, np.ndarray]) -> np.ndarray:
    """Eigenvalues of W_rec D_rec (complex, sorted by decreasing modulus). At x = 0 with
    φ'(0) = 1 (tanh) the continuous-time linearisation τ dx/dt = (W − I) x is stable iff
    every Re λ < 1."""
    ev = np.linalg.eigvals(effective_w_rec(params))
    return ev[np.argsort(-np.abs(ev))]
