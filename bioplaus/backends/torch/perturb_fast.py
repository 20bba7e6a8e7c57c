"""Fast path of the paired passes: every node-perturbation rule, clean baseline, K ≥ 1.

Rows: [clean B | perturbed K·B]; perturbed row i pairs with clean row i mod B, as in
:func:`~.perturb.generic_estimate`, whose estimate this is. The rule consumes blocks of
steps, each one :class:`~bioplaus.rules.base.BlockRecord` (its ``accumulate_block``, or step
by step for a rule without it), so any rule of the ``node`` mechanism runs here — K
resamples, every credit signal, users' rules. The dynamics run in sub-chunks of T_c ≤ block
steps that write the block's records in place (z_hid and z_out share one buffer, no
concatenation): a rule with per-sample traces asks for long blocks (``block_steps``, 128)
while the time loop keeps the short, cache-resident buffers of T_c ≈ 1024 / B steps.
Rearranged so that each step is one GEMM:

* D_rec is folded into the weights once per update: with φ_t = φ(x_t) and r̂_t = D φ_t,
  W_rec r̂ = (W_rec D) φ and W_out r̂ = (W_out D) φ, so the loop carries φ only. A rule
  whose estimate is linear in z (``linear_in_z``) is handed φ in place of r̂ and its
  estimate is unfolded at the end (Σ e r̂ᵀ = (Σ e φᵀ) Dᵀ, Σ r̂ r̂ᵀ = D (Σ φ φᵀ) Dᵀ); each
  fold only when its O(N³) cost is below the O(B·T·N²) it saves: N < 2BT, resp. 3N < BT;
  any other rule gets r̂ = D φ per chunk;
* with φ(x) = a g(k x) + c (tanh = 2 σ(2x) − 1 on CPU), the loop carries y = k x and
  s = g(y), with α, k, a, c and D folded into the weights once: the in-place form of the
  rate step in :mod:`.rate` (``fused_weights(carry="kx")``, ``fused_drive_``,
  ``fused_step_``; the equation is written there); φ = a s + c is formed per chunk for the
  records (k = a = 1, c = 0 otherwise);
* the input drive is written for a chunk of T_c steps at once (one matmul), the clean rows
  without noise and the perturbed rows with k ε_t, ε_t = σ√α ξ_t; then per step the leak
  and one in-place GEMM, and g;
* the readout, the losses and Σ φ φᵀ are computed per chunk, as large GEMMs over T_c·B
  rows; the rule's sums over the block are its own (GEMMs over n·P rows for
  ``NodePerturbation``). A rule may ask for longer blocks (``block_steps``);
* the block's z hold the B clean rows only, which the K resamples share (``BlockRecord.K``):
  no K-fold copy, and ``NodePerturbation`` sums the K weighted signals before its GEMMs.

The noise is drawn step by step in the order of the generic loop (ξ [K·B, N], then ξ_o
[K·B, n_out]), so both paths consume the same random stream. Memory is O(T_c·K·B·N) plus
the rule's own state, not O(T).
"""

from __future__ import annotations

import torch

from ...loss import normaliser, step_loss
from ...records import PassResult
from ...rules.base import BlockRecord, Context, PerturbationRule, accumulate_block
from . import rate
from .pass_common import split_grads
from .rate import RateConsts, RateParams, decorrelate

Tensor = torch.Tensor

#: rows (steps × batch) per chunk; the chunk length is T_c = CHUNK_ROWS // B within [4, 128]
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


def local_estimate_fast(
    p: RateParams,
    c: RateConsts,
    rule: PerturbationRule,
    inputs: Tensor,
    targets: Tensor,
    mask: Tensor | None,
    loss_kind: str,
    generator: torch.Generator,
    *,
    sigma: float,
    K: int = 1,
    keep_outputs: bool = False,
    decor: tuple[str, ...] = (),
    x0: Tensor | None = None,
    chunk: int | None = None,
    dyn_chunk: int | None = None,
) -> PassResult:
    """The estimate of :func:`~.perturb.perturbation_estimate` for a clean baseline, K ≥ 1
    resamples and any non-iterative node-perturbation rule (see the module docstring); the
    rule consumes one :class:`~bioplaus.rules.base.BlockRecord` per block of ``chunk`` steps
    (the rule's ``block_steps`` or :func:`chunk_len` when not given). The dynamics run in
    sub-chunks of ``dyn_chunk`` ≤ ``chunk`` steps (default :func:`chunk_len`), which write
    the block's records, so a rule that asks for long blocks does not make the time loop
    stream long buffers. Rows: [clean B | perturbed K·B], perturbed row i pairs with clean
    row i mod B."""
    T, B, n_in = inputs.shape
    N, n_out = p.W_rec.shape[0], p.W_out.shape[0]
    P = K * B
    S = B + P
    dev, dt = inputs.device, inputs.dtype
    hint = getattr(rule, "block_steps", None)
    hint = hint(P) if callable(hint) else None  # a rule with per-sample traces likes long blocks
    if chunk is None:
        Tb = chunk_len(T, S // 2) if hint is None else max(1, min(int(hint), T))
    else:
        Tb = max(1, min(chunk, T))
    Td = chunk_len(T, S // 2) if dyn_chunk is None else max(1, dyn_chunk)
    Td = min(Td, Tb)
    ctx = Context(c.alpha, sigma, 1.0)
    with torch.no_grad():
        D = p.D_rec
        # fold D into W_rec (2N³ once) when that beats r̂ = D φ every step (4BN² per step),
        # and hand the rule φ instead of r̂ (unfolding its estimate at the end, 6N³) when the
        # rule is linear in z and that beats r̂ = D φ per chunk (2BN²/step)
        fold_rec = D is not None and N < 2 * B * T
        fold_sums = D is not None and 3 * N < B * T and bool(getattr(rule, "linear_in_z", False))
        # the in-place rate step carrying y = k x and s = g(y) (its equation: rate.py)
        fw = rate.fused_weights(p, c, S, sigma=sigma, carry="kx", fold_rec=fold_rec)
        gain = rate.noise_gain(fw.alpha, sigma)  # σ√α
        k_, a_, c_, g = fw.phi  # φ = a g(k x) + c
        V = p.W_out if D is None else p.W_out @ D  # W_out D
        VsT = (V * a_).T  # o = s (a W_out D)ᵀ + c W_out D 1 + b_out
        bo = V.sum(1) * c_ if c_ != 0.0 else None
        if p.b_out is not None:
            bo = p.b_out if bo is None else bo + p.b_out
        new = dict(device=dev, dtype=dt)
        # the time loop's buffers, one sub-chunk long: slot 0 of yb / sb holds the step
        # before the sub-chunk; rows [clean B | perturbed K·B]
        yb = torch.empty(Td + 1, S, N, **new)  # y = k x
        sb = torch.empty(Td + 1, S, N, **new)  # s = g(y)
        drive_b = torch.empty(Td, B, N, **new)
        zh_t = torch.empty(Td * B, N, **new) if D is not None and not fold_sums else None
        # the block's records, written sub-chunk by sub-chunk (no allocation churn inside
        # the loop: the peak stays flat in T). zb row r holds [û_{t0+r}, z_{t0+r−1}, 1] of
        # the clean rows: z_hid = zb[r] and z_out = [z_{t0+r}, 1] = zb[r + 1] without û,
        # so neither record is concatenated
        hb, ho = int(p.b is not None), int(p.b_out is not None)
        M_h, M_o = n_in + N + hb, N + ho
        zb = torch.empty(Tb + 1, B, n_in + N + max(hb, ho), **new)
        if hb or ho:
            zb[:, :, n_in + N] = 1.0
        zcols = zb[:, :, n_in : n_in + N]  # z = φ (or r̂ = D φ) of the clean rows
        eps = torch.empty(Tb, P, N, **new)
        eo = torch.empty(Tb, P, n_out, **new)
        dx_b = torch.empty(Tb, K, B, N, **new)
        do_b = torch.empty(Tb, K, B, n_out, **new)
        dl_b = torch.empty(Tb, P, **new)
        yb[0] = 0.0 if x0 is None else x0.repeat(1 + K, 1) * k_
        # the buffers' per-step rows as views made once (the time loop indexes no tensor)
        ys, ss, eps_t, eo_t = yb.unbind(0), sb.unbind(0), eps.unbind(0), eo.unbind(0)
        rate.g_into(g, yb[0], sb[0])

        def z_of(s_clean: Tensor, out: Tensor) -> None:
            """out ← z of the clean rows s_clean [m, B, N]: φ = a s + c, or r̂ = D φ."""
            if zh_t is None:
                torch.mul(s_clean, a_, out=out)
                if c_ != 0.0:
                    out.add_(c_)
                return
            m = s_clean.shape[0]
            f = zh_t[: m * B].view(m, B, N)
            torch.mul(s_clean, a_, out=f)
            if c_ != 0.0:
                f.add_(c_)
            out.copy_((f.view(m * B, N) @ D.T).view(m, B, N))

        z_of(sb[0:1, :B], zcols[0:1])
        state = rule.init(P, M_h, N, M_o, n_out, p.W_rec)
        yy_rec = torch.zeros(N, N, **new) if "D_rec" in decor else None  # Σ φ φᵀ
        yy_in = torch.zeros(n_in, n_in, **new) if "D_in" in decor else None
        dS = torch.zeros(P, **new)
        sum_lb = torch.zeros((), **new)
        sum_la = torch.zeros((), **new)
        outs = []
        for t0 in range(0, T, Tb):
            n = min(Tb, T - t0)
            uh = decorrelate(p.D_in, inputs[t0 : t0 + n])  # [n, B, n_in]
            zb[:n, :, :n_in].copy_(uh)
            for j0 in range(0, n, Td):  # the time loop, one sub-chunk of m steps at a time
                m = min(Td, n - j0)
                t1 = t0 + j0
                for k in range(j0, j0 + m):  # the generic loop's order: ξ_t, then ξ_o,t
                    torch.randn(P, N, generator=generator, out=eps_t[k])
                    torch.randn(P, n_out, generator=generator, out=eo_t[k])
                ex = eps[j0 : j0 + m].mul_(gain)  # ε_x = √α σ ξ
                ox = eo[j0 : j0 + m].mul_(sigma)  # ε_o = σ ξ_o
                Y = yb[1 : m + 1].view(m, 1 + K, B, N)
                drive = rate.fused_drive_(drive_b[:m], uh[j0 : j0 + m], fw)  # kα(W_in û + …)
                Y[:, 0].copy_(drive)
                torch.add(drive[:, None], ex.view(m, K, B, N), alpha=k_, out=Y[:, 1:])  # + kε
                for k in range(m):  # y_t from drive_t, y_{t−1}, s_{t−1}; s_t = g(y_t)
                    rate.fused_step_(ys[k + 1], ys[k], ss[k], ss[k + 1], fw)
                o = torch.matmul(sb[1 : m + 1], VsT).view(m, 1 + K, B, n_out)
                if bo is not None:
                    o.add_(bo)
                o[:, 1:].add_(ox.view(m, K, B, n_out))
                ell = step_loss(loss_kind, o, targets[t1 : t1 + m, None])  # [m, 1 + K, B]
                if mask is not None:
                    ell = ell * mask[t1 : t1 + m, None]
                sum_lb += ell[:, 0].sum()
                sum_la += ell[:, 1:].sum()
                dl = torch.sub(ell[:, 1:], ell[:, :1], out=dl_b[j0 : j0 + m].view(m, K, B))
                dS += dl.reshape(m, P).sum(0)
                torch.sub(o[:, 1:], o[:, :1], out=do_b[j0 : j0 + m])
                torch.sub(Y[:, 1:], Y[:, :1], out=dx_b[j0 : j0 + m]).mul_(1.0 / k_)
                z_of(sb[1 : m + 1, :B], zcols[j0 + 1 : j0 + m + 1])
                if keep_outputs:
                    outs.append(o[:, 0].clone())
                yb[0].copy_(yb[m])
                sb[0].copy_(sb[m])
                del o, ell, dl, drive, Y
            z_hid = zb[:n, :, :M_h]  # [n, B, M_h]
            z_out = zb[1 : n + 1, :, n_in : n_in + M_o]  # [n, B, M_o]
            blk = BlockRecord(  # z of the B clean rows, shared by the K resamples (blk.K)
                t0=t0,
                z_hid=z_hid,
                z_out=z_out,
                dx=dx_b[:n].view(n, P, N),
                do=do_b[:n].view(n, P, n_out),
                eps_x=eps[:n],
                eps_o=eo[:n],
                dl=dl_b[:n],
            )
            state = accumulate_block(rule, state, blk, ctx)
            if yy_rec is not None:
                gram_upper_(yy_rec, zcols[1 : n + 1].reshape(n * B, N))
            if yy_in is not None:
                uf = uh.reshape(n * B, n_in)
                yy_in.addmm_(uf.T, uf)
            zcols[0].copy_(zcols[n])  # z_{t0+n−1}: the next block's first z_hid
            # free this block's temporaries before the next block allocates its own, so every
            # block starts from the same heap (otherwise the peak creeps up with T)
            del blk, z_hid, z_out, uh
        norm_b = normaliser(mask, T, B)
        est = rule.finalize(state, dS, norm_b * K)
        G_hid, G_out = est.hid, est.out
        if fold_sums:  # the rule saw φ: unfold r̂ = D φ in its (linear) estimate
            G_hid = torch.cat(
                [G_hid[:, :n_in], G_hid[:, n_in : n_in + N] @ D.T, G_hid[:, n_in + N :]], 1
            )
            G_out = torch.cat([G_out[:, :N] @ D.T, G_out[:, N:]], 1)
        if yy_rec is not None:
            yy_rec = symmetrize(yy_rec)
            if fold_sums:
                yy_rec = D @ yy_rec @ D.T
    yy = {}
    if yy_in is not None:
        yy["D_in"] = (yy_in, float(T * B))
    if yy_rec is not None:
        yy["D_rec"] = (yy_rec, float(T * B))
    return PassResult(
        grads=split_grads(p, G_hid, G_out),
        loss=float(sum_lb) / norm_b,
        loss_perturbed=float(sum_la) / (norm_b * K),
        outputs=torch.cat(outs) if keep_outputs else None,
        decor=yy,
    )
