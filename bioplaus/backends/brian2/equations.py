"""RateSpec → brian2 equation strings for the rate network of DESIGN §1 (one source of truth).

The model::

    τ dx/dt = −x + I_rec + I_in + b + σ √τ ξ(t)
    I_rec   = W_rec r̂ ,   r̂ = D_rec φ(x)         (recurrent input, from the previous step)
    I_in(t) = W_in D_in u(t)                       (input drive, a TimedArray)

written for brian2 (x dimensionless, τ in seconds) as::

    dx/dt = (-x + I_rec + I_in(t, i) + b)/tau + sigma*xi/sqrt(tau) : 1

brian2's ``xi`` has units s^-1/2 and ``method='euler'`` integrates it by
Euler–Maruyama, x ← x + dt·f + g·√dt·N(0, 1), so the noise increment per step is
(σ/√τ)·√dt·N(0, 1) = σ√α ξ_t with α = dt/τ — the per-step variance (σ√α)² of the torch
back-end. With an external realisation ξ_t (shared with torch), ``xi`` is replaced by the
piecewise-constant white noise ``eta(t, i)`` = ξ_t/√dt (units s^-1/2, held for one step):
the Euler step then adds dt·σ/√τ·ξ_t/√dt = σ√α ξ_t, the same increment from the same ξ_t.

Only names from fixed tables and numbers passed through the namespace reach code
generation; nothing here formats a user-supplied string into code.
"""

from __future__ import annotations

import math
from typing import Literal

from ...spec import RateSpec

NoiseKind = Literal["none", "intrinsic", "external"]

#: φ(·) as brian2 expressions of one variable ``{v}``; overflow-free (no exp of a large
#: positive argument): relu(v) = max(v, 0); softplus(v) = max(v, 0) + log1p(exp(−|v|));
#: sigmoid(v) = exp(min(v, 0)) / (1 + exp(−|v|)).
PHI_EXPRESSIONS: dict[str, str] = {
    "tanh": "tanh({v})",
    "relu": "clip({v}, 0, inf)",
    "softplus": "(clip({v}, 0, inf) + log1p(exp(-abs({v}))))",
    "sigmoid": "(exp(clip({v}, -inf, 0)) / (1 + exp(-abs({v}))))",
    "linear": "({v})",
}

#: the only variable names φ may be applied to in generated code
_PHI_VARIABLES = ("x", "x_pre")

#: names the generated equations use, resolved through :func:`namespace`
#: (the input drive ``I_in`` and external noise ``eta`` are TimedArrays added by the caller)
NAMESPACE_NAMES = ("tau", "sigma", "I_in", "eta")

_NOISE_TERMS: dict[str, str] = {
    "none": "",
    "intrinsic": " + sigma*xi/sqrt(tau)",
    "external": " + sigma*eta(t, i)/sqrt(tau)",
}


def check_spec(spec: RateSpec) -> None:
    """Raise ValueError unless every number reaching brian2 is finite and the names are known."""
    if not isinstance(spec, RateSpec):
        raise TypeError(f"expected a RateSpec, got {type(spec).__name__}")
    for key in ("tau", "dt", "sigma"):
        value = getattr(spec, key)
        if not math.isfinite(value):
            raise ValueError(f"{key}: must be finite for brian2 (got {value!r})")
    if spec.nonlinearity not in PHI_EXPRESSIONS:
        raise ValueError(f"nonlinearity: {spec.nonlinearity!r} has no brian2 expression")


def phi_expression(nonlinearity: str, variable: str = "x") -> str:
    """φ applied to ``variable`` (``x`` or ``x_pre``) as a brian2 expression string."""
    if nonlinearity not in PHI_EXPRESSIONS:
        raise ValueError(
            f"nonlinearity: unknown {nonlinearity!r} (choose from {sorted(PHI_EXPRESSIONS)})"
        )
    if variable not in _PHI_VARIABLES:
        raise ValueError(f"phi variable must be one of {_PHI_VARIABLES}, got {variable!r}")
    return PHI_EXPRESSIONS[nonlinearity].format(v=variable)


def noise_kind(spec: RateSpec, external: bool) -> NoiseKind:
    """``none`` when σ = 0; ``external`` for a given realisation ξ; else ``intrinsic`` (xi)."""
    if spec.sigma == 0:
        return "none"
    return "external" if external else "intrinsic"


def rate_equations(spec: RateSpec, noise: NoiseKind) -> str:
    """The NeuronGroup equations of the rate units.

    ``I_rec`` is a parameter written before each state update (by the matmul operation
    or as a summed variable of the recurrent Synapses); ``I_in(t, i)`` is the input-drive
    TimedArray; ``b`` a per-unit constant when ``spec.bias``.
    """
    check_spec(spec)
    if noise not in _NOISE_TERMS:
        raise ValueError(f"noise: unknown kind {noise!r} (choose from {sorted(_NOISE_TERMS)})")
    bias = " + b" if spec.bias else ""
    lines = [
        f"dx/dt = (-x + I_rec + I_in(t, i){bias})/tau{_NOISE_TERMS[noise]} : 1",
        "I_rec : 1",
    ]
    if spec.bias:
        lines.append("b : 1 (constant)")
    return "\n".join(lines)


def recurrent_synapses_model(spec: RateSpec) -> str:
    """Synapses model whose summed variable is I_rec_i = Σ_j w_ij φ(x_j), w = W_rec D_rec.

    brian2 runs a summed-variable update in the ``groups`` slot just before the target
    group's state update, so I_rec is computed from x of the previous step.
    """
    check_spec(spec)
    return (
        "w : 1 (constant)\n"
        f"I_rec_post = w*{phi_expression(spec.nonlinearity, 'x_pre')} : 1 (summed)"
    )


def phi_assignment(spec: RateSpec) -> str:
    """``r = φ(x)`` as brian2 code (for a rate variable computed inside brian2)."""
    check_spec(spec)
    return f"r = {phi_expression(spec.nonlinearity, 'x')}"


def namespace(spec: RateSpec) -> dict[str, object]:
    """Constants of the generated equations, with brian2 units (τ in seconds, σ dimensionless)."""
    from brian2 import second

    check_spec(spec)
    return {"tau": float(spec.tau) * second, "sigma": float(spec.sigma)}
