"""``bp.estimate``: a rule's estimate of ∂L at given weights, as a dict like ``params``."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import ValidationError

from .params import Params
from .registry import network_type
from .rules import RuleOptionError, RuleSpec, rule_options
from .spec import ModelSpec, SpecError, format_validation_error
from .validate import check_estimate, check_inputs, check_mlp_data, check_targets

__all__ = ["check_inputs", "check_mlp_data", "check_targets", "estimate", "rule_spec"]

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

    After the argument checks the network type's ``estimate`` runs
    (``bp.network_type(spec.kind)``, ``bioplaus/networks/<kind>.py``).
    """
    check_estimate(rule, spec, params, inputs, targets, seed, mask, device, dtype, options, allow_nonfinite)  # fmt: skip  # noqa: E501
    rs = rule_spec(rule, options)
    if dtype not in DTYPES:
        raise SpecError(f"dtype: must be one of {list(DTYPES)} (got {dtype!r})")
    network = network_type(spec.kind)  # bioplaus/networks/<kind>.py
    return network.estimate(rs, spec, params, inputs, targets, seed, mask, loss, device,
                            DTYPES[dtype])  # fmt: skip
