"""The node-perturbation family as one estimator with two choices (DESIGN §2).

Postsynaptic signal e_t (per sample, per perturbed layer):

    NP :  e_t = ε_t / (v σ²)                       ε the injected noise (A − B), v = 1 or 2
    INP:  e_t = n α δx_t / ‖δx_t‖² on rows whose pass perturbed only the hidden layer,
          n_out δo_t / ‖δo_t‖² on rows that perturbed only the readout (zero elsewhere);
          the driver runs one perturbed pass per layer, stacked (iterative NP)
    ANP:  e_t = c α δx_t / ‖δ_t‖² (hidden),  c δo_t / ‖δ_t‖² (readout)
          ‖δ_t‖² = ‖δx_t‖² + ‖δo_t‖² ("joint", per sample over all perturbed units, as the
          multi-layer seed paper's code) or per layer ("layer"); c = number of perturbed units
          (scale="n"), its square root ("sqrt_n"), or a given number.

Credit signal r (what multiplies e_t):

    local : r_t = δℓ_t                    (time-local, the RNN seed paper)
    trial : r_t = Σ_s δℓ_s                (whole trial: unbiased for the BPTT gradient with NP)
    rtg   : r_t = Σ_{s≥t} δℓ_s            (reward-to-go: unbiased, lower variance than trial)
    trace : discounted reward-to-go, r_t = Σ_{s≥t} λ^{s−t} δℓ_s with λ = ``trace_decay`` ∈ (0, 1]:
            an eligibility trace carries e zᵀ forward in time (λ = 1 is rtg; λ → 0 is local)

Estimate of ∂L/∂W for a ← W z:   G = (1 / Σm) Σ_{t,b} r_{t,b} e_{t,b} z_{t,b}ᵀ  (mean over K
resamples too). The factor α in ANP is ∂x_t/∂(W z) of the Euler step; in NP it cancels against
Var(ε) = σ²α. For small σ, E[G] equals the gradient the credit signal targets.

"trial" and "rtg" keep per-sample traces E_b = Σ_{t≤s} e_t z_tᵀ ([P, N, M] memory, independent
of T); "trace" keeps the decaying trace E_b ← λ E_b + e_t z_tᵀ and adds G += δℓ_t E_t, i.e.

    G = Σ_t δℓ_t Σ_{s≤t} λ^{t−s} e_s z_sᵀ

"local" needs no trace.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from ..registry import register_rule
from .base import (
    BlockRecord,
    Context,
    Estimate,
    StepRecord,
    Sums,
    anp_scale,
    finalize_sums,
    init_sums,
)
from .options import PairedPassOptions

Tensor = torch.Tensor
Signal = Literal["local", "trial", "rtg", "trace"]
Kind = Literal["np", "anp", "inp"]
Norm = Literal["joint", "layer"]

_TINY = 1e-30


class NodePerturbation:
    """NP or ANP with a local, whole-trial, reward-to-go or decaying-trace credit signal."""

    def __init__(
        self,
        kind: Kind = "anp",
        signal: Signal = "local",
        scale: str | float = "n",
        norm: Norm = "joint",
        trace_decay: float = 1.0,
    ) -> None:
        if kind not in ("np", "anp", "inp"):
            raise ValueError(f"kind: must be 'np', 'anp' or 'inp' (got {kind!r})")
        if signal not in ("local", "trial", "rtg", "trace"):
            raise ValueError(f"signal: must be 'local', 'trial', 'rtg' or 'trace' (got {signal!r})")
        if not 0.0 < float(trace_decay) <= 1.0:
            raise ValueError(f"trace_decay: must be in (0, 1] (got {trace_decay})")
        if signal != "trace" and float(trace_decay) != 1.0:
            raise ValueError("trace_decay applies only to signal 'trace'")
        #: λ of the "trace" signal (E ← λE + e zᵀ)
        self.trace_decay = float(trace_decay)
        if norm not in ("joint", "layer"):
            raise ValueError(f"norm: must be 'joint' or 'layer' (got {norm!r})")
        if isinstance(scale, str) and scale not in ("n", "sqrt_n"):
            raise ValueError(f"scale: must be 'n', 'sqrt_n' or a number (got {scale!r})")
        if not isinstance(scale, str) and not float(scale) > 0:
            raise ValueError(f"scale: must be > 0 (got {scale})")
        self.kind, self.signal, self.scale, self.norm = kind, signal, scale, norm
        self.name = kind if signal == "local" else f"{kind}-{signal}"
        #: INP: the driver runs one perturbed pass per layer (hidden only, readout only)
        self.iterative = kind == "inp"

    def block_steps(self, P: int) -> int | None:
        """Steps per block this rule prefers from a chunking driver (None: the driver's
        choice). The per-sample traces of trial / rtg / trace signals ([P, N, M] memory) are
        read and written once per block, so longer blocks pay: 128 steps, or fewer when P is
        large (~32k rows a block)."""
        if self.signal == "local":
            return None
        return max(16, min(128, 32768 // max(P, 1)))

    @property
    def linear_in_z(self) -> bool:
        """The estimate is linear in the presynaptic records z, so a driver may hand z in
        another basis (φ instead of r̂ = D φ) and map the estimate back. A subclass that
        changes :meth:`accumulate` is not assumed to be."""
        return type(self).accumulate is NodePerturbation.accumulate

    # -- postsynaptic signals -------------------------------------------------------------
    def _c(self, n_units: int) -> float:
        return anp_scale(self.scale, n_units)

    def factors(
        self, rec: StepRecord, ctx: Context
    ) -> tuple[Tensor, Tensor | float, Tensor, Tensor | float]:
        """The postsynaptic signals as (source, factor) per layer: e_hid = src_h · f_h,
        e_out = src_o · f_o, with src the injected noise (NP) or δx, δo (ANP, INP) and f a
        number or a per-row column [P, 1]. A block can then fold its own per-row weights into
        f before the one multiplication of the [P, N] source (:meth:`accumulate_block`)."""
        if self.kind == "np":
            k = 1.0 / (ctx.var_factor * ctx.sigma**2)
            return rec.eps_x, k, rec.eps_o, k
        sx = (rec.dx * rec.dx).sum(-1, keepdim=True)
        so = (rec.do * rec.do).sum(-1, keepdim=True)
        N, n_out = rec.dx.shape[-1], rec.do.shape[-1]
        if self.kind == "inp":
            f_h = ctx.alpha * self._c(N) / sx.clamp_min(_TINY)
            f_o = self._c(n_out) / so.clamp_min(_TINY)
            if rec.hid_on is not None:
                f_h = f_h * rec.hid_on[:, None]
                f_o = f_o * rec.out_on[:, None]
            return rec.dx, f_h, rec.do, f_o
        if self.norm == "joint":
            inv = self._c(N + n_out) / (sx + so).clamp_min(_TINY)
            return rec.dx, ctx.alpha * inv, rec.do, inv
        return (
            rec.dx, ctx.alpha * self._c(N) / sx.clamp_min(_TINY),
            rec.do, self._c(n_out) / so.clamp_min(_TINY),
        )  # fmt: skip

    def signals(self, rec: StepRecord, ctx: Context) -> tuple[Tensor, Tensor]:
        """e_hid [P, N], e_out [P, n_out] for one step (:meth:`factors` multiplied out)."""
        src_h, f_h, src_o, f_o = self.factors(rec, ctx)
        return src_h * f_h, src_o * f_o

    # -- (init, accumulate, finalize) -----------------------------------------------------
    def init(self, P: int, M_h: int, N: int, M_o: int, n_out: int, like: Tensor) -> Sums:
        """Zero sums; per-sample traces for trial / rtg / trace."""
        return init_sums(self.signal, P, M_h, N, M_o, n_out, like)

    def accumulate(self, state: Sums, rec: StepRecord, ctx: Context) -> Sums:
        e_h, e_o = self.signals(rec, ctx)
        if self.signal == "local":
            d = rec.dl[:, None]
            state.G_hid.addmm_((e_h * d).T, rec.z_hid)
            state.G_out.addmm_((e_o * d).T, rec.z_out)
            return state
        if self.signal == "trace" and self.trace_decay != 1.0:  # E ← λE (+ e zᵀ below)
            state.E_hid.mul_(self.trace_decay)
            state.E_out.mul_(self.trace_decay)
        state.E_hid.baddbmm_(e_h[:, :, None], rec.z_hid[:, None, :])
        state.E_out.baddbmm_(e_o[:, :, None], rec.z_out[:, None, :])
        if self.signal in ("rtg", "trace"):  # Σ_t (Σ_{s≥t} λ^{s−t} δℓ_s) e_t z_tᵀ = Σ_s δℓ_s E_s
            state.G_hid.add_(torch.einsum("p,pnm->nm", rec.dl, state.E_hid))
            state.G_out.add_(torch.einsum("p,pnm->nm", rec.dl, state.E_out))
        return state

    def accumulate_block(self, state: Sums, blk: BlockRecord, ctx: Context) -> Sums:
        """Add n steps at once (the same estimate as n calls of :meth:`accumulate`, up to
        rounding), as GEMMs over the block's rows. With λ = ``trace_decay`` (1 for trial /
        rtg) and k = 0 … n−1 the steps of the block::

            local : G += Σ_k (e_k δℓ_k)ᵀ z_k
            traces: c_k = Σ_{j≥k} λ^{j−k} δℓ_j (per sample), s = Σ_k λ^{k+1} δℓ_k = λ c_0
                    G += Σ_p s_p E_p + Σ_k (c_k e_k)ᵀ z_k          (rtg, trace)
                    E ← λⁿ E + Σ_k λ^{n−1−k} e_k z_kᵀ              (per sample)

        Each weighted signal (δℓ e, c e, λ^{n−1−k} e) is one multiplication of the [n·P, N]
        source by a per-row factor (:meth:`factors`). When the K resamples of a sample share
        its z (``blk.K`` > 1, z [n, B, ·]), the sums into G add the K weighted signals first,
        Σ_{k,j} (w e)_{k,jB+b} z_{k,b}ᵀ = Σ_k (Σ_j (w e)_{k,jB+b}) z_{k,b}ᵀ, a GEMM over n·B
        rows instead of n·K·B; the per-sample traces E stay per row. A subclass that
        overrides :meth:`accumulate` gets its steps one by one; one that overrides
        :meth:`signals` gets its own signals."""
        if type(self).accumulate is not NodePerturbation.accumulate:
            for k in range(blk.dl.shape[0]):
                state = self.accumulate(state, blk.step(k), ctx)
            return state
        if self.iterative:
            raise ValueError("inp: its passes perturb one layer each (StepRecord.hid_on)")
        n, P = blk.dl.shape
        K = blk.K
        B = P // K
        rows = n * P
        flat = StepRecord(
            blk.t0, None, None, blk.dx.reshape(rows, -1), blk.do.reshape(rows, -1),
            blk.eps_x.reshape(rows, -1), blk.eps_o.reshape(rows, -1), blk.dl.reshape(rows),
        )  # fmt: skip
        if type(self).signals is NodePerturbation.signals:
            src_h, f_h, src_o, f_o = self.factors(flat, ctx)
        else:  # a subclass's own signals
            (src_h, src_o), f_h, f_o = self.signals(flat, ctx), 1.0, 1.0

        def weighted(src: Tensor, f: Tensor | float, w: Tensor | None) -> Tensor:
            """src · f · w (w a per-row column [rows, 1]): one pass over src."""
            if w is None:
                return src if isinstance(f, float) and f == 1.0 else src * f
            return src * (w * f)

        def summed(x: Tensor) -> Tensor:
            """[n·K·B, ·] → Σ over the K resamples [n·B, ·] (the rows that share a z)."""
            return x if K == 1 else x.view(n, K, B, -1).sum(1).view(n * B, -1)

        # [n·B, M] views of the block's z (no copy when z is a column slice of a buffer)
        Zh, Zo = blk.z_hid.reshape(n * B, -1), blk.z_out.reshape(n * B, -1)
        layers = (
            (state.G_hid, state.E_hid, src_h, f_h, Zh),
            (state.G_out, state.E_out, src_o, f_o, Zo),
        )
        if self.signal == "local":
            d = flat.dl[:, None]
            for G, _, src, f, Z in layers:
                G.addmm_(summed(weighted(src, f, d)).T, Z)
            return state
        lam = self.trace_decay if self.signal == "trace" else 1.0
        dl = blk.dl
        w = None  # λ^{n−1−k} per row (None for λ = 1)
        if lam != 1.0:
            w = lam ** torch.arange(n - 1, -1, -1, device=dl.device, dtype=dl.dtype)
            w = w.repeat_interleave(P)[:, None]
        if self.signal in ("rtg", "trace"):
            c = reverse_discounted_sum(dl, lam)  # [n, P]
            s = c[0] * lam  # [P]
            cw = c.reshape(rows, 1)
            for G, E, src, f, Z in layers:
                G.view(-1).addmv_(E.view(P, -1).T, s)  # Σ_p s_p E_p
                G.addmm_(summed(weighted(src, f, cw)).T, Z)
        for _, E, src, f, Z in layers:
            e4 = weighted(src, f, w).view(n, K, B, -1)
            Z3 = Z.view(n, B, -1).permute(1, 0, 2)  # [B, n, M]
            for j, Ej in enumerate(E.view(K, B, *E.shape[1:])):  # resample j: rows jB + b
                # E ← λⁿ E + Σ_k w_k e_k z_kᵀ
                Ej.baddbmm_(e4[:, j].permute(1, 2, 0), Z3, beta=lam**n)
        return state

    def finalize(self, state: Sums, dS: Tensor, norm: float) -> Estimate:
        """``dS`` [P]: Σ_t δℓ_t per sample; ``norm``: Σm times K (:func:`~.base.finalize_sums`)."""
        return finalize_sums(self.signal, state, dS, norm)


def reverse_discounted_sum(dl: Tensor, lam: float) -> Tensor:
    """c_k = Σ_{j≥k} λ^{j−k} δℓ_j along dim 0 of ``dl`` [n, P] (c_k = δℓ_k + λ c_{k+1}).
    λ = 1: a reversed cumulative sum; λ < 1: λ^{−k} times the reversed cumulative sum of
    λ^j δℓ_j while λ^{n−1} stays far from underflow (the same rounding as the recursion,
    whose error is relative to Σ_{j≥k} λ^{j−k} |δℓ_j| either way), else the recursion."""
    n = dl.shape[0]
    if lam == 1.0:
        return dl.flip(0).cumsum(0).flip(0)
    if lam ** (n - 1) >= 1e-8:
        pw = lam ** torch.arange(n, device=dl.device, dtype=dl.dtype)[:, None]
        return (dl * pw).flip(0).cumsum(0).flip(0) / pw
    c = torch.empty_like(dl)
    acc = torch.zeros_like(dl[0])
    for k in range(n - 1, -1, -1):
        acc = dl[k] + lam * acc
        c[k] = acc
    return c


# -- options and registration ---------------------------------------------------------------
class NodePerturbationOptions(PairedPassOptions):
    """Options of the node-perturbation family (np, anp, inp, rtg-np; danp and dnp are
    anp and np with decorrelation turned on)."""

    name: Literal["np", "anp", "inp", "rtg-np", "danp", "dnp"] = Field(
        description="np | anp | inp (iterative NP: one noisy pass per layer, only that layer "
        "perturbed) | rtg-np (reward-to-go NP) | danp / dnp (anp / np with decorrelation: "
        "sets model.decorrelate_rec and train.lr_decor = 1e-3 unless given)."
    )
    signal: Literal["local", "trial", "rtg", "trace"] | None = Field(
        None,
        description="Credit signal: local δℓ_t (default for np, anp), whole-trial δL, "
        "reward-to-go Σ_{s≥t} δℓ_s (default for rtg-np), or a decaying eligibility trace "
        "Σ_{s≥t} λ^{s−t} δℓ_s (λ = trace_decay; np, anp).",
    )
    trace_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="λ of signal 'trace': E ← λE + e zᵀ, G = Σ_t δℓ_t E_t (1: reward-to-go).",
    )
    scale: Literal["n", "sqrt_n"] | float = Field(
        "n", description="ANP scale c: number of perturbed units, its square root, or a number."
    )
    norm: Literal["joint", "layer"] = Field(
        "joint", description="ANP normalisation ‖δ‖²: joint over all layers, or per layer."
    )
    noise_access: Literal["difference", "own"] = Field(
        "difference",
        description="NP with a noisy baseline (feed-forward models): the noise NP correlates "
        "with δℓ — the difference of both passes' noise (exact, v = 2) or only the perturbed "
        "pass's own noise (v = 1; bioplaus's reading of the paper's §3.4 DNP, whose baseline "
        "noise is unknown).",
    )

    @model_validator(mode="after")
    def _fit(self) -> NodePerturbationOptions:
        if self.noise_access != "difference" and (
            self.kind != "np" or self.baseline != "noisy" or self.name == "rtg-np"
        ):
            raise ValueError(
                "option 'noise_access' applies only to rule 'np' with baseline 'noisy'"
            )
        if self.name == "rtg-np" and self.signal not in (None, "rtg"):
            raise ValueError("signal: rule 'rtg-np' uses signal 'rtg'")
        if self.signal == "trace" and self.kind == "inp":
            raise ValueError("signal 'trace' applies to rules 'np' and 'anp'")
        if self.trace_decay != 1.0 and self.signal != "trace":
            raise ValueError("option 'trace_decay' applies only to signal 'trace'")
        if not isinstance(self.scale, str) and not self.scale > 0:
            raise ValueError(f"scale: must be 'n', 'sqrt_n' or a number > 0 (got {self.scale})")
        return self

    @property
    def kind(self) -> str:
        """np | anp | inp: the estimator (rtg-np and dnp are np, danp is anp)."""
        return {"rtg-np": "np", "dnp": "np", "danp": "anp"}.get(self.name, self.name)

    @property
    def credit_signal(self) -> str:
        """The credit signal the rule uses: ``signal``, or its default (rtg for rtg-np,
        local otherwise)."""
        return self.signal or ("rtg" if self.name == "rtg-np" else "local")

    @property
    def per_sample_traces(self) -> bool:
        """The estimator keeps a trace E [P, N, M] per perturbed sample (every credit
        signal but the local one): the memory estimate counts it."""
        return self.credit_signal != "local"


def build_node_perturbation(opts: NodePerturbationOptions, network: str):
    """The estimator of ``opts`` for a network type (``mlp``: the layered version, where the
    credit signal is moot since T = 1)."""
    if network == "mlp":
        from .layered import LayeredNodePerturbation

        return LayeredNodePerturbation(
            kind=opts.kind, scale=opts.scale, norm=opts.norm, own_noise=opts.noise_access == "own"
        )
    if opts.noise_access == "own":
        raise ValueError("noise_access 'own' is implemented for feed-forward (mlp) models only")
    return NodePerturbation(
        kind=opts.kind, signal=opts.credit_signal, scale=opts.scale, norm=opts.norm,
        trace_decay=opts.trace_decay,
    )  # fmt: skip


_DECOR = {"model": {"decorrelate_rec": True}, "train": {"lr_decor": 1e-3}}
for _name, _summary, _preset in (
    ("np", "node perturbation: δℓ · ε zᵀ / σ²", {}),
    ("anp", "activity-based node perturbation: c δℓ · δx zᵀ / ‖δx‖²", {}),
    ("inp", "iterative NP: one noisy pass per layer", {}),
    ("rtg-np", "reward-to-go NP (unbiased for full BPTT)", {}),
    ("danp", "ANP with decorrelation (lateral inhibition)", _DECOR),
    ("dnp", "NP with decorrelation (lateral inhibition)", _DECOR),
):
    register_rule(
        _name,
        options=NodePerturbationOptions,
        build=build_node_perturbation,
        mechanism="node",
        networks=("rate", "mlp") if _name == "inp" else ("rate", "lif", "mlp"),
        summary=_summary,
        preset=_preset,
    )
