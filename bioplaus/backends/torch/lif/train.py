"""Dispatch of ``bp.simulate``, ``bp.estimate`` and the trainer to the LIF back-end.

The LIF network type's entry (``bioplaus/networks/lif.py``) calls these; no shared module
branches on the model kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ....params import LEARNABLE
from ....random import torch_generator
from ....records import PassResult
from ....rules import RuleSpec, make_rule
from ....spec import LIFSpec, SpecError
from . import consts_of, to_torch
from .bptt import lif_bptt_estimate
from .online import LIFOnlineHandle
from .perturb import lif_perturbation_estimate
from .rollout import background, eval_outputs, simulate_fast, uniform_source

Tensor = torch.Tensor


def simulate_lif_torch(
    spec: LIFSpec,
    inputs: np.ndarray,
    params: dict[str, np.ndarray],
    noise: np.ndarray | None,
    seed: int,
    v0: np.ndarray | None,
    device: str,
    dtype: str,
    spikes: bool = False,
    spike_times: bool = False,
    crossing: np.ndarray | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Membrane potentials v [T, B, N], spikes (``spikes``) and spike times in seconds
    (``spike_times``; NaN where none) on torch, as tensors of the compute dtype; only what
    is asked for is kept (:func:`.rollout.simulate_fast`)."""
    td = {"float32": torch.float32, "float64": torch.float64}[dtype]
    p = to_torch(params, device, td)
    c = consts_of(spec)
    u = torch.as_tensor(inputs, device=device, dtype=td)
    T, B, _ = inputs.shape
    gen = torch_generator(seed, "simulate", device=device)
    xi = background(
        c,
        (B, spec.n_rec),
        noise=None if noise is None else torch.as_tensor(noise, device=device, dtype=td),
        generator=gen,
        device=device,
        dtype=td,
    )
    un = uniform_source(
        c, (B, spec.n_rec), generator=gen, device=device, dtype=td,
        uniform=None if crossing is None else torch.as_tensor(crossing, device=device, dtype=td),
    )  # fmt: skip
    v0_t = None if v0 is None else torch.as_tensor(v0, device=device, dtype=td)
    keep = ("v",) + (("s",) if spikes or spike_times else ()) + (("d",) if spike_times else ())
    out = simulate_fast(p, c, u, xi, v0=v0_t, uniform=un, keep=keep)
    ts = None
    if spike_times:
        t_end = torch.arange(1, T + 1, device=device, dtype=td)[:, None, None] * spec.dt
        ts = torch.where(out.s > 0, t_end - out.d * spec.dt, torch.full_like(out.d, float("nan")))
    return out.v, out.s, ts


def lif_estimate(
    rs: RuleSpec,
    spec: LIFSpec,
    params: dict[str, np.ndarray],
    u: Tensor,
    y: Tensor,
    m: Tensor | None,
    loss: str,
    seed: int,
    device: str,
) -> dict[str, np.ndarray]:
    """``bp.estimate`` for a LIF spec: surrogate BPTT (bptt/tbptt), a perturbation rule, or
    an online rule's one pass at fixed weights. The background noise comes from ``seed``
    (BPTT and symmetric e-prop draw it in the same order: the same realisation)."""
    p = to_torch(params, device, u.dtype)
    c = consts_of(spec)
    if rs.is_gradient:
        res = lif_bptt_estimate(
            p, c, u, y, m, loss, k=rs.option("k"),
            generator=torch_generator(seed, "estimate", device=device),
        )  # fmt: skip
    elif rs.mechanism == "online":  # one pass at fixed weights (lif/online.py)
        from ....rules import make_online

        handle = LIFOnlineHandle(
            make_online(rs, "lif", spec.dt), rs.option("sigma"), 1, u.shape[1], spec.dt
        )
        try:
            res = handle.estimate(
                p, c, u, y, m, loss, torch_generator(seed, "estimate", device=device)
            )
        except ValueError as exc:  # e.g. precise spiking for a rule that needs ψ: one line
            raise SpecError(str(exc)) from None
    else:
        try:
            res = lif_perturbation_estimate(
                p, c, make_rule(rs, network="lif"), u, y, m, loss,
                torch_generator(seed, "estimate", device=device),
                sigma=rs.sigma, K=rs.K, baseline=rs.baseline, delta=spec.delta,
            )  # fmt: skip
        except ValueError as exc:  # an option the LIF driver does not support: one line
            raise SpecError(str(exc)) from None
    return {k: v.detach().cpu().double().numpy() for k, v in res.grads.items() if k in LEARNABLE}


def trainer_estimate(
    trainer: Any,
    batch: Any,
    u: Tensor,
    y: Tensor,
    m: Tensor | None,
    loss_kind: str,
    decor: tuple[str, ...],
) -> PassResult:
    """One update's estimate for :class:`.trainer.Trainer` on a LIF model."""
    rs, spec = trainer.protocol.rule, trainer.protocol.model
    p, c = trainer.params(), trainer.consts
    if trainer.online is not None:
        types = getattr(trainer.task, "trial_type", None)
        types = None if types is None else torch.as_tensor(types(batch), device=u.device)
        return trainer.online.estimate(p, c, u, y, m, loss_kind, trainer.gen_noise, types, decor)
    if trainer.rule is None:
        return lif_bptt_estimate(
            p, c, u, y, m, loss_kind, k=rs.option("k"),
            generator=trainer.gen_noise, decor=decor,
        )  # fmt: skip
    return lif_perturbation_estimate(
        p, c, trainer.rule, u, y, m, loss_kind, trainer.gen_noise,
        sigma=rs.sigma, K=rs.K, baseline=rs.baseline, decor=decor, delta=spec.delta,
    )  # fmt: skip


def trainer_outputs(trainer: Any, u: Tensor) -> Tensor:
    """Unperturbed outputs on a fixed background-noise realisation (see
    :func:`.rollout.eval_outputs`)."""
    return eval_outputs(trainer.params(), trainer.consts, u, seed=trainer.protocol.seed)


__all__ = [
    "consts_of",
    "lif_estimate",
    "simulate_lif_torch",
    "trainer_estimate",
    "trainer_outputs",
]
