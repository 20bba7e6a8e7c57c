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

The same equation drives the learning network (network.py: the hidden units of the paired
ANP copies and of the three-factor trials), with the input drive a summed variable ``I_ff``
of feed-forward synapses instead of a TimedArray and the intrinsic noise gated per row
(``noisy``: 0 on ANP's clean copies). The rest of that network — input units û, rates r̂,
readout o, per-network loss ℓ and the lateral decorrelation synapses y = D z — is written
below too, so this module is the only place the brian2 rate network's dynamics are written;
the plasticity written on top of it (eligibility traces, baselines, ANP's accumulators) is
in anp.py and three_factor.py.

Only names from fixed tables and numbers passed through the namespace reach code
generation; nothing here formats a user-supplied string into code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from ...spec import RateSpec

NoiseKind = Literal["none", "intrinsic", "external"]
Drive = Literal["timed", "summed"]

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

#: φ with numpy (the matmul recurrence, r̂ at t = 0), written with the same overflow-free
#: formulas as :data:`PHI_EXPRESSIONS` (tests check both recurrences agree)
PHI_NUMPY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0.0),
    "softplus": lambda v: np.maximum(v, 0.0) + np.log1p(np.exp(-np.abs(v))),
    "sigmoid": lambda v: np.exp(np.minimum(v, 0.0)) / (1.0 + np.exp(-np.abs(v))),
    "linear": lambda v: v,
}

#: the only variable names φ may be applied to in generated code
_PHI_VARIABLES = ("x", "x_pre", "x_h")

#: names the generated equations use, resolved through :func:`namespace`
#: (the input drive ``I_in`` and external noise ``eta`` are TimedArrays added by the caller)
NAMESPACE_NAMES = ("tau", "sigma", "I_in", "eta")

_NOISE_TERMS: dict[str, str] = {
    "none": "",
    "intrinsic": " + {gate}sigma*xi/sqrt(tau)",
    "external": " + sigma*eta(t, i)/sqrt(tau)",
}
#: the input drive: a TimedArray of W_in D_in u (simulate) or the summed variable of the
#: feed-forward synapses (learning), declared as a parameter of the units
_DRIVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "timed": ("I_in(t, i)", ()),
    "summed": ("I_ff", ("I_ff : 1",)),
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


def rate_equations(
    spec: RateSpec, noise: NoiseKind, drive: Drive = "timed", gated: bool = False
) -> str:
    """The NeuronGroup equations of the rate units — the one place brian2's rate equation
    is written.

    ``I_rec`` is a parameter written before each state update (by the matmul operation
    or as a summed variable of the recurrent Synapses); the input drive is the TimedArray
    ``I_in(t, i)`` (``drive="timed"``) or the parameter ``I_ff``, a summed variable of the
    feed-forward synapses (``"summed"``); ``b`` a per-unit constant when ``spec.bias``.
    ``gated``: the intrinsic noise is multiplied by the unit's ``noisy`` (0 or 1), which
    the caller declares (ANP's clean and noisy copies in one group).
    """
    check_spec(spec)
    if noise not in _NOISE_TERMS:
        raise ValueError(f"noise: unknown kind {noise!r} (choose from {sorted(_NOISE_TERMS)})")
    if drive not in _DRIVES:
        raise ValueError(f"drive: unknown {drive!r} (choose from {sorted(_DRIVES)})")
    bias = " + b" if spec.bias else ""
    drive_term, declared = _DRIVES[drive]
    noise_term = _NOISE_TERMS[noise].format(gate="noisy*" if gated else "")
    lines = [
        f"dx/dt = (-x + I_rec + {drive_term}{bias})/tau{noise_term} : 1",
        "I_rec : 1",
        *declared,
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


# -- the learning network (built by network.py; S rows of units, unit k of row s: s·n + k) --
#: input units û (= u, or y = D_in u summed over the lateral synapses from ``raw`` units u)
INPUT_UNITS = "uhat : 1"
INPUT_CODE = "uhat = u_in(t, i)"
RAW_INPUT_UNITS = "u : 1\ncl : 1 (constant)\nyl : 1 (linked)"
RAW_INPUT_CODE = "u = u_in(t, i)"

#: hidden units besides the rate equation: δx (the deviation a rule reads), which rows are
#: perturbed (``noisy``) and counted in the statistics (``cl``)
HIDDEN_VARIABLES = ("dx_f : 1", "noisy : 1 (constant)", "cl : 1 (constant)")

#: rates r̂ = D_rec φ(x) and r̂ of the previous step; without D_rec, r̂ = φ(x_h), x_h → x
RATE_UNITS = "rhat : 1\nrprev : 1"
RATE_PREVIOUS_CODE = "rprev = rhat"

#: readout o = W_out r̂ (+ σ ξ^o on the noisy rows), its target y and deviation δo
READOUT_VARIABLES = ("o_lin : 1", "o : 1", "ytar : 1", "do_f : 1", "noisy : 1 (constant)",
                     "cl : 1 (constant)")  # fmt: skip
_READOUT_NOISE = {
    "none": "",
    "intrinsic": " + noisy*sigma_o*randn()",
    "external": " + noisy*sigma_o*xio(t, i)",
}

#: per-network unit: loss ℓ of the noisy (ell) and clean (ell_c) rows, ν = ‖δx‖² + ‖δo‖²,
#: the mask m and the sums over the trial
MODULATOR_VARIABLES = ("ell : 1", "ell_c : 1", "nux : 1", "nuo : 1", "m : 1", "Lsum : 1",
                       "Lsum_c : 1", "msum : 1", "nusum : 1")  # fmt: skip
#: ℓ = ½ Σ_k (o_k − y_k)² of each network, summed from its readout units
LOSS_MODEL = (
    "ell_post = noisy_pre*0.5*(o_pre - ytar_pre)**2 : 1 (summed)\n"
    "ell_c_post = (1 - noisy_pre)*0.5*(o_pre - ytar_pre)**2 : 1 (summed)"
)
NU_OUT_MODEL = "\nnuo_post = noisy_pre*do_f_pre**2 : 1 (summed)"
NU_HID_MODEL = "nux_post = noisy_pre*dx_f_pre**2 : 1 (summed)"

#: forward synapses (weights fixed within a trial): name → (summed target, presynaptic z)
FORWARD: dict[str, tuple[str, str]] = {
    "ff": ("I_ff", "uhat"),
    "rec": ("I_rec", "rhat"),
    "ro": ("o_lin", "rhat"),
}


def forward_synapses_model(name: str) -> list[str]:
    """Model lines of the forward synapses ``name`` (ff, rec, ro): target_post = Σ w z_pre."""
    summed, z = FORWARD[name]
    return ["w : 1 (constant)", f"{summed}_post = w*{z}_pre : 1 (summed)"]


def rate_code(spec: RateSpec) -> str:
    """r̂ = φ(x_h) (rates without D_rec; ``x_h`` linked to the hidden units' x)."""
    return f"rhat = {phi_expression(spec.nonlinearity, 'x_h')}"


def lateral_synapses(spec: RateSpec, layer: Literal["input", "rec"]) -> tuple[str, str]:
    """(model, statistics code) of the lateral synapses y = D z of ``layer``: y_post is a summed
    variable of d·z_pre, and each synapse accumulates C += y_i y_k over the counted rows."""
    y, z = ("uhat", "u_pre") if layer == "input" else (
        "rhat", phi_expression(spec.nonlinearity, "x_pre"))  # fmt: skip
    model = f"d : 1 (constant)\n{y}_post = d*{z} : 1 (summed)\nC : 1"
    return model, f"C += cl_pre*yl_pre*{y}_post"


def readout_code(noise: NoiseKind) -> str:
    """o = W_out r̂ + σ ξ^o (noisy rows; ``xio`` given, or brian2's ``randn``) and y = y_in(t)."""
    return f"o = o_lin{_READOUT_NOISE[noise]}\nytar = y_in(t, i)"


def nu_expression(normalise: bool) -> str:
    """ν_t = ‖δx‖² + ‖δo‖² of a network (its summed parts), or 0 when not normalising."""
    return "(nux + nuo)" if normalise else "0"


def modulator_code(rule_code: str, normalise: bool) -> str:
    """The per-network unit's code each step: mask, the rule's lines, the trial sums."""
    return (
        f"m = mask_in(t, i)\n{rule_code}"
        f"Lsum += m*ell\nLsum_c += m*ell_c\nmsum += m\nnusum += {nu_expression(normalise)}"
    )
