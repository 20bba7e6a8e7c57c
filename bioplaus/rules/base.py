"""What a perturbation rule sees at each step, and the (init, accumulate, finalize) contract.

Rules are pure tensor math (optax style) and never simulate: a back-end's driver runs the
paired passes and hands each step to the rule as a :class:`StepRecord`. Pass A is the
perturbed pass, pass B its baseline (the clean pass, or a second noisy pass).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

Tensor = torch.Tensor


class StepRecord(NamedTuple):
    """One step t of P paired samples (P = K·B with K resamples)."""

    t: int
    z_hid: Tensor  # [P, M_h] presynaptic of the hidden layer: [û_t, r̂_{t−1}, (1)] of pass B
    z_out: Tensor  # [P, M_o] presynaptic of the readout: [r̂_t, (1)] of pass B
    dx: Tensor  # [P, N] δx_t = x_A − x_B
    do: Tensor  # [P, n_out] δo_t = o_A − o_B
    eps_x: Tensor  # [P, N] injected hidden noise, pass A minus pass B
    eps_o: Tensor  # [P, n_out] injected readout noise, pass A minus pass B
    dl: Tensor  # [P] δℓ_t = m_t (ℓ_A − ℓ_B)
    # INP: 1 on the rows whose pass perturbed only the hidden layer / only the readout
    hid_on: Tensor | None = None  # [P]
    out_on: Tensor | None = None  # [P]


class BlockRecord(NamedTuple):
    """n consecutive steps t0 … t0+n−1 of P paired samples, time-major: every field is
    [n, P, ·] (``dl`` [n, P]) and means what the same field of :class:`StepRecord` means —
    except that the presynaptic records ``z_hid``, ``z_out`` may hold only the B = P / K
    distinct rows [n, B, ·] of K resamples: row p of the P rows then reads z row p mod B
    (K perturbed passes of a sample share its clean pass's z; :attr:`K`).

    A driver that computes a chunk of steps at once (the fast path) hands a rule one block;
    a rule with ``accumulate_block`` consumes it with large GEMMs, any other rule gets its
    steps one by one (:func:`accumulate_block`), with z repeated to the P rows."""

    t0: int
    z_hid: Tensor  # [n, P, M_h], or [n, B, M_h] shared by the K resamples (P = K·B)
    z_out: Tensor  # [n, P, M_o], or [n, B, M_o]
    dx: Tensor  # [n, P, N]
    do: Tensor  # [n, P, n_out]
    eps_x: Tensor  # [n, P, N]
    eps_o: Tensor  # [n, P, n_out]
    dl: Tensor  # [n, P]

    @property
    def K(self) -> int:
        """Resamples per distinct z row: K = P / B (1 when z has the P rows)."""
        return self.dl.shape[1] // self.z_hid.shape[1]

    def step(self, k: int) -> StepRecord:
        """Step t0 + k as a :class:`StepRecord` (z repeated to the P rows when K > 1)."""
        K = self.K
        zh, zo = self.z_hid[k], self.z_out[k]
        if K > 1:
            zh, zo = zh.repeat(K, 1), zo.repeat(K, 1)
        return StepRecord(
            self.t0 + k, zh, zo, self.dx[k], self.do[k], self.eps_x[k], self.eps_o[k], self.dl[k],
        )  # fmt: skip


def accumulate_block(rule, state: object, block: BlockRecord, ctx: Context) -> object:
    """Feed a block of steps to ``rule``: through its own ``accumulate_block`` when it has
    one, else step by step through ``accumulate`` (the same estimate, every rule)."""
    fn = getattr(rule, "accumulate_block", None)
    if fn is not None:
        return fn(state, block, ctx)
    for k in range(block.dl.shape[0]):
        state = rule.accumulate(state, block.step(k), ctx)
    return state


class Context(NamedTuple):
    """Constants of the estimate: α, σ, and the noise-variance factor (1 with a clean
    baseline, 2 when pass B is noisy too)."""

    alpha: float
    sigma: float
    var_factor: float


class Estimate(NamedTuple):
    """Gradient estimates of L for the hidden layer [N, M_h] and the readout [n_out, M_o]."""

    hid: Tensor
    out: Tensor


class PerturbationRule(Protocol):
    name: str

    def init(self, P: int, M_h: int, N: int, M_o: int, n_out: int, like: Tensor) -> object: ...

    def accumulate(self, state: object, rec: StepRecord, ctx: Context) -> object: ...

    def finalize(self, state: object, dS: Tensor, norm: float) -> Estimate: ...


class Sums(NamedTuple):
    """The state of a paired-pass rule that sums its estimate over the steps (NP family,
    WP): G_hid [N, M_h], G_out [n_out, M_o], and per-sample traces E_hid [P, N, M_h],
    E_out [P, n_out, M_o] for a credit signal other than "local" (None for "local")."""

    G_hid: Tensor
    G_out: Tensor
    E_hid: Tensor | None
    E_out: Tensor | None


def init_sums(signal: str, P: int, M_h: int, N: int, M_o: int, n_out: int, like: Tensor) -> Sums:
    """Zero sums, with the per-sample traces only when ``signal`` is not "local"."""
    z = like.new_zeros
    traced = signal != "local"
    return Sums(
        z((N, M_h)),
        z((n_out, M_o)),
        z((P, N, M_h)) if traced else None,
        z((P, n_out, M_o)) if traced else None,
    )


def finalize_sums(signal: str, state: Sums, dS: Tensor, norm: float) -> Estimate:
    """The estimate of a paired-pass rule whose state is :class:`Sums`: G / norm, where for
    the whole-trial signal G = Σ_p dS_p E_p (``dS`` [P]: Σ_t δℓ_t per sample; ``norm``: Σm
    times K)."""
    if signal == "trial":
        G_hid = torch.einsum("p,pnm->nm", dS, state.E_hid)
        G_out = torch.einsum("p,pnm->nm", dS, state.E_out)
    else:
        G_hid, G_out = state.G_hid, state.G_out
    return Estimate(G_hid / norm, G_out / norm)


def anp_scale(scale: str | float, n_units: int) -> float:
    """The ANP constant c for ``n_units`` perturbed units: c = n (``"n"``), √n
    (``"sqrt_n"``, the RNN seed paper's code) or the given number."""
    if scale == "n":
        return float(n_units)
    if scale == "sqrt_n":
        return float(n_units) ** 0.5
    return float(scale)


def check_pass_options(sigma: float, baseline: str, K: int) -> None:
    """The options every paired-pass driver takes: σ > 0, a clean or noisy baseline, and
    K ≥ 1 resamples (a ValueError naming the option otherwise)."""
    if not sigma > 0:
        raise ValueError(f"sigma: a perturbation rule needs sigma > 0 (got {sigma})")
    if baseline not in ("clean", "noisy"):
        raise ValueError(f"baseline: must be 'clean' or 'noisy' (got {baseline!r})")
    if K < 1:
        raise ValueError(f"K: must be >= 1 (got {K})")
