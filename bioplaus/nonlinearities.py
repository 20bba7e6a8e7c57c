"""The table of rate nonlinearities φ (DESIGN §1), shared by the back-ends and analysis.

    tanh     φ(x) = tanh x            (default)
    relu     φ(x) = max(x, 0)
    softplus φ(x) = log(1 + eˣ)
    sigmoid  φ(x) = 1 / (1 + e⁻ˣ)
    linear   φ(x) = x                 (analysis, Ornstein–Uhlenbeck tests)

``PHI`` holds the torch functions, ``PHI_NUMPY`` numpy ones written without overflow (the
brian2 back-end's matmul recurrence and analysis use them). A neutral module: it imports no
other layer of bioplaus, so analysis may use it without importing a back-end.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

PHI: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "softplus": torch.nn.functional.softplus,
    "sigmoid": torch.sigmoid,
    "linear": lambda x: x,
}

PHI_NUMPY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0.0),
    "softplus": lambda v: np.maximum(v, 0.0) + np.log1p(np.exp(-np.abs(v))),
    "sigmoid": lambda v: np.exp(np.minimum(v, 0.0)) / (1.0 + np.exp(-np.abs(v))),
    "linear": lambda v: v,
}

NAMES: tuple[str, ...] = tuple(PHI)
