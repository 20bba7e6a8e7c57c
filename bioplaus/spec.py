"""Validated model specifications (pydantic), loaded from TOML.

A spec holds the *model*: sizes, time constants, noise level and nonlinearity.
Training choices (rule, optimiser, task) live in protocols (see :mod:`bioplaus.protocol`).

The rate network of DESIGN §1::

    τ dx/dt = −x + W_rec r̂ + W_in û + b + σ √τ ξ(t),   r̂ = D_rec φ(x),  û = D_in u
    o(t)   = W_out r̂ + b_out
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Nonlinearity = Literal["tanh", "relu", "softplus", "sigmoid", "linear"]
WeightInit = Literal["xavier_normal", "normal"]

# the keys the recurrent networks' specs (RateSpec, LIFSpec) share, each described once; the
# ones they both have but describe for their own network (n_rec, bias, decorrelate_rec,
# weight_init, rec_gain) stay in each spec
NIn = Annotated[int, Field(gt=0, description="Number of input channels.")]
NOut = Annotated[int, Field(gt=0, description="Number of linear readout units.")]
OutBias = Annotated[bool, Field(description="Learnable readout bias b_out.")]
DecorrelateInput = Annotated[
    bool, Field(description="Hold a decorrelating matrix D_in in front of the input.")
]


class SpecError(ValueError):
    """A model, protocol or option is invalid. ``str(err)`` is one line naming key and problem."""


class _Strict(BaseModel):
    # allow_inf_nan=False: no float field of a model takes NaN or ±inf (a frozen τ = inf
    # network or a LIF that never spikes would otherwise run as nonsense)
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False
    )


class RateSpec(_Strict):
    """A continuous-time rate RNN (DESIGN §1), discretised by Euler–Maruyama with α = dt/τ."""

    kind: Literal["rate"] = Field("rate", description="Model family tag.")
    n_in: NIn
    n_rec: int = Field(gt=0, description="Number of recurrent (hidden) units N.")
    n_out: NOut
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
    out_bias: OutBias = False
    decorrelate_input: DecorrelateInput = False
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


class MLPSpec(_Strict):
    """A feed-forward multi-layer network (the multi-layer seed paper's MLP).

    ``sizes = [n_in, h_1, …, h_{L−1}, n_out]`` gives L weight layers. For l = 0 … L−1::

        ẑ_l = D_l h_{l−1}          (h_{−1} = input; D_l = I unless ``decorrelate``)
        a_l = W_l ẑ_l + b_l (+ σ ξ_l in a noisy pass)
        h_l = φ(a_l) for hidden layers;  the output is a_{L−1} (logits / linear)

    ``output = "softmax_ce"``: per-sample loss −Σ_k y_k log softmax(a_{L−1})_k;
    ``"linear_mse"``: ½‖a_{L−1} − y‖². With ``decorrelate`` every layer's input (the first
    included) holds a decorrelating matrix D_l, as the authors' "d*" variants.
    """

    kind: Literal["mlp"] = Field("mlp", description="Model family tag.")
    sizes: list[int] = Field(
        min_length=2, description="Layer sizes [n_in, hidden…, n_out] (at least 2 entries)."
    )
    nonlinearity: Literal["leaky_relu", "tanh", "relu", "sigmoid", "linear"] = Field(
        "leaky_relu", description="Hidden-unit nonlinearity φ."
    )
    negative_slope: float = Field(
        0.2, ge=0, description="Slope of leaky_relu for a < 0 (tf.nn.leaky_relu's default 0.2)."
    )
    output: Literal["softmax_ce", "linear_mse"] = Field(
        "softmax_ce", description="Output and loss: softmax + cross-entropy, or linear + MSE."
    )
    bias: bool = Field(True, description="Learnable bias b_l on every layer (zeros at start).")
    decorrelate: bool = Field(
        False, description="Hold a decorrelating matrix D_l in front of every layer's input."
    )
    sigma: float = Field(
        1e-3, ge=0, description="Perturbation σ of a noisy pass (rules may override)."
    )
    weight_init: Literal["he_normal", "xavier_normal", "normal"] = Field(
        "he_normal",
        description="he_normal: a normal with std √(2/fan_in) (the variance of the authors' "
        "Keras HeNormal, which is a normal truncated at ±2 std and rescaled; this one is not "
        "truncated); xavier_normal: std √(2/(fan_in+fan_out)); normal: std 1/√fan_in.",
    )

    @model_validator(mode="after")
    def _positive_sizes(self) -> MLPSpec:
        if any(n <= 0 for n in self.sizes):
            raise ValueError(f"sizes: every layer size must be > 0 (got {self.sizes})")
        return self

    @property
    def n_in(self) -> int:
        return self.sizes[0]

    @property
    def n_out(self) -> int:
        return self.sizes[-1]

    @property
    def n_layers(self) -> int:
        """Number of weight layers L."""
        return len(self.sizes) - 1

    @property
    def loss(self) -> str:
        """The loss name of :mod:`bioplaus.loss` ("ce" or "mse")."""
        return "ce" if self.output == "softmax_ce" else "mse"

    # the protocol checks these two names before allowing train.lr_decor > 0
    @property
    def decorrelate_input(self) -> bool:
        return self.decorrelate

    @property
    def decorrelate_rec(self) -> bool:
        return False


class LIFSpec(_Strict):
    """A recurrent network of leaky integrate-and-fire neurons (DESIGN §1, LIF network)::

        τ_m dv/dt = −(v − v_rest) + I_syn + W_in û + b + I_0 + σ_v √τ_m ξ(t)
        v ≥ θ → spike, v ← v_reset, v clamped for t_ref
        τ_s dI_syn/dt = −I_syn ;  on a spike of j: I_syn += W_rec[:, j]
        τ_r dr/dt = −r ;          on a spike of j: r_j += 1
        o = W_out D_rec r + b_out

    Voltages are in units of the threshold scale (θ = 1, v_rest = v_reset = 0 by default);
    currents in the same units (a constant current I moves v towards v_rest + I).
    ``I_0`` (``bias_current``) and ``sigma_v`` set the fluctuation-driven regime (mean
    drive below threshold, spikes driven by fluctuations; docs/lif.md). ``sigma`` is the
    perturbation of a noisy pass (a current η = σ ξ per step, plus σ on the readout).
    Discretisation (torch and brian2): bioplaus.backends.torch.lif.
    """

    kind: Literal["lif"] = Field("lif", description="Model family tag.")
    n_in: NIn
    n_rec: int = Field(gt=0, description="Number of LIF neurons N.")
    n_out: NOut
    tau_m: float = Field(0.02, gt=0, description="Membrane time constant τ_m, seconds.")
    tau_s: float = Field(0.01, gt=0, description="Synaptic time constant τ_s, seconds.")
    tau_r: float = Field(
        0.05, gt=0, description="Time constant τ_r of the filtered spike train r, seconds."
    )
    theta: float = Field(1.0, description="Spike threshold θ.")
    v_rest: float = Field(0.0, description="Resting potential v_rest.")
    v_reset: float = Field(0.0, description="Reset potential v_reset (< θ).")
    t_ref: float = Field(
        0.004,
        ge=0,
        description="Refractory period t_ref, seconds: v is clamped at v_reset for exactly "
        "t_ref after a spike (with spiking = 'grid' a whole number of dt).",
    )
    sigma_v: float = Field(
        0.5,
        ge=0,
        description="Intrinsic membrane noise σ_v (stationary std of the free membrane "
        "potential is σ_v/√2); the same realisation drives a pair of clean/noisy passes.",
    )
    sigma: float = Field(
        0.1,
        ge=0,
        description="Perturbation σ of a noisy pass: current noise σ ξ_t per step on every "
        "neuron and σ ξ on the readout (rules may override).",
    )
    bias_current: float = Field(
        0.7, description="Constant background current I_0 (mean drive, units of v)."
    )
    dt: float = Field(0.002, gt=0, description="Integration step dt, seconds.")
    weight_init: WeightInit = Field(
        "normal",
        description="Initial weights: normal (std gain/√fan_in) or xavier_normal; W_rec has "
        "zero diagonal.",
    )
    rec_gain: float = Field(1.0, ge=0, description="Gain g of the initial W_rec (std g/√N).")
    in_gain: float = Field(
        1.0, ge=0, description="Input scale: gain of the initial W_in (std in_gain/√n_in)."
    )
    out_gain: float = Field(1.0, ge=0, description="Gain of the initial W_out.")
    bias: bool = Field(False, description="Learnable bias current b per neuron.")
    out_bias: OutBias = False
    decorrelate_input: DecorrelateInput = False
    decorrelate_rec: bool = Field(
        False, description="Hold a decorrelating matrix D_rec on the filtered spike trains r."
    )
    surrogate_slope: float = Field(
        25.0,
        gt=0,
        description="Slope k of the fast-sigmoid surrogate derivative 1/(1 + k|v − θ|)² "
        "(BPTT baseline only).",
    )
    detach_reset: bool = Field(
        True, description="BPTT: no gradient through the reset (snnTorch's default)."
    )
    spiking: Literal["grid", "precise"] = Field(
        "grid",
        description="Spike timing: 'grid' (spikes at step ends, threshold checked at step "
        "ends) or 'precise' (threshold crossings between steps: interpolated crossing time "
        "and the Ornstein-Uhlenbeck bridge-crossing probability of the membrane noise; "
        "spikes carry their offset within the step, reset, refractoriness and the traces "
        "start there; converges to continuous time, docs/lif.md).",
    )
    delta: Literal["drive", "v", "spike"] = Field(
        "spike",
        description="ANP's δ between noisy and clean pass: the spikes s (default, best "
        "aligned), the total synaptic drive J, or the membrane potential v (docs/lif.md).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> LIFSpec:
        if not self.v_reset < self.theta:
            raise ValueError(f"v_reset must be < theta (got {self.v_reset} >= {self.theta})")
        for key in ("tau_m", "tau_s", "tau_r"):
            if self.dt > getattr(self, key):
                raise ValueError(
                    f"dt must be <= {key} (got dt={self.dt}, {key}={getattr(self, key)})"
                )
        n = self.t_ref / self.dt
        if self.spiking == "grid" and abs(n - round(n)) > 1e-6:
            raise ValueError(
                f"t_ref must be a whole number of dt with spiking = 'grid' (got t_ref/dt = "
                f"{n:g}; spiking = 'precise' takes any t_ref)"
            )
        return self

    @property
    def n_ref(self) -> int:
        """Refractory period in whole steps, round(t_ref/dt) (the grid's clamp length)."""
        return int(round(self.t_ref / self.dt))


#: the built-in model specs (for type hints; the generated file reference lists these). A
#: user's network type brings its own spec class (``bp.register_network(kind, spec=...)``),
#: found by ``kind`` like these: :func:`spec_from_dict`, :func:`load_model`, a protocol's
#: ``[model]``
ModelSpec = RateSpec | MLPSpec | LIFSpec


def format_validation_error(
    err: ValidationError, source: str | None = None, prefix: str = ""
) -> str:
    """One line: ``source: key: problem`` for the first error pydantic reports; ``prefix``
    is prepended to the key (e.g. ``model.``)."""
    import re

    first = err.errors()[0]
    parts = [str(p) for p in first["loc"]]
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "missing key"
    elif "input" in first and first["type"] not in ("value_error",):
        msg = f"{msg} (got {first['input']!r})"
    msg = msg.removeprefix("Value error, ")
    if first["type"] == "value_error":
        # a model validator's "dt must be <= tau …" / "backend: …" names its key first
        m = re.match(r"^([A-Za-z_][\w.]*)(?:: (.*)| (must .*|> .*))$", msg)
        if m:
            key = m[1]
            if not parts or not key.startswith(parts[0] + "."):
                parts.append(key)
            else:
                parts = [key]
            msg = m[2] if m[2] is not None else m[3]
    loc = ".".join(parts)
    loc = (prefix + loc) if loc else (prefix.rstrip(".") or "(top level)")
    head = f"{source}: " if source else ""
    return f"{head}{loc}: {msg}"


def read_toml(path: str | Path) -> dict:
    """Read a TOML file into a dict, turning I/O and syntax errors into :class:`SpecError`."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path: expected a file path (got {type(path).__name__})")
    p = Path(path)
    if not p.is_file():
        if p.is_dir():
            raise SpecError(f"{p}: is a folder, not a TOML file")
        raise SpecError(f"{p}: file not found{did_you_mean_file(p)}")
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{p}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a UTF-8 text file") from None


def did_you_mean_file(p: Path) -> str:
    """`` (did you mean X?)`` with the closest files next to ``p`` (same suffix), or ""."""
    import difflib

    folder = p.parent
    if not folder.is_dir():
        return ""
    try:
        names = [f.name for f in folder.iterdir() if f.is_file() and f.suffix == p.suffix]
    except OSError:
        return ""
    close = difflib.get_close_matches(p.name, names, n=2, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(str(folder / c) for c in close) + "?)"


def spec_from_dict(data: dict, source: str | None = None, prefix: str = "") -> ModelSpec:
    """Build the model spec named by ``data['kind']`` (default ``rate``): the spec class of
    the network type registered under that kind (``bp.register_network(kind, spec=...)``; the
    built-in ones are ``RateSpec``, ``LIFSpec``, ``MLPSpec``). Errors name the key as
    ``prefix + key`` (``prefix="model."`` inside a protocol)."""
    from .registry import spec_classes

    if not isinstance(data, dict):
        raise SpecError(f"{source or 'model'}: expected a table, got {type(data).__name__}")
    kind = data.get("kind", "rate")
    classes = spec_classes()
    if not isinstance(kind, str) or kind not in classes:
        head = f"{source}: " if source else ""
        raise SpecError(f"{head}{prefix}kind: {unknown_kind(kind, list(classes))}")
    try:
        return classes[kind](**data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, source, prefix)) from None


def unknown_kind(kind: object, known: list[str]) -> str:
    """``unknown network type 'x' (known: rate, lif, mlp; did you mean 'y'?)``, one line."""
    import difflib

    from .registry import NETWORK_TYPES

    if isinstance(kind, str) and kind in NETWORK_TYPES:  # registered without a spec class
        return (
            f"network type {kind!r} has no spec class to read a table into (register it "
            f"with spec=...; known: {', '.join(known)})"
        )
    close = difflib.get_close_matches(str(kind), known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown network type {kind!r} (known: {', '.join(known)}{hint})"


def load_model(path: str | Path) -> ModelSpec:
    """Load a model spec from a TOML file (``[model]`` table or top-level keys)."""
    data = read_toml(path)
    if "model" in data and isinstance(data["model"], dict):
        data = data["model"]
    return spec_from_dict(data, source=str(path))
