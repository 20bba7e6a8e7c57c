"""The rate network type: τ dx/dt = −x + W_rec φ(x) + W_in u + b + σ ξ, o = W_out φ(x) + b_out.

Registered as ``"rate"``. Parameters: :func:`bioplaus.params.init_rate_params`; on torch,
``backends/torch/rate/``: the pure step and readout (``__init__.py``), the time loops
(``rollout.py``), BPTT (``bptt.py``), its paired-pass perturbations and entry point
(``perturb.py``, ``perturb_fast.py``) and online object and handle (``online.py``) for the
shared drivers; brian2: ``backends/brian2/rate.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..backends.torch.rate import RateParams, consts_of, to_numpy, to_torch
from ..backends.torch.rate.bptt import bptt_estimate
from ..backends.torch.rate.online import OnlineHandle
from ..backends.torch.rate.perturb import perturbation_estimate
from ..backends.torch.rate.rollout import noise_source, rollout
from ..loss import LOSSES, mean_loss
from ..params import LEARNABLE, check_params, check_rnn_params, init_rate_params
from ..random import torch_generator
from ..registry import TrainerHooks, register_network
from ..rules import make_online, make_rule
from ..spec import RateSpec, SpecError
from ..validate import RATE_OPTION_LIMITS, check_inputs, check_targets, rnn_memory

Tensor = torch.Tensor


def sequence_data(
    spec: Any, params: dict, inputs: Any, targets: Any, mask: Any, loss: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """``bp.estimate``'s data of a recurrent network (rate, LIF): the loss name (default
    ``mse``), inputs [T, B, n_in], targets [T, B, n_out], mask [T, B] as float64, and the
    parameters' shapes checked."""
    loss = "mse" if loss is None else loss
    if loss not in LOSSES:
        raise SpecError(f"loss: unknown loss {loss!r} (choose from {list(LOSSES)})")
    inputs = check_inputs(spec, inputs)
    targets, mask = check_targets(spec, inputs, targets, mask)
    check_params(spec, params)
    return inputs, targets, mask, loss


def estimate(
    rs: Any, spec: Any, params: dict, inputs: Any, targets: Any, seed: int, mask: Any,
    loss: str | None, device: str, dtype: torch.dtype,
) -> dict[str, np.ndarray]:  # fmt: skip
    """``bp.estimate`` on a rate network: BPTT / TBPTT(k), an online rule's one pass at
    fixed weights, or the paired clean/noisy passes of a perturbation rule."""
    inputs, targets, mask, loss = sequence_data(spec, params, inputs, targets, mask, loss)
    p = to_torch(params, device, dtype)
    c = consts_of(spec)
    u = torch.as_tensor(inputs, device=device, dtype=dtype)
    y = torch.as_tensor(targets, device=device, dtype=dtype)
    m = None if mask is None else torch.as_tensor(mask, device=device, dtype=dtype)
    if rs.is_gradient:
        res = bptt_estimate(p, c, u, y, m, loss, k=rs.option("k"))
    elif rs.mechanism == "online":  # one pass at fixed weights (backends/torch/online.py)
        rule_obj = make_online(rs, "rate", spec.dt)
        handle = OnlineHandle(rule_obj, rs.option("sigma"), 1, u.shape[1], spec.dt)
        res = handle.estimate(p, c, u, y, m, loss, torch_generator(seed, "estimate", device=device))
    else:
        res = perturbation_estimate(
            p,
            c,
            make_rule(rs),
            u,
            y,
            m,
            loss,
            torch_generator(seed, "estimate", device=device),
            sigma=rs.sigma,
            K=rs.K,
            baseline=rs.baseline,
        )
    return {k: v.detach().cpu().double().numpy() for k, v in res.grads.items() if k in LEARNABLE}


def simulate(
    spec: Any, inputs: np.ndarray, params: dict, backend: str, noise: np.ndarray | None,
    seed: int, x0: np.ndarray | None, device: str, dtype: str, **options: Any,
) -> Any:  # fmt: skip
    """States x [T, B, N] of ``bp.simulate`` on ``backend`` (torch: a tensor of ``dtype``;
    brian2: a numpy array)."""
    if backend == "torch":
        if options:
            raise SpecError(f"{next(iter(options))}: unknown option of the torch back-end")
        return _simulate_torch(spec, inputs, params, noise, seed, x0, device, dtype)
    if backend == "brian2":
        from ..backends.brian2.rate import simulate_rate

        try:
            return simulate_rate(spec, inputs, params, noise=noise, seed=seed, x0=x0, **options)
        except (ValueError, TypeError) as exc:  # bad backend option: one line, key named
            raise SpecError(str(exc)) from None
    raise SpecError(f"backend: unknown backend {backend!r} (choose from ['torch', 'brian2'])")


def _simulate_torch(spec, inputs, params, noise, seed, x0, device, dtype) -> Tensor:
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    p = to_torch(params, device, tdtype)
    u = torch.as_tensor(inputs, device=device, dtype=tdtype)
    T, B, _ = inputs.shape
    xi = noise_source(
        (B, spec.n_rec),
        noise=None if noise is None else torch.as_tensor(noise, device=device, dtype=tdtype),
        generator=torch_generator(seed, "simulate", device=device) if spec.sigma > 0 else None,
        device=device,
        dtype=tdtype,
    )
    x0_t = None if x0 is None else torch.as_tensor(x0, device=device, dtype=tdtype)
    with torch.no_grad():
        out = rollout(p, consts_of(spec), u, xi, x0=x0_t, keep_outputs=False)
    return out.x


# -- the one trainer's hooks ----------------------------------------------------------------
#: the learnable parameters of a recurrent network (the optimiser's) and its decorrelating D
WEIGHTS = ("W_in", "W_rec", "W_out", "b", "b_out")
DECOR = ("D_in", "D_rec")


def trainer_tensors(
    spec: Any, params: dict, device: torch.device, dtype: torch.dtype
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """numpy parameters → the trainer's named tensors: weights W_in, W_rec, W_out, b, b_out
    and decorrelation D_in, D_rec (those present)."""
    p = to_torch(params, device, dtype)
    weights = {k: getattr(p, k) for k in WEIGHTS if getattr(p, k) is not None}
    return weights, {k: getattr(p, k) for k in DECOR if getattr(p, k) is not None}


def trainer_pack(spec: Any, weights: dict[str, Tensor], decor: dict[str, Tensor]) -> RateParams:
    """The trainer's named tensors → :class:`RateParams` (detached)."""
    return RateParams(**{k: v.detach() for k, v in weights.items()}, **decor)


def trainer_data(t: Any, batch: Any) -> tuple[Tensor, Tensor, Tensor | None]:
    """A task batch → u [T, B, n_in], y [T, B, n_out], m [T, B] (or None) on the trainer's
    device and dtype."""
    return t._tensor(batch.inputs), t._tensor(batch.targets), t._tensor(batch.mask)


def trainer_eval_loss(loss: str, o: np.ndarray, batch: Any) -> Tensor:
    """L = Σ m ℓ(o, y) / Σ m of clean outputs o [T, B, n_out] (the mean without a mask)."""
    m = None if batch.mask is None else torch.as_tensor(batch.mask)
    return mean_loss(loss, torch.as_tensor(o), torch.as_tensor(batch.targets), m)


def _estimate(
    t: Any, p: RateParams, u: Tensor, y: Tensor, m: Tensor | None, generator: Any,
    decor: tuple = (),
) -> Any:  # fmt: skip
    """The rule's estimate of ∂L at ``p`` (BPTT / TBPTT(k) by autograd, else the paired
    passes of ``t.rule`` with noise from ``generator``)."""
    rs = t.protocol.rule
    if t.rule is None:
        return bptt_estimate(p, t.consts, u, y, m, t.task.loss, k=rs.option("k"), decor=decor)
    return perturbation_estimate(
        p, t.consts, t.rule, u, y, m, t.task.loss, generator,
        sigma=rs.sigma, K=rs.K, baseline=rs.baseline, decor=decor,
    )  # fmt: skip


def _trainer_estimate(
    t: Any, batch: Any, u: Tensor, y: Tensor, m: Tensor | None, loss: str, decor: tuple
) -> Any:
    """One update's estimate: the online rule's pass, or BPTT / TBPTT(k) by autograd, else
    the paired passes."""
    p = t.params()
    if t.online is not None:
        types = getattr(t.task, "trial_type", None)
        return t.online.estimate(
            p,
            t.consts,
            u,
            y,
            m,
            loss,
            t.gen_noise,
            types=None if types is None else torch.as_tensor(types(batch), device=t.device),
            decor=decor,
        )
    return _estimate(t, p, u, y, m, t.gen_noise, decor)


def _trainer_outputs(t: Any, u: Tensor) -> Tensor:
    """Clean (σ = 0) outputs o [T, B, n_out] of the trainer's weights."""
    with torch.no_grad():
        out = rollout(t.params(), t.consts, u, noise_source((0,)), keep_states=False)
    return out.o


def _trainer_alignment(t: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The rule's estimate (noise from ``t.gen_align``; an online rule's pass from its
    current state, unchanged) and the exact full-BPTT gradient of the clean network on the
    trainer's fixed training batch."""
    u, y, m = trainer_data(t, t.train_eval_batch)
    p = t.params()
    g = bptt_estimate(p, t.consts, u, y, m, t.task.loss).grads
    if t.online is not None:
        e = t.online.probe().estimate(p, t.consts, u, y, m, t.task.loss, t.gen_align).grads
    else:
        e = _estimate(t, p, u, y, m, t.gen_align).grads
    return e, g


HOOKS = TrainerHooks(
    consts=consts_of,
    make_online=OnlineHandle.of_protocol,  # the rate network's object in the one online loop
    estimate=_trainer_estimate,
    outputs=_trainer_outputs,
    tensors=trainer_tensors,
    pack=trainer_pack,
    to_numpy=to_numpy,
    data=trainer_data,
    eval_loss=trainer_eval_loss,
    alignment=_trainer_alignment,
    align_key=lambda k: k in ("hidden", "readout", "all"),  # RNN_LAYERS' groups and all
)

NETWORK = register_network(  # the one Trainer, reference rule bptt, state x
    "rate",
    init_params=init_rate_params,
    check_params=check_rnn_params,
    estimate=estimate,
    simulate=simulate,
    hooks=HOOKS,
    spec=RateSpec,
    memory=rnn_memory(2),  # x, r per unit and pass
    option_limits=RATE_OPTION_LIMITS,
    # trials and evaluation on brian2 (the trainer layer's adapter, imported when a run starts)
    backend_hooks={"brian2": "bioplaus.train.brian2_trainer:HOOKS"},
    summary="rate RNN: tau dx/dt = -x + W_rec phi(x) + W_in u + b",
)
