"""What the brian2 back-end can run, declared without importing brian2 (or torch).

Protocol validation (:mod:`bioplaus.protocol`) asks this declaration; nothing here imports
a simulator, a trainer or a protocol type, so the check is fast and has no import circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: network kind → what ``bp.simulate(..., backend="brian2")`` runs
SIMULATES: tuple[str, ...] = ("rate", "lif")

#: network kind → the rules a ``backend = "brian2"`` protocol trains
CAPABILITIES: Mapping[str, tuple[str, ...]] = {"rate": ("three-factor", "anp")}

#: rules brian2 trains (the rate network is the only kind it trains)
BRIAN2_RULES: tuple[str, ...] = CAPABILITIES["rate"]

#: rule → (the values of its options that brian2's module for it runs, the refusal's text)
RULE_OPTIONS: Mapping[str, tuple[Mapping[str, tuple[Any, ...]], str]] = {
    "anp": (
        {"K": (1,), "baseline": ("clean",), "norm": ("joint",), "signal": (None, "local")},
        "ANP is time-local, joint norm, K = 1, clean baseline",
    ),
}


def can_train(kind: str, rule: str) -> bool:
    """Whether brian2 trains a ``kind`` network with rule ``rule`` (see :data:`CAPABILITIES`)."""
    return rule in CAPABILITIES.get(kind, ())


def check_brian2_protocol(protocol: Any) -> None:
    """Raise ValueError (key: problem) unless ``protocol`` (a ProtocolSpec) can train on brian2."""
    m, rs = protocol.model, protocol.rule
    if m.kind not in CAPABILITIES:
        raise ValueError(f"backend: 'brian2' trains rate models (got model.kind {m.kind!r})")
    if not can_train(m.kind, rs.name):
        raise ValueError(f"backend: 'brian2' trains rules {list(BRIAN2_RULES)} (got {rs.name!r})")
    if m.bias or m.out_bias:
        raise ValueError("backend: 'brian2' learning needs model.bias = out_bias = false")
    allowed, what = RULE_OPTIONS.get(rs.name, ({}, ""))
    if any(getattr(rs, key) not in values for key, values in allowed.items()):
        raise ValueError(f"backend: 'brian2' {what}")
    if not protocol.train.device.startswith("cpu"):
        raise ValueError("train.device: backend 'brian2' runs on the CPU")
