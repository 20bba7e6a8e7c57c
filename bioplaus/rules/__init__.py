"""Learning rules (DESIGN §2). Each returns an estimate of ∂L in autograd's sign and scale.

Every rule is one file here that defines its options model (a :class:`RuleSpec` subclass),
its math, and registers itself (:func:`bioplaus.registry.register_rule`) with the mechanism
that runs it. ``RuleSpec(name=..., **options)`` validates a ``[rule]`` table with the named
rule's own options; ``make_rule`` builds the estimator a driver runs.
"""

from __future__ import annotations

from ..registry import RULES as REGISTRY
from ..registry import register_rule, rule_entry
from . import (  # noqa: F401
    eprop,
    gradient,
    node_perturbation,
    rflo,
    three_factor,
    weight_perturbation,
)
from .gradient import GradientOptions, TBPTTOptions
from .layered import LayeredNodePerturbation, LayeredWeightPerturbation
from .node_perturbation import NodePerturbation, NodePerturbationOptions
from .options import PairedPassOptions, RuleOptionError, RuleSpec, rule_options
from .three_factor import ThreeFactor, ThreeFactorOptions
from .weight_perturbation import WeightPerturbation, WeightPerturbationOptions

#: the built-in rule names (the registry, :data:`bioplaus.registry.RULES`, also holds users')
RULES = tuple(REGISTRY.names())
GRADIENT_RULES = tuple(n for n, e in REGISTRY.items() if e.mechanism == "gradient")


def make_rule(spec: RuleSpec, layered: bool = False, network: str | None = None):
    """The estimator of a paired-pass rule for a network type (``rate``, ``lif``, or ``mlp``:
    ``layered=True`` is the same as ``network="mlp"``)."""
    network = network or ("mlp" if layered else "rate")
    entry = spec.entry
    if entry.mechanism == "gradient":
        raise ValueError(f"rule {spec.name!r} is computed by autograd, not a perturbation rule")
    if entry.mechanism == "online":
        raise ValueError(
            f"rule {spec.name!r} is an online rule: its driver is make_online's "
            "(bp.estimate and bp.run run it)"
        )
    if network not in entry.networks:
        raise ValueError(
            f"rule {spec.name!r} is written for {list(entry.networks)} networks, not {network!r}"
        )
    return entry.build(spec, network)


def make_three_factor(spec: RuleSpec, dt: float) -> ThreeFactor:
    """The online rule of a spec, for a rate model with step ``dt`` (seconds)."""
    return make_online(spec, "rate", dt)


def make_online(spec: RuleSpec, network: str, dt: float):
    """The online rule object of ``spec`` for a network type and step ``dt``."""
    if spec.entry.mechanism != "online":
        raise ValueError(f"rule {spec.name!r} is not an online rule")
    return spec.entry.build(spec, network, dt)


__all__ = [
    "GRADIENT_RULES",
    "RULES",
    "GradientOptions",
    "LayeredNodePerturbation",
    "LayeredWeightPerturbation",
    "NodePerturbation",
    "NodePerturbationOptions",
    "PairedPassOptions",
    "RuleOptionError",
    "RuleSpec",
    "TBPTTOptions",
    "ThreeFactor",
    "ThreeFactorOptions",
    "WeightPerturbation",
    "WeightPerturbationOptions",
    "make_online",
    "make_rule",
    "make_three_factor",
    "register_rule",
    "rule_entry",
    "rule_options",
]
