"""``bp.estimate``: a rule's estimate of ∂L at given weights, as a dict like ``params``."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import ValidationError

from .loss import LOSSES
from .params import LEARNABLE, Params, check_params
from .random import torch_generator
from .rules import RuleSpec, make_rule
from .simulate import check_inputs
from .spec import ModelSpec, SpecError, format_validation_error

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def rule_spec(rule: str | RuleSpec, options: dict) -> RuleSpec:
    """Validate a rule name and its options into a :class:`RuleSpec` (SpecError on bad input)."""
    if isinstance(rule, RuleSpec):
        return rule.model_copy(update=options) if options else rule
    try:
        return RuleSpec(name=rule, **options)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, "rule")) from None


def check_targets(
    spec: ModelSpec, inputs: np.ndarray, targets, mask
) -> tuple[np.ndarray, np.ndarray | None]:
    T, B, _ = inputs.shape
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape != (T, B, spec.n_out):
        raise SpecError(f"targets: expected shape {(T, B, spec.n_out)}, got {targets.shape}")
    if not np.all(np.isfinite(targets)):
        raise SpecError("targets: contains NaN or Inf")
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float64)
        if mask.shape != (T, B):
            raise SpecError(f"mask: expected shape {(T, B)}, got {mask.shape}")
    return targets, mask


def estimate(
    rule: str | RuleSpec,
    spec: ModelSpec,
    params: Params,
    inputs: np.ndarray,
    targets: np.ndarray,
    seed: int = 0,
    mask: np.ndarray | None = None,
    loss: str = "mse",
    device: str = "cpu",
    dtype: str = "float32",
    **options,
) -> dict[str, np.ndarray]:
    """Estimate ∂L/∂θ for every learnable parameter with ``rule`` (DESIGN §2).

    ``options`` are the rule's (``sigma``, ``signal``, ``K``, ``baseline``, ``scale``,
    ``norm``, ``k``). The noise of perturbation rules comes from a generator seeded by
    ``seed``. Returns float64 numpy arrays keyed like ``params`` (W_in, W_rec, W_out, b, b_out).
    """
    from .backends.torch.bptt import bptt_estimate
    from .backends.torch.perturb import perturbation_estimate
    from .backends.torch.rate import consts_of, to_torch

    rs = rule_spec(rule, options)
    if loss not in LOSSES:
        raise SpecError(f"loss: unknown loss {loss!r} (choose from {list(LOSSES)})")
    if dtype not in DTYPES:
        raise SpecError(f"dtype: must be one of {list(DTYPES)} (got {dtype!r})")
    inputs = check_inputs(spec, inputs)
    targets, mask = check_targets(spec, inputs, targets, mask)
    check_params(spec, params)
    td = DTYPES[dtype]
    p = to_torch(params, device, td)
    c = consts_of(spec)
    u = torch.as_tensor(inputs, device=device, dtype=td)
    y = torch.as_tensor(targets, device=device, dtype=td)
    m = None if mask is None else torch.as_tensor(mask, device=device, dtype=td)
    if rs.is_gradient:
        res = bptt_estimate(p, c, u, y, m, loss, k=rs.k if rs.name == "tbptt" else None)
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
