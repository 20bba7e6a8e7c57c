"""Gradient rules: the exact gradient by autograd (BPTT) and its truncation TBPTT(k).

    BPTT     : ∂L/∂θ through every step
    TBPTT(k) : the state's graph is cut every k steps (k = 1: the RNN seed paper's baseline)

They need no rule object: the back-end differentiates its own forward pass.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..registry import register_rule
from .options import RuleSpec


class GradientOptions(RuleSpec):
    """The exact gradient (no options)."""

    name: Literal["bp", "bptt"] = Field(
        description="bp / bptt: the exact gradient by autograd (the same rule)."
    )


class TBPTTOptions(RuleSpec):
    """Truncated BPTT."""

    name: Literal["tbptt"] = Field(description="tbptt: BPTT truncated to k steps.")
    k: int = Field(1, ge=1, description="Truncation length of tbptt, in steps.")


register_rule(
    "bptt", options=GradientOptions, build=None, mechanism="gradient",
    summary="backpropagation through time (exact gradient)",
)  # fmt: skip
register_rule(
    "bp", options=GradientOptions, build=None, mechanism="gradient",
    summary="backpropagation (an alias of bptt)",
)  # fmt: skip
register_rule(
    "tbptt", options=TBPTTOptions, build=None, mechanism="gradient", networks=("rate", "lif"),
    summary="truncated BPTT (k steps)",
)  # fmt: skip
