"""The feed-forward network type: z_{l+1} = f_l(W_l D_l z_l + b_l) on static samples, the
output layer fixing the loss (``identity`` → mse, ``softmax`` → ce).

Registered as ``"mlp"``. Parameters: :mod:`bioplaus.mlp` (W{l}, b{l}, D{l}); the forward
pass, exact gradient and paired-pass driver: ``backends/torch/mlp.py``; it trains on the one
:class:`bioplaus.train.trainer.Trainer` through :data:`HOOKS` (static samples, T = 1
dropped; D_l ← D_l − η_D offdiag(⟨ẑ_l ẑ_lᵀ⟩) D_l on every layer; ``rule.alignment`` logs
align_layer{l} and align_all). No dynamics: ``bp.simulate`` refuses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..backends.torch.mlp import (
    MLPParams,
    mlp_consts,
    mlp_gradient,
    mlp_perturbation_estimate,
    mlp_to_numpy,
    mlp_to_torch,
    predict,
)
from ..loss import step_loss
from ..mlp import check_mlp_params, init_mlp_params
from ..params import check_params
from ..random import torch_generator
from ..registry import TrainerHooks, register_network
from ..rules import make_rule
from ..spec import MLPSpec, SpecError
from ..validate import check_mlp_data, mlp_memory

Tensor = torch.Tensor


def estimate(
    rs: Any, spec: Any, params: dict, inputs: Any, targets: Any, seed: int, mask: Any,
    loss: str | None, device: str, dtype: torch.dtype,
) -> dict[str, np.ndarray]:  # fmt: skip
    """``bp.estimate`` on an MLP: inputs [B, n_in], targets [B, n_out] (a leading T = 1 axis
    is dropped); the exact gradient (``bp``) or a perturbation rule's paired passes."""
    if loss is not None and loss != spec.loss:
        raise SpecError(
            f"loss: the model's output {spec.output!r} fixes the loss to {spec.loss!r} "
            f"(got {loss!r})"
        )
    if "mlp" not in rs.entry.networks:
        if rs.is_gradient:  # a recurrent gradient (tbptt): the MLP's exact one is bp
            raise SpecError(f"rule: {rs.name!r} needs a recurrent model (use 'bp' for an MLP)")
        raise SpecError(f"rule: {rs.name!r} is not written for feed-forward (mlp) models")
    u, y = check_mlp_data(spec, inputs, targets, mask)
    check_params(spec, params)
    p = mlp_to_torch(params, spec.n_layers, device, dtype)
    c = mlp_consts(spec)
    x = torch.as_tensor(u, device=device, dtype=dtype)
    yt = torch.as_tensor(y, device=device, dtype=dtype)
    if rs.is_gradient:
        res = mlp_gradient(p, c, x, yt)
    else:
        res = mlp_perturbation_estimate(
            p,
            c,
            make_rule(rs, layered=True),
            x,
            yt,
            torch_generator(seed, "estimate", device=device),
            sigma=rs.sigma,
            K=rs.K,
            baseline=rs.baseline,
        )
    return {k: v.detach().cpu().double().numpy() for k, v in res.grads.items()}


# -- the one trainer's hooks ----------------------------------------------------------------
def _check(protocol: Any, task: Any) -> None:
    """The model's output fixes the loss, which must be the task's; the rule must be written
    for feed-forward models."""
    spec, rs = protocol.model, protocol.rule
    if task.loss != spec.loss:
        raise ValueError(
            f"model.output: {spec.output!r} uses loss {spec.loss!r} but task "
            f"{task.name!r} is scored with {task.loss!r}"
        )
    if "mlp" not in rs.entry.networks:
        raise ValueError(f"rule {rs.name!r} needs a recurrent model")


def _make_online(protocol: Any, task: Any) -> Any:
    """No online driver for a feed-forward model (no time within a sample)."""
    raise ValueError(f"rule {protocol.rule.name!r} needs a recurrent model")


def _static(a: np.ndarray) -> np.ndarray:
    """[1, B, n] (a T = 1 task batch) → [B, n]."""
    a = np.asarray(a)
    if a.ndim == 3:
        if a.shape[0] != 1:
            raise ValueError(
                f"a feed-forward model needs static samples (T = 1), got T = {a.shape[0]}"
            )
        return a[0]
    return a


def _tensors(
    spec: Any, params: dict, device: torch.device, dtype: torch.dtype
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """numpy parameters → the trainer's named tensors: weights W{l}, b{l} and decorrelation
    D{l} (those present)."""
    p = mlp_to_torch(params, spec.n_layers, device, dtype)
    weights: dict[str, Tensor] = {}
    for l in range(spec.n_layers):
        weights[f"W{l}"] = p.W[l]
        if p.b[l] is not None:
            weights[f"b{l}"] = p.b[l]
    return weights, {f"D{l}": p.D[l] for l in range(spec.n_layers) if p.D[l] is not None}


def _pack(spec: Any, weights: dict[str, Tensor], decor: dict[str, Tensor]) -> MLPParams:
    """The trainer's named tensors → :class:`MLPParams` (detached)."""
    L = range(spec.n_layers)
    return MLPParams(
        [weights[f"W{l}"].detach() for l in L],
        [weights[f"b{l}"].detach() if f"b{l}" in weights else None for l in L],
        [decor.get(f"D{l}") for l in L],
    )


def _data(t: Any, batch: Any) -> tuple[Tensor, Tensor, None]:
    """A task batch (T = 1) → static samples x [B, n_in], y [B, n_out]; no mask."""
    x, y = (torch.as_tensor(_static(a), device=t.device, dtype=t.dtype)
            for a in (batch.inputs, batch.targets))  # fmt: skip
    return x, y, None


def _estimate(t: Any, x: Tensor, y: Tensor, generator: Any, decor: bool) -> Any:
    """The exact gradient (``bp``) or the rule's paired passes with noise from
    ``generator``; ``decor``: also ⟨ẑ_l ẑ_lᵀ⟩ of the clean pass for the D_l update."""
    rs = t.protocol.rule
    if t.rule is None:
        return mlp_gradient(t.params(), t.consts, x, y, decor=decor)
    return mlp_perturbation_estimate(
        t.params(), t.consts, t.rule, x, y, generator,
        sigma=rs.sigma, K=rs.K, baseline=rs.baseline, decor=decor,
    )  # fmt: skip


def _trainer_estimate(
    t: Any, batch: Any, x: Tensor, y: Tensor, m: None, loss: str, decor: tuple
) -> Any:
    """One update's estimate at the current W_l, b_l, D_l (noise from ``t.gen_noise``)."""
    return _estimate(t, x, y, t.gen_noise, bool(decor))


def _outputs(t: Any, x: Tensor) -> Tensor:
    """Clean outputs [1, B, n_out] (the task's T = 1 layout)."""
    return predict(t.params(), t.consts, x)[None]


def _eval_loss(loss: str, o: np.ndarray, batch: Any) -> Tensor:
    """L = mean over samples of ℓ(o, y)."""
    return step_loss(loss, torch.as_tensor(o), torch.as_tensor(np.asarray(batch.targets))).mean()


def _alignment(t: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]] | None:
    """The rule's estimate (noise from ``t.gen_align``) and the exact gradient on the
    trainer's fixed training batch; nothing for the exact gradient itself (``bp``)."""
    if t.rule is None:
        return None
    x, y, _ = _data(t, t.train_eval_batch)
    g = mlp_gradient(t.params(), t.consts, x, y).grads
    return _estimate(t, x, y, t.gen_align, False).grads, g


HOOKS = TrainerHooks(
    consts=mlp_consts,
    make_online=_make_online,
    estimate=_trainer_estimate,
    outputs=_outputs,
    tensors=_tensors,
    pack=_pack,
    to_numpy=mlp_to_numpy,
    data=_data,
    eval_loss=_eval_loss,
    alignment=_alignment,
    align_key=lambda k: k.startswith("layer") or k == "all",  # align_layer{l}, align_all
    check=_check,
)

NETWORK = register_network(  # the one Trainer
    "mlp",
    init_params=init_mlp_params,
    check_params=check_mlp_params,
    estimate=estimate,
    simulate=None,
    hooks=HOOKS,
    spec=MLPSpec,
    memory=mlp_memory,
    preset_keys={"decorrelate_rec": "decorrelate"},  # DANP decorrelates every layer input
    state="x",
    reference="bp",
    sequential=False,
    summary="feed-forward network on static samples",
)
