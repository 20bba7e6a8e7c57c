"""The table of rate nonlinearities φ (DESIGN §1), shared by the back-ends and analysis.

    tanh     φ(x) = tanh x            (default)
    relu     φ(x) = max(x, 0)
    softplus φ(x) = log(1 + eˣ)
    sigmoid  φ(x) = 1 / (1 + e⁻ˣ)
    linear   φ(x) = x                 (analysis, Ornstein–Uhlenbeck tests)

``PHI`` holds the torch functions and :func:`phi_prime` their derivatives φ' (the brian2
back-end writes the same functions as generated-code expressions and numpy functions in its
equations table). A neutral module: it
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


def phi_prime(phi: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """φ'(x) for the nonlinearities of :data:`PHI` (as autograd differentiates them; any
    other φ by autograd, elementwise)."""
    if phi is torch.tanh:
        t = torch.tanh(x)
        return 1.0 - t * t
    if phi is torch.sigmoid:
        s = torch.sigmoid(x)
        return s * (1.0 - s)
    if phi is torch.relu:
        return (x > 0).to(x.dtype)
    if phi is torch.nn.functional.softplus:
        return torch.sigmoid(x)
    if phi is PHI["linear"]:
        return torch.ones_like(x)
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(phi(xx).sum(), xx)
    return g
