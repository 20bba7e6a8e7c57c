"""Parameters of the feed-forward network (:class:`~bioplaus.spec.MLPSpec`), as numpy arrays.

Keys, for layers l = 0 … L−1 (L = len(sizes) − 1), shaped like torch.nn.Linear::

    W{l}  [sizes[l+1], sizes[l]]      b{l}  [sizes[l+1]]   (when spec.bias)
    D{l}  [sizes[l], sizes[l]]        (identity, when spec.decorrelate)
"""

from __future__ import annotations

import numpy as np

from .random import numpy_rng
from .spec import MLPSpec
from .validate import check_shapes


def mlp_keys(spec: MLPSpec) -> tuple[list[str], list[str]]:
    """(learnable keys W{l}, b{l} in layer order, decorrelator keys D{l})."""
    learn: list[str] = []
    for l in range(spec.n_layers):
        learn.append(f"W{l}")
        if spec.bias:
            learn.append(f"b{l}")
    decor = [f"D{l}" for l in range(spec.n_layers)] if spec.decorrelate else []
    return learn, decor


def layer_of(key: str) -> int:
    """Layer index of a parameter key ("W2" → 2)."""
    return int(key[1:])


def init_mlp_params(spec: MLPSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Initial weights: W{l} ~ N(0, s²) with s = √(2/fan_in) (he_normal), √(2/(fan_in+fan_out))
    (xavier_normal) or 1/√fan_in (normal); b{l} = 0; D{l} = I. float64."""
    rng = numpy_rng(seed, "init_params")
    p: dict[str, np.ndarray] = {}
    for l in range(spec.n_layers):
        n_in, n_out = spec.sizes[l], spec.sizes[l + 1]
        std = {
            "he_normal": np.sqrt(2.0 / n_in),
            "xavier_normal": np.sqrt(2.0 / (n_in + n_out)),
            "normal": 1.0 / np.sqrt(n_in),
        }[spec.weight_init]
        p[f"W{l}"] = rng.standard_normal((n_out, n_in)) * std
        if spec.bias:
            p[f"b{l}"] = np.zeros(n_out)
        if spec.decorrelate:
            p[f"D{l}"] = np.eye(n_in)
    return p


def check_mlp_params(spec: MLPSpec, params: dict[str, np.ndarray]) -> None:
    """Raise ValueError naming the key if a parameter is missing, unknown or mis-shaped."""
    shapes: dict[str, tuple[int, ...]] = {}
    for l in range(spec.n_layers):
        n_in, n_out = spec.sizes[l], spec.sizes[l + 1]
        shapes[f"W{l}"] = (n_out, n_in)
        shapes[f"b{l}"] = (n_out,)
        shapes[f"D{l}"] = (n_in, n_in)
    check_shapes(params, shapes, mlp_keys(spec)[0])
