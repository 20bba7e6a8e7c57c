"""Validated model specifications (pydantic), loaded from TOML.

A spec holds the *model*: sizes, time constants, noise level and nonlinearity.
Training choices (rule, optimiser, task) live in protocols (see :mod:`bioplaus.protocol`).

The rate network of DESIGN §1::

    τ dx/dt = −x + W_rec r̂ + W_in û + b + σ √τ ξ(t),   r̂ = D_rec φ(x),  û = D_in u
    o(t)   = W_out r̂ + b_out
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Nonlinearity = Literal["tanh", "relu", "softplus", "sigmoid", "linear"]
WeightInit = Literal["xavier_normal", "normal"]


class SpecError(ValueError):
    """A model, protocol or option is invalid. ``str(err)`` is one line naming key and problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)


class RateSpec(_Strict):
    """A continuous-time rate RNN (DESIGN §1), discretised by Euler–Maruyama with α = dt/τ."""

    kind: Literal["rate"] = Field("rate", description="Model family tag.")
    n_in: int = Field(gt=0, description="Number of input channels.")
    n_rec: int = Field(gt=0, description="Number of recurrent (hidden) units N.")
    n_out: int = Field(gt=0, description="Number of linear readout units.")
    tau: float = Field(0.01, gt=0, description="Membrane time constant τ, seconds.")
    dt: float = Field(0.01, gt=0, description="Integration step dt, seconds; 0 < dt ≤ τ.")
    sigma: float = Field(
        1e-3,
        ge=0,
        description="Intrinsic noise amplitude σ (noise on x per step is σ√α ξ); also the "
        "readout noise in a noisy pass of a perturbation rule.",
    )
    nonlinearity: Nonlinearity = Field(
        "tanh", description="Rate function φ (linear: φ(x) = x, for analysis and tests)."
    )
    bias: bool = Field(False, description="Learnable hidden bias b (off in the seed papers).")
    out_bias: bool = Field(False, description="Learnable readout bias b_out.")
    decorrelate_input: bool = Field(
        False, description="Hold a decorrelating matrix D_in in front of the input."
    )
    decorrelate_rec: bool = Field(
        False, description="Hold a decorrelating matrix D_rec on the hidden rates."
    )
    weight_init: WeightInit = Field(
        "xavier_normal",
        description="Initial weights: xavier_normal (std √(2/(fan_in+fan_out)), as the RNN "
        "seed paper's code) or normal (std gain/√fan_in).",
    )
    rec_gain: float = Field(1.0, ge=0, description="Multiplier g on the initial W_rec.")

    @model_validator(mode="after")
    def _dt_le_tau(self) -> RateSpec:
        if self.dt > self.tau:
            raise ValueError(
                f"dt must be <= tau for a stable Euler step (got dt={self.dt}, tau={self.tau})"
            )
        return self

    @property
    def alpha(self) -> float:
        """Euler factor α = dt/τ (α = 1 is the discrete RNN)."""
        return self.dt / self.tau


ModelSpec = RateSpec


def format_validation_error(
    err: ValidationError, source: str | None = None, prefix: str = ""
) -> str:
    """One line: ``source: key: problem`` for the first error pydantic reports; ``prefix``
    is prepended to the key (e.g. ``model.``)."""
    first = err.errors()[0]
    loc = prefix + ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "missing key"
    elif "input" in first and first["type"] not in ("value_error",):
        msg = f"{msg} (got {first['input']!r})"
    msg = msg.removeprefix("Value error, ")
    prefix = f"{source}: " if source else ""
    return f"{prefix}{loc}: {msg}"


def read_toml(path: str | Path) -> dict:
    """Read a TOML file into a dict, turning I/O and syntax errors into :class:`SpecError`."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: file not found")
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{p}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a UTF-8 text file") from None


def spec_from_dict(data: dict, source: str | None = None, prefix: str = "") -> ModelSpec:
    """Build the model spec named by ``data['kind']`` (default ``rate``). Errors name the
    key as ``prefix + key`` (``prefix="model."`` inside a protocol)."""
    if not isinstance(data, dict):
        raise SpecError(f"{source or 'model'}: expected a table, got {type(data).__name__}")
    kind = data.get("kind", "rate")
    classes = {"rate": RateSpec}
    if kind not in classes:
        head = f"{source}: " if source else ""
        raise SpecError(
            f"{head}{prefix}kind: unknown model kind {kind!r} (choose from {sorted(classes)})"
        )
    try:
        return classes[kind](**data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, source, prefix)) from None


def load_model(path: str | Path) -> ModelSpec:
    """Load a model spec from a TOML file (``[model]`` table or top-level keys)."""
    data = read_toml(path)
    if "model" in data and isinstance(data["model"], dict):
        data = data["model"]
    return spec_from_dict(data, source=str(path))
