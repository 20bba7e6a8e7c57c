"""The rate network's fast path of the paired passes: :class:`ChunkedNodeNoise`, a kind of
the one driver (:func:`~.perturb.paired_passes`) for every node-perturbation rule with a
clean baseline and K ≥ 1 (:func:`~.perturb.has_fast_path`; chosen by
:func:`~.perturb.perturbation_for`).

Rows: [clean B | perturbed K·B]; perturbed row i pairs with clean row i mod B, as in the
step-by-step :class:`~.perturb.NodeNoise` (``perturbation_estimate(..., loop=True)``),
whose estimate this is. The driver's chunks are sub-chunks of T_d steps of the time loop
(its losses, δℓ, dS and outputs per sub-chunk); the rule consumes blocks of T_b ≥ T_d
steps, each one :class:`~bioplaus.rules.base.BlockRecord` (its ``accumulate_block``, or step
by step for a rule without it), so any rule of the ``node`` mechanism runs here — K
resamples, every credit signal, users' rules. The sub-chunks write the block's records in
place (z_hid and z_out share one buffer, no concatenation): a rule with per-sample traces
asks for long blocks (``block_steps``, 128) while the time loop keeps the short,
cache-resident buffers of T_d ≈ 1024 / B steps. Rearranged so that each step is one GEMM:

* D_rec is folded into the weights once per update: with φ_t = φ(x_t) and r̂_t = D φ_t,
  W_rec r̂ = (W_rec D) φ and W_out r̂ = (W_out D) φ, so the loop carries φ only. A rule
  whose estimate is linear in z (``linear_in_z``) is handed φ in place of r̂ and its
  estimate is unfolded at the end (Σ e r̂ᵀ = (Σ e φᵀ) Dᵀ, Σ r̂ r̂ᵀ = D (Σ φ φᵀ) Dᵀ); each
  fold only when its O(N³) cost is below the O(B·T·N²) it saves: N < 2BT, resp. 3N < BT;
  any other rule gets r̂ = D φ per chunk;
* with φ(x) = a g(k x) + c (tanh = 2 σ(2x) − 1 on CPU), the loop carries y = k x and
  s = g(y), with α, k, a, c and D folded into the weights once: the in-place form of the
  rate step in :mod:`~bioplaus.backends.torch.rate` (``fused_weights(carry="kx")``,
  ``fused_drive_``, ``fused_step_``; the equation is written there); φ = a s + c is formed
  per chunk for the records (k = a = 1, c = 0 otherwise);
* the input drive is written for a sub-chunk of T_d steps at once (one matmul), the clean rows
  without noise and the perturbed rows with k ε_t, ε_t = σ√α ξ_t; then per step the leak
  and one in-place GEMM, and g;
* the readout (and the driver's losses) per sub-chunk and Σ φ φᵀ per block, as large GEMMs
  over T_d·B and T_b·B rows; the rule's sums over the block are its own (GEMMs over n·P rows
  for ``NodePerturbation``). A rule may ask for longer blocks (``block_steps``);
* the block's z hold the B clean rows only, which the K resamples share (``BlockRecord.K``):
  no K-fold copy, and ``NodePerturbation`` sums the K weighted signals before its GEMMs.

The noise is drawn step by step in the order of :class:`~.perturb.NodeNoise`
(ξ [K·B, N], then ξ_o [K·B, n_out]), so both kinds consume the same random stream. Memory
is O(T_b·K·B·N) plus the rule's own state, not O(T).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ....rules.base import BlockRecord, Estimate, PerturbationRule, accumulate_block
from .. import rate  # this package: the in-place step (rate.fused_weights, …)
from ..perturbation import Chunk, Perturbation, Rows
from . import RateConsts, RateParams, decorrelate

Tensor = torch.Tensor

#: rows (steps × batch) per sub-chunk; its length is T_d = CHUNK_ROWS // B within [4, 128]
CHUNK_ROWS = 1024


def chunk_len(T: int, B: int) -> int:
    """Steps per chunk: ~CHUNK_ROWS rows for the per-chunk GEMMs, at most T."""
    return max(1, min(T, max(4, min(128, CHUNK_ROWS // max(B, 1)))))


def gram_upper_(acc: Tensor, Z: Tensor, blocks: int = 4) -> None:
    """acc += Zᵀ Z on the upper block triangle only (~5/8 of the FLOPs with 4 blocks);
    :func:`symmetrize` recovers the full matrix."""
    N = Z.shape[1]
    nb = blocks if 32 * blocks <= N else 1
    edges = [N * i // nb for i in range(nb + 1)]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        acc[lo:hi, lo:].addmm_(Z[:, lo:hi].T, Z[:, lo:])


def symmetrize(acc: Tensor) -> Tensor:
    """The full symmetric matrix from the upper triangle filled by :func:`gram_upper_`
    (in place: the lower triangle is overwritten)."""
    acc.triu_()
    return acc.add_(acc.T.tril(-1))


class ChunkedNodeNoise(Perturbation):
    """Rate node noise with a clean baseline, chunked (module docstring): the rows
    [clean B | perturbed K·B], the dynamics in sub-chunks of T_d steps (the driver's
    chunks), the rule fed one :class:`~bioplaus.rules.base.BlockRecord` per block of T_b
    steps (``chunk``: the rule's ``block_steps`` or :func:`chunk_len` when not given;
    ``dyn_chunk`` ≤ T_b, default :func:`chunk_len`), D folded where it pays."""

    def __init__(
        self,
        p: RateParams,
        c: RateConsts,
        sigma: float,
        rows: Rows,
        generator: torch.Generator,
        inputs: Tensor,
        *,
        rule: PerturbationRule,
        chunk: int | None = None,
        dyn_chunk: int | None = None,
    ) -> None:
        self.rule, self.chunk, self.dyn_chunk = rule, chunk, dyn_chunk
        super().__init__(p, c, sigma, rows, generator, inputs)

    def setup(self) -> None:
        """The block and sub-chunk lengths, the folds, the fused weights of the in-place
        rate step, and the buffers of the time loop and of a block's records."""
        p, c, sigma, rule, inputs = self.p, self.c, self.sigma, self.rule, self.inputs
        T, B, n_in = inputs.shape
        N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
        K = self.rows.K
        P = K * B
        S = B + P
        hint = getattr(rule, "block_steps", None)
        hint = hint(P) if callable(hint) else None  # per-sample traces like long blocks
        if self.chunk is None:
            Tb = chunk_len(T, S // 2) if hint is None else max(1, min(int(hint), T))
        else:
            Tb = max(1, min(self.chunk, T))
        Td = chunk_len(T, S // 2) if self.dyn_chunk is None else max(1, self.dyn_chunk)
        self.Tb, self.Td = Tb, min(Td, Tb)
        Td = self.Td
        D = self.D = p.D_rec
        # fold D into W_rec (2N³ once) when that beats r̂ = D φ every step (4BN² per step),
        # and hand the rule φ instead of r̂ (unfolding its estimate at the end, 6N³) when the
        # rule is linear in z and that beats r̂ = D φ per chunk (2BN²/step)
        fold_rec = D is not None and N < 2 * B * T
        self.fold_sums = (
            D is not None and 3 * N < B * T and bool(getattr(rule, "linear_in_z", False))
        )
        # the in-place rate step carrying y = k x and s = g(y) (its equation: rate/__init__.py)
        fw = self.fw = rate.fused_weights(p, c, S, sigma=sigma, carry="kx", fold_rec=fold_rec)
        self.gain = rate.noise_gain(fw.alpha, sigma)  # σ√α
        k_, a_, c_, _ = fw.phi  # φ = a g(k x) + c
        V = p.W_out if D is None else p.W_out @ D  # W_out D
        self.VsT = (V * a_).T  # o = s (a W_out D)ᵀ + c W_out D 1 + b_out
        bo = V.sum(1) * c_ if c_ != 0.0 else None
        if p.b_out is not None:
            bo = p.b_out if bo is None else bo + p.b_out
        self.bo = bo
        new = dict(device=self.dev, dtype=self.dt)
        # the time loop's buffers, one sub-chunk long: slot 0 of yb / sb holds the step
        # before the sub-chunk; rows [clean B | perturbed K·B]
        self.yb = torch.empty(Td + 1, S, N, **new)  # y = k x
        self.sb = torch.empty(Td + 1, S, N, **new)  # s = g(y)
        self.drive_b = torch.empty(Td, B, N, **new)
        self.zh_t = torch.empty(Td * B, N, **new) if D is not None and not self.fold_sums else None
        # the block's records, written sub-chunk by sub-chunk (no allocation churn inside
        # the loop: the peak stays flat in T). zb row r holds [û_{t0+r}, z_{t0+r−1}, 1] of
        # the clean rows: z_hid = zb[r] and z_out = [z_{t0+r}, 1] = zb[r + 1] without û,
        # so neither record is concatenated
        hb, ho = int(p.b is not None), int(p.b_out is not None)
        self.M_h, self.M_o = n_in + N + hb, N + ho
        self.zb = torch.empty(Tb + 1, B, n_in + N + max(hb, ho), **new)
        if hb or ho:
            self.zb[:, :, n_in + N] = 1.0
        self.zcols = self.zb[:, :, n_in : n_in + N]  # z = φ (or r̂ = D φ) of the clean rows
        self.eps = torch.empty(Tb, P, N, **new)
        self.eo = torch.empty(Tb, P, n_out, **new)
        self.dx_b = torch.empty(Tb, K, B, N, **new)
        self.do_b = torch.empty(Tb, K, B, n_out, **new)
        self.dl_b = torch.empty(Tb, P, **new)
        # the buffers' per-step rows as views made once (the time loop indexes no tensor)
        self.ys, self.ss = self.yb.unbind(0), self.sb.unbind(0)
        self.eps_t, self.eo_t = self.eps.unbind(0), self.eo.unbind(0)

    def _z_of(self, s_clean: Tensor, out: Tensor) -> None:
        """out ← z of the clean rows s_clean [m, B, N]: φ = a s + c, or r̂ = D φ."""
        _, a_, c_, _ = self.fw.phi
        if self.zh_t is None:
            torch.mul(s_clean, a_, out=out)
            if c_ != 0.0:
                out.add_(c_)
            return
        m, B, N = s_clean.shape
        f = self.zh_t[: m * B].view(m, B, N)
        torch.mul(s_clean, a_, out=f)
        if c_ != 0.0:
            f.add_(c_)
        out.copy_((f.view(m * B, N) @ self.D.T).view(m, B, N))

    def start(self, x0: Tensor | None) -> None:
        """y_{−1} = k x0 (or 0) on every row, s_{−1} = g(y_{−1}), z_{−1} of the clean rows."""
        k_, _, _, g = self.fw.phi
        self.yb[0] = 0.0 if x0 is None else x0.repeat(1 + self.rows.K, 1) * k_
        rate.g_into(g, self.yb[0], self.sb[0])
        self._z_of(self.sb[0:1, : self.rows.B], self.zcols[0:1])

    def chunks(self) -> Iterator[Chunk]:
        """Blocks of T_b steps, each run in sub-chunks of T_d ≤ T_b steps (the chunks):
        before a block its û (into the records' buffer), after it the last z carried on."""
        T, n_in = self.inputs.shape[0], self.inputs.shape[2]
        every = slice(0, self.rows.P)
        for t0 in range(0, T, self.Tb):
            n = min(self.Tb, T - t0)
            self.uh = decorrelate(self.p.D_in, self.inputs[t0 : t0 + n])  # [n, B, n_in]
            self.zb[:n, :, :n_in].copy_(self.uh)
            self.block = (t0, n)
            for j0 in range(0, n, self.Td):  # the time loop, one sub-chunk at a time
                self.j0 = j0
                yield Chunk(t0 + j0, min(self.Td, n - j0), 1, every)
            self.zcols[0].copy_(self.zcols[n])  # z_{t0+n−1}: the next block's first z_hid
            # free this block's temporaries before the next block allocates its own, so
            # every block starts from the same heap (otherwise the peak creeps up with T)
            del self.uh

    def run(self, chunk: Chunk) -> Tensor:
        """m steps: ξ_t, ξ_o,t drawn step by step in the step-by-step kind's order, the drive
        of the sub-chunk in one matmul (+ k ε on the perturbed rows), per step the leak and
        one GEMM; the readout of the sub-chunk, δo, δx and z. Outputs [m, 1 + K, B, n_out]."""
        fw, j0, m = self.fw, self.j0, chunk.n
        K, B, N = self.rows.K, self.rows.B, self.p.W_rec.shape[0]
        n_out, P, g = self.p.W_out.shape[0], self.rows.P, self.generator
        k_ = fw.phi[0]
        for k in range(j0, j0 + m):  # the step-by-step order: ξ_t, then ξ_o,t
            torch.randn(P, N, generator=g, out=self.eps_t[k])
            torch.randn(P, n_out, generator=g, out=self.eo_t[k])
        ex = self.eps[j0 : j0 + m].mul_(self.gain)  # ε_x = √α σ ξ
        ox = self.eo[j0 : j0 + m].mul_(self.sigma)  # ε_o = σ ξ_o
        yb, sb = self.yb, self.sb
        Y = yb[1 : m + 1].view(m, 1 + K, B, N)
        drive = rate.fused_drive_(self.drive_b[:m], self.uh[j0 : j0 + m], fw)  # kα(W_in û + …)
        Y[:, 0].copy_(drive)
        torch.add(drive[:, None], ex.view(m, K, B, N), alpha=k_, out=Y[:, 1:])  # + kε
        ys, ss = self.ys, self.ss
        for k in range(m):  # y_t from drive_t, y_{t−1}, s_{t−1}; s_t = g(y_t)
            rate.fused_step_(ys[k + 1], ys[k], ss[k], ss[k + 1], fw)
        o = torch.matmul(sb[1 : m + 1], self.VsT).view(m, 1 + K, B, n_out)
        if self.bo is not None:
            o.add_(self.bo)
        o[:, 1:].add_(ox.view(m, K, B, n_out))
        torch.sub(o[:, 1:], o[:, :1], out=self.do_b[j0 : j0 + m])
        torch.sub(Y[:, 1:], Y[:, :1], out=self.dx_b[j0 : j0 + m]).mul_(1.0 / k_)
        self._z_of(sb[1 : m + 1, :B], self.zcols[j0 + 1 : j0 + m + 1])
        yb[0].copy_(yb[m])
        sb[0].copy_(sb[m])
        return o

    def chunk_record(self, chunk: Chunk, dl: Tensor) -> BlockRecord | None:
        """δℓ into the block's buffer; the block's record once its last sub-chunk ran: z of
        the B clean rows, shared by the K resamples (``BlockRecord.K``)."""
        j0 = self.j0
        self.dl_b[j0 : j0 + chunk.n].copy_(dl)
        t0, n = self.block
        if j0 + chunk.n < n:
            return None
        P, N, n_in = self.rows.P, self.p.W_rec.shape[0], self.inputs.shape[2]
        return BlockRecord(
            t0=t0,
            z_hid=self.zb[:n, :, : self.M_h],  # [n, B, M_h]
            z_out=self.zb[1 : n + 1, :, n_in : n_in + self.M_o],  # [n, B, M_o]
            dx=self.dx_b[:n].view(n, P, N),
            do=self.do_b[:n].view(n, P, self.p.W_out.shape[0]),
            eps_x=self.eps[:n],
            eps_o=self.eo[:n],
            dl=self.dl_b[:n],
        )

    def feed(self, rule: PerturbationRule, state: object, rec: Any, ctx: Any) -> object:
        """A block: the rule's ``accumulate_block``, or its steps one by one."""
        return accumulate_block(rule, state, rec, ctx)

    def decor_sums(self, keys: tuple[str, ...]) -> dict[str, Tensor]:
        """Σ û ûᵀ and the upper block triangle of Σ z zᵀ (z = φ when ``fold_sums``)."""
        n_in, N = self.inputs.shape[2], self.p.W_rec.shape[0]
        new = dict(device=self.dev, dtype=self.dt)
        yy = {}
        if "D_in" in keys:
            yy["D_in"] = torch.zeros(n_in, n_in, **new)
        if "D_rec" in keys:
            yy["D_rec"] = torch.zeros(N, N, **new)
        return yy

    def add_decor_(self, yy: dict[str, Tensor], chunk: Chunk) -> None:
        """Once per block, after its last sub-chunk: its z and û as two GEMMs."""
        t0, n = self.block
        if self.j0 + chunk.n < n:
            return
        if "D_rec" in yy:
            gram_upper_(yy["D_rec"], self.zcols[1 : n + 1].reshape(n * self.rows.B, -1))
        if "D_in" in yy:
            uf = self.uh.reshape(n * self.rows.B, -1)
            yy["D_in"].addmm_(uf.T, uf)

    def decor_result(self, yy: dict[str, Tensor], count: float) -> dict[str, tuple[Tensor, float]]:
        """The full Σ z zᵀ from its upper triangle, unfolded to Σ r̂ r̂ᵀ = D (Σ φ φᵀ) Dᵀ."""
        if "D_rec" in yy:
            yy["D_rec"] = symmetrize(yy["D_rec"])
            if self.fold_sums:
                yy["D_rec"] = self.D @ yy["D_rec"] @ self.D.T
        return {k: (v, count) for k, v in yy.items()}

    def finalize(
        self, rule: PerturbationRule, state: object, dS: Tensor, norm_b: float
    ) -> Estimate:
        """The rule's estimate; if it saw φ, r̂ = D φ unfolded in it (it is linear in z)."""
        est = rule.finalize(state, dS, norm_b * self.rows.K)
        if not self.fold_sums:
            return est
        n_in, N, D = self.inputs.shape[2], self.p.W_rec.shape[0], self.D
        G_hid, G_out = est.hid, est.out
        G_hid = torch.cat(
            [G_hid[:, :n_in], G_hid[:, n_in : n_in + N] @ D.T, G_hid[:, n_in + N :]], 1
        )
        return Estimate(G_hid, torch.cat([G_out[:, :N] @ D.T, G_out[:, N:]], 1))

    def loss_norm(self, norm_b: float) -> float:
        """Σ m over the batch (the B clean rows are the trials)."""
        return norm_b
