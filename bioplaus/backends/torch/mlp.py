"""Feed-forward multi-layer network on torch: forward pass, exact gradient (BP), and the
stacked paired-pass driver of the perturbation family (DESIGN §2, algorithms.md §2).

Forward, layers l = 0 … L−1 (batch on the first axis, weights act as ``z @ W.T``)::

    ẑ_l = D_l h_{l−1}   (h_{−1} = x)        a_l = W_l ẑ_l + b_l + σ ξ_l (noisy pass)
    h_l = φ(a_l) (l < L−1),  output o = a_{L−1}
    ℓ = −Σ_k y_k log softmax(o)_k  (softmax_ce)  or  ½‖o − y‖² (linear_mse);  L = mean_b ℓ_b

The paired passes are a kind of the one driver of perturb.py (:func:`~.perturb.paired_passes`,
which owns the losses, δℓ, the rule's state and the result's assembly):
:class:`LayeredPerturbation` stacks [baseline rows | perturbed rows] in one batch. NP/ANP/WP:
K·B perturbed rows, every layer perturbed. INP: K·L·B rows, each group perturbs one layer.
The baseline is the clean pass (B rows, run once and paired with every chunk) or, with
``baseline="noisy"``, an independent noisy pass for every perturbed row with the same layer
pattern. Resamples run in chunks of rows (``max_rows``) so memory stays bounded for large K.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch

from ...loss import step_loss
from ...rules.base import check_pass_options
from ...rules.layered import GradState, LayeredContext, LayerRecord, WeightRecord
from ...spec import MLPSpec
from .pass_common import noise_sigma
from .perturb import paired_passes
from .perturbation import Chunk, Perturbation
from .tensors import param_tensor

Tensor = torch.Tensor


class MLPParams(NamedTuple):
    """Per-layer tensors; b[l] / D[l] are None when absent."""

    W: list[Tensor]
    b: list[Tensor | None]
    D: list[Tensor | None]


class MLPConsts(NamedTuple):
    phi: Callable[[Tensor], Tensor]
    sigma: float
    loss: str  # "ce" | "mse"


class MLPPass(NamedTuple):
    z: list[Tensor]  # ẑ_l [S, m_l]
    a: list[Tensor]  # a_l [S, n_l]
    out: Tensor  # o = a_{L−1}


class MLPResult(NamedTuple):
    grads: dict[str, Tensor]  # W{l}, b{l}
    loss: float  # L of the baseline pass (clean loss with a clean baseline)
    loss_perturbed: float
    decor: dict[str, tuple[Tensor, float]]  # D{l}: (Σ ẑ ẑᵀ, count) of the baseline's first B rows


def mlp_consts(spec: MLPSpec) -> MLPConsts:
    slope = spec.negative_slope
    phis: dict[str, Callable[[Tensor], Tensor]] = {
        "leaky_relu": lambda a: torch.nn.functional.leaky_relu(a, slope),
        "tanh": torch.tanh,
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "linear": lambda a: a,
    }
    return MLPConsts(phis[spec.nonlinearity], spec.sigma, spec.loss)


def mlp_to_torch(
    params: Mapping[str, np.ndarray | Tensor],
    n_layers: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> MLPParams:
    def conv(key: str) -> Tensor | None:
        return param_tensor(params, key, device, dtype)

    L = range(n_layers)
    return MLPParams(
        [conv(f"W{l}") for l in L], [conv(f"b{l}") for l in L], [conv(f"D{l}") for l in L]
    )


def mlp_to_numpy(p: MLPParams) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for l in range(len(p.W)):
        for key, v in ((f"W{l}", p.W[l]), (f"b{l}", p.b[l]), (f"D{l}", p.D[l])):
            if v is not None:
                out[key] = v.detach().cpu().double().numpy()
    return out


def forward(
    p: MLPParams,
    c: MLPConsts,
    x: Tensor,
    noise: list[Tensor | None] | None = None,
    dW: list[Tensor] | None = None,
    db: list[Tensor | None] | None = None,
) -> MLPPass:
    """One pass on x [S, n_in]; ``noise[l]`` [S, n_l] is added to a_l (already scaled by σ);
    ``dW[l]`` [S, n_l, m_l] / ``db[l]`` [S, n_l] are per-row weight perturbations."""
    h = x
    zs, as_ = [], []
    L = len(p.W)
    for l in range(L):
        z = h if p.D[l] is None else h @ p.D[l].T
        a = z @ p.W[l].T
        if p.b[l] is not None:
            a = a + p.b[l]
        if dW is not None:
            a = a + torch.bmm(dW[l], z[:, :, None])[:, :, 0]
            if db is not None and db[l] is not None:
                a = a + db[l]
        if noise is not None and noise[l] is not None:
            a = a + noise[l]
        zs.append(z)
        as_.append(a)
        h = c.phi(a) if l < L - 1 else a
    return MLPPass(zs, as_, as_[-1])


def predict(p: MLPParams, c: MLPConsts, x: Tensor) -> Tensor:
    """Clean outputs o [B, n_out]."""
    with torch.no_grad():
        return forward(p, c, x).out


def grad_keys(p: MLPParams) -> list[str]:
    keys = []
    for l in range(len(p.W)):
        keys.append(f"W{l}")
        if p.b[l] is not None:
            keys.append(f"b{l}")
    return keys


def _decor_stats(p: MLPParams, zs: list[Tensor], B: int) -> dict[str, tuple[Tensor, float]]:
    return {
        f"D{l}": (zs[l][:B].T @ zs[l][:B], float(B)) for l in range(len(p.W)) if p.D[l] is not None
    }


def mlp_gradient(
    p: MLPParams, c: MLPConsts, x: Tensor, y: Tensor, *, decor: bool = False
) -> MLPResult:
    """Exact ∂L/∂θ by autograd (BP; DBP when the D_l are present: gradients at ẑ = D h)."""
    leaves = [w.detach().clone().requires_grad_(True) for w in p.W]
    bl = [None if b is None else b.detach().clone().requires_grad_(True) for b in p.b]
    q = MLPParams(leaves, bl, p.D)
    with torch.enable_grad():
        fp = forward(q, c, x)
        L = step_loss(c.loss, fp.out, y).mean()
        flat = [t for pair in zip(leaves, bl, strict=True) for t in pair if t is not None]
        gs = torch.autograd.grad(L, flat)
    grads = dict(zip(grad_keys(p), gs, strict=True))
    with torch.no_grad():
        stats = _decor_stats(p, [z.detach() for z in fp.z], x.shape[0]) if decor else {}
    return MLPResult(grads, float(L.detach()), float("nan"), stats)


class LayeredPerturbation(Perturbation):
    """The MLP's paired passes as a kind of the one driver (:func:`~.perturb.paired_passes`,
    the module docstring's rows): no time axis (T = 1); the chunks are chunks of resamples,
    K_c·G·B perturbed rows each (``max_rows``), after, with a clean baseline, one chunk of
    the clean pass alone, which every later chunk pairs with (``Chunk.base = 0``); the rule
    gets one :class:`~bioplaus.rules.layered.LayerRecord` (node noise) or
    :class:`~bioplaus.rules.layered.WeightRecord` (``rule.perturbs == "weights"``) per
    chunk, under the layered contract (``init(shapes, like)``, ``finalize(state, K·B)``,
    a :class:`LayeredContext`); the result is an :class:`MLPResult`."""

    #: the losses are summed in float64 (as Python floats), whatever the pass's dtype
    sum_dtype = torch.float64

    def __init__(
        self,
        p: MLPParams,
        c: MLPConsts,
        rule: Any,
        sigma: float,
        K: int,
        baseline: str,
        generator: torch.Generator,
        x: Tensor,
        max_rows: int = 65536,
    ) -> None:
        self.p, self.c, self.sigma, self.generator, self.x = p, c, sigma, generator, x
        self.B, self.K, self.L = x.shape[0], K, len(p.W)
        self.dev, self.dt = x.device, x.dtype
        self.weight = getattr(rule, "perturbs", "nodes") == "weights"  # WeightRecord
        self.iterative = bool(rule.iterative)
        self.G = self.L if self.iterative else 1  # groups of perturbed passes per resample
        self.noisy = baseline == "noisy"
        per = self.G * self.B * (2 if self.noisy else 1)  # rows of one resample
        self.Kc = max(1, min(K, max_rows // max(per, 1)))  # resamples per chunk

    @property
    def pairs(self) -> int:
        """P = K·G·B."""
        return self.K * self.G * self.B

    def init_rule(self, rule: Any) -> object:
        """``rule.init([W_l shapes], like)``."""
        return rule.init([tuple(w.shape) for w in self.p.W], self.p.W[0])

    def context(self) -> LayeredContext:
        """σ and the noise-variance factor (2 with a noisy baseline, else 1)."""
        return LayeredContext(self.sigma, 2.0 if self.noisy else 1.0)

    def start(self, x0: Tensor | None) -> None:
        """No state carried between chunks but the clean pass."""

    def chunks(self) -> Iterator[Chunk]:
        """(Clean baseline: the clean pass alone, then) the resamples, K_c at a time."""
        GB = self.G * self.B
        if not self.noisy:
            yield Chunk(0, 1, 1, slice(0, 0))
        for done in range(0, self.K, self.Kc):
            k = min(self.Kc, self.K - done)
            yield Chunk(0, 1, k * self.G if self.noisy else 0, slice(done * GB, (done + k) * GB))

    def run(self, chunk: Chunk) -> Tensor:
        """The clean pass, or a chunk's draws (ΔW_l, Δb_l per row, or ξ_l per layer: INP's
        masked to its group's layer) and its stacked pass [baseline (noisy) | perturbed]."""
        p, c, sigma, g, dev, dt = self.p, self.c, self.sigma, self.generator, self.dev, self.dt
        B, P = self.B, chunk.width
        if P == 0:  # the clean pass, once
            self.clean = forward(p, c, self.x)
            return self.clean.out.view(1, 1, B, -1)
        src = torch.arange(P, device=dev) % B
        grp = (torch.arange(P, device=dev) // B) % self.G  # group (perturbed layer, INP)
        active = [(grp == l).to(dt) for l in range(self.L)] if self.iterative else None
        rows = 2 * P if self.noisy else P
        xs = self.x[src]
        if self.noisy:
            xs = xs.repeat(2, 1)
        noise = dW = db = None
        if self.weight:
            dW = [sigma * torch.randn((rows, *w.shape), generator=g, device=dev, dtype=dt)
                  for w in p.W]  # fmt: skip
            db = [None if b is None
                  else sigma * torch.randn((rows, b.shape[0]), generator=g, device=dev, dtype=dt)
                  for b in p.b]  # fmt: skip
            fp = forward(p, c, xs, dW=dW, db=db)
        else:
            noise = []
            for l, w in enumerate(p.W):
                xi = sigma * torch.randn(rows, w.shape[0], generator=g, device=dev, dtype=dt)
                if active is not None:
                    m = active[l].repeat(2) if self.noisy else active[l]
                    xi = xi * m[:, None]
                noise.append(xi)
            fp = forward(p, c, xs, noise=noise)
        self.drawn = (src, active, fp, noise, dW, db)
        return fp.out.view(1, -1, B, fp.out.shape[-1])

    def chunk_record(self, chunk: Chunk, dl: Tensor) -> LayerRecord | WeightRecord | None:
        """The chunk's P rows: z of the baseline, δa and ε (A − B; with a noisy baseline also
        pass A's own ε), or ΔW, Δb (A − B); δℓ [P]. None for the clean pass."""
        P = chunk.width
        if P == 0:
            return None
        src, active, fp, noise, dW, db = self.drawn
        dl = dl[0]
        if self.noisy:
            A, Bs = slice(P, 2 * P), slice(0, P)
            z = [zz[Bs] for zz in fp.z]
        else:
            z = [zz[src] for zz in self.clean.z]
        if self.weight:
            if self.noisy:
                ddb = [None if d is None else d[A] - d[Bs] for d in db]
                return WeightRecord(z, [d[A] - d[Bs] for d in dW], ddb, dl)
            return WeightRecord(z, dW, db, dl)
        if self.noisy:
            da = [a[A] - a[Bs] for a in fp.a]
            eps = [n[A] - n[Bs] for n in noise]
            return LayerRecord(z, da, eps, dl, active, [n[A] for n in noise])
        return LayerRecord(
            z, [a - ca[src] for a, ca in zip(fp.a, self.clean.a, strict=True)], noise, dl, active
        )

    def decor_sums(self, keys: tuple[str, ...]) -> dict[str, Tensor]:
        """Σ ẑ_l ẑ_lᵀ of the layers ``keys`` (``D{l}``), set once (:meth:`add_decor_`)."""
        self.decor_keys = keys
        return {}

    def add_decor_(self, yy: dict[str, Tensor], chunk: Chunk) -> None:
        """Σ ẑ ẑᵀ over the first B baseline rows of the first chunk with a baseline (the
        clean pass, or the first chunk's noisy baseline)."""
        if yy or not chunk.base or not self.decor_keys:
            return
        zs = self.clean.z if chunk.width == 0 else self.drawn[2].z
        B = self.B
        for l in range(self.L):
            if f"D{l}" in self.decor_keys:
                yy[f"D{l}"] = zs[l][:B].T @ zs[l][:B]

    def finalize(self, rule: Any, state: object, dS: Tensor, norm_b: float) -> GradState:
        """``rule.finalize(state, K·B)``: the rows that estimate each layer."""
        return rule.finalize(state, float(self.K * self.B))

    def loss(self, sum_lb: Tensor, norm_b: float) -> float:
        """mean ℓ of the baseline rows (clean: of the B trials, in the pass's dtype)."""
        if not self.noisy:
            return float(sum_lb.to(self.dt) / self.B)
        return float(sum_lb) / self.pairs

    def loss_perturbed(self, sum_la: Tensor, norm_b: float) -> float:
        """mean ℓ of the perturbed rows (NaN when not finite)."""
        lp = float(sum_la) / self.pairs
        return lp if math.isfinite(lp) else float("nan")

    def result(
        self,
        est: GradState,
        loss: float,
        loss_perturbed: float,
        outputs: Tensor | None,
        decor: dict[str, tuple[Tensor, float]],
    ) -> MLPResult:
        """W{l}, b{l} of the estimate."""
        grads: dict[str, Tensor] = {}
        for l in range(self.L):
            grads[f"W{l}"] = est.W[l]
            if self.p.b[l] is not None:
                grads[f"b{l}"] = est.b[l]
        return MLPResult(grads, loss, loss_perturbed, decor)


def mlp_perturbation_estimate(
    p: MLPParams,
    c: MLPConsts,
    rule,
    x: Tensor,
    y: Tensor,
    generator: torch.Generator,
    *,
    sigma: float | None = None,
    K: int = 1,
    baseline: str = "clean",
    decor: bool = False,
    max_rows: int = 65536,
) -> MLPResult:
    """A perturbation rule's estimate of ∂L at the current weights (module docstring): the
    one driver (:func:`~.perturb.paired_passes`) on a :class:`LayeredPerturbation`;
    ``decor``: Σ ẑ_l ẑ_lᵀ of every layer with a D_l."""
    sigma = noise_sigma(sigma, c.sigma)
    check_pass_options(sigma, baseline, K)
    pert = LayeredPerturbation(p, c, rule, sigma, K, baseline, generator, x, max_rows)
    keys = tuple(f"D{l}" for l, d in enumerate(p.D) if d is not None) if decor else ()
    return paired_passes(pert, rule, y[None], None, c.loss, decor=keys)
