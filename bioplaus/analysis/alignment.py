"""Alignment of a rule's estimate with the exact gradient (the multi-layer seed paper's Fig. 1).

    angle(g, ĝ) = arccos( ⟨g, ĝ⟩ / (‖g‖ ‖ĝ‖) )      in degrees (0: same direction, 90: orthogonal)

measured per parameter, per layer (an MLP's W{l} and b{l} flattened together; the rate RNN's
hidden layer [W_in, W_rec, b] and readout [W_out, b_out]) and over all parameters flattened
into one vector (as the authors' PyTorch code, algorithms.md R4).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

RNN_LAYERS = {"hidden": ("W_in", "W_rec", "b"), "readout": ("W_out", "b_out")}


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """arccos of the cosine between two flattened arrays, degrees (nan if either is zero)."""
    x, y = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(x @ y / (nx * ny), -1.0, 1.0))))


def layer_groups(keys: list[str]) -> dict[str, list[str]]:
    """Group parameter keys into layers: MLP W{l}/b{l} → "layer{l}"; RNN → hidden/readout."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        if k[0] in "Wb" and k[1:].isdigit():
            groups.setdefault(f"layer{k[1:]}", []).append(k)
        else:
            name = next((n for n, ks in RNN_LAYERS.items() if k in ks), k)
            groups.setdefault(name, []).append(k)
    return dict(sorted(groups.items()))


def angles(estimate: Mapping[str, np.ndarray], gradient: Mapping[str, np.ndarray]) -> dict:
    """Angles (degrees) between ``estimate`` and ``gradient``: per parameter key, per layer
    and ``all`` (every shared parameter flattened into one vector)."""
    keys = [k for k in gradient if k in estimate]
    out = {k: angle(estimate[k], gradient[k]) for k in keys}
    for name, ks in layer_groups(keys).items():
        out[name] = angle(
            np.concatenate([np.ravel(estimate[k]) for k in ks]),
            np.concatenate([np.ravel(gradient[k]) for k in ks]),
        )
    out["all"] = angle(
        np.concatenate([np.ravel(estimate[k]) for k in keys]),
        np.concatenate([np.ravel(gradient[k]) for k in keys]),
    )
    return out


def alignment(
    rule: str,
    spec,
    params: Mapping[str, np.ndarray],
    inputs: np.ndarray,
    targets: np.ndarray,
    seed: int = 0,
    reference: str | None = None,
    **options,
) -> dict[str, float]:
    """Angle between ``rule``'s estimate (``bp.estimate(rule, …, seed, **options)``) and
    the exact gradient at the same weights and data, per parameter, per layer and ``all``.

    ``reference`` is the exact rule ("bp" for an MLP, "bptt" for the RNN by default; e.g.
    "tbptt" with ``k`` is not accepted here — pass a gradient to :func:`angles` instead)."""
    from ..estimate import estimate
    from ..registry import network_type

    reference = reference or network_type(spec.kind).reference
    common = {k: options.pop(k) for k in ("dtype", "device", "loss", "mask") if k in options}
    est = estimate(rule, spec, params, inputs, targets, seed=seed, **common, **options)
    grad = estimate(reference, spec, params, inputs, targets, **common)
    return angles(est, grad)
