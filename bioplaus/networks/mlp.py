"""The feed-forward network type: z_{l+1} = f_l(W_l D_l z_l + b_l) on static samples, the
output layer fixing the loss (``identity`` → mse, ``softmax`` → ce).

Registered as ``"mlp"``. Parameters: :mod:`bioplaus.mlp` (W{l}, b{l}, D{l}); the forward
pass, exact gradient and paired-pass driver: ``backends/torch/mlp.py``; its trainer:
:class:`bioplaus.train.mlp_trainer.MLPTrainer`. No dynamics: ``bp.simulate`` refuses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..backends.torch.mlp import mlp_consts, mlp_gradient, mlp_perturbation_estimate, mlp_to_torch
from ..mlp import check_mlp_params, init_mlp_params
from ..params import check_params
from ..random import torch_generator
from ..registry import register_network
from ..rules import make_rule
from ..spec import SpecError
from ..validate import check_mlp_data


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
    if rs.name == "tbptt":
        raise SpecError("rule: 'tbptt' needs a recurrent model (use 'bp' for an MLP)")
    if "mlp" not in rs.entry.networks:
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


NETWORK = register_network(
    "mlp",
    init_params=init_mlp_params,
    check_params=check_mlp_params,
    estimate=estimate,
    simulate=None,
    trainer="bioplaus.train.mlp_trainer:MLPTrainer",
    state="x",
    reference="bp",
    sequential=False,
    summary="feed-forward network on static samples",
)
