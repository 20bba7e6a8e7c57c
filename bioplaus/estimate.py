"""``bp.estimate``: a rule's estimate of ∂L at given weights, as a dict like ``params``."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import ValidationError

from .loss import LOSSES
from .params import LEARNABLE, Params, check_params
from .random import torch_generator
from .rules import RuleOptionError, RuleSpec, make_online, make_rule, rule_options
from .simulate import check_inputs
from .spec import ModelSpec, SpecError, format_validation_error
from .validate import check_estimate

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def rule_spec(rule: str | RuleSpec, options: dict) -> RuleSpec:
    """Validate a rule name and its options into a :class:`RuleSpec` (SpecError on bad input)."""
    if isinstance(rule, RuleSpec):  # re-validated with the options given here
        data = {**rule.model_dump(), **options}
    elif isinstance(rule, str):
        data = {"name": rule, **options}
    else:
        raise SpecError(f"rule: expected a rule name or a bp.RuleSpec (got {type(rule).__name__})")
    try:
        return rule_options(data)
    except RuleOptionError as exc:
        raise SpecError(f"rule.{exc.key}: {exc.problem}") from None
    except ValidationError as err:
        raise SpecError(format_validation_error(err, None, prefix="rule.")) from None


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


def check_mlp_data(spec, inputs, targets, mask) -> tuple[np.ndarray, np.ndarray]:
    """MLP data: inputs [B, n_in] (or [1, B, n_in], a T = 1 sequence as tasks produce) and
    targets [B, n_out] (or [1, B, n_out]) → float64 [B, ·]."""
    if mask is not None:
        raise SpecError("mask: a feed-forward model scores every sample (pass mask=None)")
    out = []
    for name, arr, n in (("inputs", inputs, spec.n_in), ("targets", targets, spec.n_out)):
        a = np.asarray(arr, dtype=np.float64)
        if a.ndim == 3 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 2 or a.shape[1] != n or a.shape[0] == 0:
            raise SpecError(f"{name}: expected shape [B, {n}] or [1, B, {n}], got {np.shape(arr)}")
        if not np.all(np.isfinite(a)):
            raise SpecError(f"{name}: contains NaN or Inf")
        out.append(a)
    if out[0].shape[0] != out[1].shape[0]:
        raise SpecError(
            f"targets: batch {out[1].shape[0]} does not match inputs' batch {out[0].shape[0]}"
        )
    return out[0], out[1]


def _estimate_mlp(rs: RuleSpec, spec, params, inputs, targets, seed, mask, loss, device, td):
    from .backends.torch.mlp import (
        mlp_consts,
        mlp_gradient,
        mlp_perturbation_estimate,
        mlp_to_torch,
    )

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
    p = mlp_to_torch(params, spec.n_layers, device, td)
    c = mlp_consts(spec)
    x = torch.as_tensor(u, device=device, dtype=td)
    yt = torch.as_tensor(y, device=device, dtype=td)
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


def estimate(
    rule: str | RuleSpec,
    spec: ModelSpec,
    params: Params,
    inputs: np.ndarray,
    targets: np.ndarray,
    seed: int = 0,
    mask: np.ndarray | None = None,
    loss: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    allow_nonfinite: bool = False,
    **options,
) -> dict[str, np.ndarray]:
    """Estimate ∂L/∂θ for every learnable parameter with ``rule`` (DESIGN §2).

    ``options`` are the rule's (``sigma``, ``signal``, ``K``, ``baseline``, ``scale``,
    ``norm``, ``k``). The noise of perturbation rules comes from a generator seeded by
    ``seed``. Returns float64 numpy arrays keyed like ``params`` (W_in, W_rec, W_out, b, b_out).
    An online rule (e-prop, RFLO, three-factor) returns the update of one pass over the batch
    at the given weights, −ΔW/η (e-prop and RFLO: their estimate of ∂L; three-factor: from a
    fresh reward baseline, so the first trial of each type has M = 0).

    Rate RNN: inputs [T, B, n_in], targets [T, B, n_out]; ``loss`` "mse" (default) or "ce".
    MLP (:class:`~bioplaus.spec.MLPSpec`): inputs [B, n_in] and targets [B, n_out] (a
    leading T = 1 axis is accepted and dropped); the loss follows ``spec.output``; returns
    W{l}, b{l}. ``bp`` is the exact gradient (an alias of ``bptt``).
    """
    from .backends.torch.bptt import bptt_estimate
    from .backends.torch.perturb import perturbation_estimate
    from .backends.torch.rate import consts_of, to_torch

    check_estimate(rule, spec, params, inputs, targets, seed, mask, device, dtype, options, allow_nonfinite)  # fmt: skip  # noqa: E501
    rs = rule_spec(rule, options)
    if dtype not in DTYPES:
        raise SpecError(f"dtype: must be one of {list(DTYPES)} (got {dtype!r})")
    if spec.kind == "mlp":
        return _estimate_mlp(
            rs, spec, params, inputs, targets, seed, mask, loss, device, DTYPES[dtype]
        )
    loss = "mse" if loss is None else loss
    if loss not in LOSSES:
        raise SpecError(f"loss: unknown loss {loss!r} (choose from {list(LOSSES)})")
    if dtype not in DTYPES:
        raise SpecError(f"dtype: must be one of {list(DTYPES)} (got {dtype!r})")
    inputs = check_inputs(spec, inputs)
    targets, mask = check_targets(spec, inputs, targets, mask)
    check_params(spec, params)
    td = DTYPES[dtype]
    if spec.kind == "lif":  # spiking network: backends/torch/lif_train.py
        from .backends.torch.lif_train import lif_estimate

        u, y = (torch.as_tensor(a, device=device, dtype=td) for a in (inputs, targets))
        m = None if mask is None else torch.as_tensor(mask, device=device, dtype=td)
        return lif_estimate(rs, spec, params, u, y, m, loss, seed, device)
    p = to_torch(params, device, td)
    c = consts_of(spec)
    u = torch.as_tensor(inputs, device=device, dtype=td)
    y = torch.as_tensor(targets, device=device, dtype=td)
    m = None if mask is None else torch.as_tensor(mask, device=device, dtype=td)
    if rs.is_gradient:
        res = bptt_estimate(p, c, u, y, m, loss, k=rs.option("k"))
    elif rs.mechanism == "online":  # one pass at fixed weights (backends/torch/online.py)
        from .backends.torch.online import OnlineHandle

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
