"""The node- and weight-perturbation family on layered (feed-forward) networks (DESIGN §2;
the multi-layer seed paper, algorithms.md §2).

A back-end runs a baseline pass B (clean, or noisy: the "noisy baseline") and perturbed
passes A stacked in one batch, and hands the rule one :class:`LayerRecord` of P paired rows
(P = K·B, times L for INP). For a layer a_l = W_l ẑ_l + b_l with presynaptic ẑ_l of pass B,
the postsynaptic signal e_l (per row) is

    NP :  e_l = ε_l / (v σ²)                            ε_l = noise injected at layer l, A − B
          (or ε_l,A / σ² with ``own_noise``: a noisy baseline whose noise NP cannot see)
    ANP:  e_l = c δa_l / Σ_k ‖δa_k‖²   ("joint", the authors' code; c = Σ_k n_k)
          e_l = n_l δa_l / ‖δa_l‖²     ("layer")        δa_l = a_l,A − a_l,B (pre-activations)
    INP:  e_l = n_l δa_l / ‖δa_l‖² on the rows whose pass perturbed layer l only (zero else)

(v = 1 with a clean baseline, 2 with a noisy one; c may be √(Σ n_k) or a given number), and

    ∂L/∂W_l ≈ (1/(K·B)) Σ_rows δℓ · e_l ẑ_lᵀ ,   ∂L/∂b_l ≈ (1/(K·B)) Σ_rows δℓ · e_l

with δℓ = ℓ_A − ℓ_B per sample. Weight perturbation perturbs the weights instead:

    WP :  ∂L/∂θ ≈ (1/(K·B)) Σ_rows δℓ · Δθ / (v σ²),   Δθ ~ N(0, σ²) per row, every layer

For small σ, E[e_l] δℓ = ∂ℓ/∂a_l (NP, INP exactly; ANP up to the correlation of δa across
units), so these estimate the gradient of L = mean ℓ in autograd's sign and scale.
The (init, accumulate, finalize) triple lets a driver feed resamples in chunks.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from .base import anp_scale

Tensor = torch.Tensor
_TINY = 1e-30
Kind = Literal["np", "anp", "inp"]


class LayerRecord(NamedTuple):
    """P paired rows of a layered network."""

    z: list[Tensor]  # [P, m_l] presynaptic ẑ_l of the baseline pass
    da: list[Tensor]  # [P, n_l] δa_l = a_l,A − a_l,B
    eps: list[Tensor]  # [P, n_l] injected node noise at layer l, A − B
    dl: Tensor  # [P] δℓ = ℓ_A − ℓ_B
    active: list[Tensor] | None = None  # [P] 1 where layer l was perturbed (INP), else all
    eps_own: list[Tensor] | None = None  # [P, n_l] the perturbed pass's own noise (pass A)


class WeightRecord(NamedTuple):
    """P paired rows of a weight-perturbed layered network."""

    z: list[Tensor]  # unused by WP, kept for symmetry
    dw: list[Tensor]  # [P, n_l, m_l] ΔW_l, A − B
    db: list[Tensor | None]  # [P, n_l] Δb_l, A − B (None without biases)
    dl: Tensor  # [P]


class LayeredContext(NamedTuple):
    sigma: float
    var_factor: float  # 1 (clean baseline) or 2 (noisy baseline)


class GradState(NamedTuple):
    W: list[Tensor]
    b: list[Tensor]


class LayeredNodePerturbation:
    """NP, ANP or INP on a layered network (see module docstring for the equations)."""

    def __init__(
        self,
        kind: Kind = "anp",
        scale: str | float = "n",
        norm: str = "joint",
        own_noise: bool = False,
    ):
        if kind not in ("np", "anp", "inp"):
            raise ValueError(f"kind: must be 'np', 'anp' or 'inp' (got {kind!r})")
        if norm not in ("joint", "layer"):
            raise ValueError(f"norm: must be 'joint' or 'layer' (got {norm!r})")
        self.kind, self.scale, self.norm = kind, scale, norm
        #: NP with a noisy baseline that knows only pass A's noise: e = ε_A/σ² (v = 1)
        self.own_noise = own_noise
        self.name = kind
        #: INP needs one perturbed pass per layer, the others one pass in all layers
        self.iterative = kind == "inp"

    def signals(self, rec: LayerRecord, ctx: LayeredContext) -> list[Tensor]:
        """e_l [P, n_l] for every layer."""
        if self.kind == "np":
            if self.own_noise and rec.eps_own is not None:
                return [e / ctx.sigma**2 for e in rec.eps_own]
            k = 1.0 / (ctx.var_factor * ctx.sigma**2)
            return [e * k for e in rec.eps]
        sq = [(d * d).sum(-1, keepdim=True) for d in rec.da]
        if self.kind == "anp" and self.norm == "joint":
            c = anp_scale(self.scale, sum(d.shape[-1] for d in rec.da))
            inv = c / torch.stack(sq).sum(0).clamp_min(_TINY)
            return [d * inv for d in rec.da]
        return [
            d * (anp_scale(self.scale, d.shape[-1]) / s.clamp_min(_TINY))
            for d, s in zip(rec.da, sq, strict=True)
        ]

    def init(self, shapes: list[tuple[int, int]], like: Tensor) -> GradState:
        """Zero sums for layers of shape [n_l, m_l]."""
        return GradState(
            [like.new_zeros(s) for s in shapes], [like.new_zeros(s[0]) for s in shapes]
        )

    def accumulate(self, state: GradState, rec: LayerRecord, ctx: LayeredContext) -> GradState:
        """Σ_rows δℓ e_l ẑ_lᵀ and Σ_rows δℓ e_l (rows where layer l is active)."""
        for l, e in enumerate(self.signals(rec, ctx)):
            w = rec.dl if rec.active is None else rec.dl * rec.active[l]
            ew = e * w[:, None]
            state.W[l].addmm_(ew.T, rec.z[l])
            state.b[l].add_(ew.sum(0))
        return state

    def finalize(self, state: GradState, n: float) -> GradState:
        """Divide the sums by ``n`` = K·B (the rows that estimate each layer)."""
        return GradState([g / n for g in state.W], [g / n for g in state.b])


class LayeredWeightPerturbation:
    """WP: ∂L/∂θ ≈ mean over rows of δℓ · Δθ / (v σ²)."""

    name = "wp"
    iterative = False
    #: the layered driver perturbs weights for this rule (WeightRecord), not nodes
    perturbs = "weights"

    def init(self, shapes: list[tuple[int, int]], like: Tensor) -> GradState:
        return GradState(
            [like.new_zeros(s) for s in shapes], [like.new_zeros(s[0]) for s in shapes]
        )

    def accumulate(self, state: GradState, rec: WeightRecord, ctx: LayeredContext) -> GradState:
        k = 1.0 / (ctx.var_factor * ctx.sigma**2)
        for l, dW in enumerate(rec.dw):
            state.W[l].add_(torch.einsum("p,pnm->nm", rec.dl, dW), alpha=k)
            if rec.db[l] is not None:
                state.b[l].add_(rec.dl @ rec.db[l], alpha=k)
        return state

    def finalize(self, state: GradState, n: float) -> GradState:
        return GradState([g / n for g in state.W], [g / n for g in state.b])
