"""The table of rate nonlinearities φ (DESIGN §1), shared by the back-ends and analysis.

    tanh     φ(x) = tanh x            (default)
    relu     φ(x) = max(x, 0)
    softplus φ(x) = log(1 + eˣ)
    sigmoid  φ(x) = 1 / (1 + e⁻ˣ)
    linear   φ(x) = x                 (analysis, Ornstein–Uhlenbeck tests)

``PHI`` holds the torch functions (the brian2 back-end writes the same functions as
generated-code expressions and numpy functions in its equations table). A neutral module: it
imports no other layer of bioplaus, so analysis may use it without importing a back-end.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

PHI: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "softplus": torch.nn.functional.softplus,
    "sigmoid": torch.sigmoid,
    "linear": lambda x: x,
}

NAMES: tuple[str, ...] = tuple(PHI)
