"""Learning rules (DESIGN §2). Each returns an estimate of ∂L in autograd's sign and scale.

``RuleSpec`` validates a rule and its options (from ``bp.estimate(**options)`` or a
protocol's ``[rule]`` table); ``make_rule`` builds the perturbation estimator.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .layered import LayeredNodePerturbation, LayeredWeightPerturbation
from .node_perturbation import NodePerturbation
from .three_factor import ThreeFactor
from .weight_perturbation import WeightPerturbation

RULES = ("bp", "bptt", "tbptt", "np", "anp", "inp", "wp", "rtg-np", "three-factor")
GRADIENT_RULES = ("bp", "bptt", "tbptt")


class RuleSpec(BaseModel):
    """A learning rule and its options."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: Literal["bp", "bptt", "tbptt", "np", "anp", "inp", "wp", "rtg-np", "three-factor"] = (
        Field(
            description="bp / bptt (exact gradient by autograd; the same rule) | tbptt "
            "(truncated, k steps) | np | anp | inp (iterative NP: one noisy pass per layer, "
            "only that layer perturbed) | wp (weight perturbation) | rtg-np (reward-to-go NP) "
            "| three-factor (online, eligibility × reward; rules/three_factor.py)."
        )
    )
    sigma: float | None = Field(
        None, gt=0, description="Perturbation σ of the noisy pass; default: the model's sigma."
    )
    signal: Literal["local", "trial", "rtg", "trace"] | None = Field(
        None,
        description="Credit signal: local δℓ_t (default for np, anp), whole-trial δL, "
        "reward-to-go Σ_{s≥t} δℓ_s (default for rtg-np), or a decaying eligibility trace "
        "Σ_{s≥t} λ^{s−t} δℓ_s (λ = trace_decay; np, anp).",
    )
    trace_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="λ of signal 'trace': E ← λE + e zᵀ, G = Σ_t δℓ_t E_t (1: reward-to-go).",
    )
    K: int = Field(1, ge=1, description="Noisy resamples averaged per update.")
    baseline: Literal["clean", "noisy"] = Field(
        "clean", description="Baseline pass: clean (σ = 0) or a second noisy pass."
    )
    scale: Literal["n", "sqrt_n"] | float = Field(
        "n", description="ANP scale c: number of perturbed units, its square root, or a number."
    )
    norm: Literal["joint", "layer"] = Field(
        "joint", description="ANP normalisation ‖δ‖²: joint over all layers, or per layer."
    )
    k: int = Field(1, ge=1, description="Truncation length of tbptt, in steps.")
    noise_access: Literal["difference", "own"] = Field(
        "difference",
        description="NP with a noisy baseline (feed-forward models): the noise NP correlates "
        "with δℓ — the difference of both passes' noise (exact, v = 2) or only the perturbed "
        "pass's own noise (v = 1; the paper's DNP in a system whose baseline noise is unknown).",
    )
    alignment: bool = Field(
        False,
        description="Log, at every evaluation, the angle between this rule's estimate and "
        "the exact gradient (full BPTT for a rate RNN) on the fixed training batch (align_* "
        "columns; rate and MLP models, torch back-end).",
    )
    # -- three-factor options (rules/three_factor.py) --
    tau_e: float | None = Field(
        None,
        gt=0,
        description="three-factor: eligibility time constant τ_e, s (None: "
        "accumulate over the trial, Miconi 2017).",
    )
    tau_b: float = Field(
        0.05, gt=0, description="three-factor: time constant τ_b of the running activity mean, s."
    )
    tau_r: float = Field(
        5.0,
        gt=0,
        description="three-factor: reward-baseline time constant τ_r (trials for "
        "reward 'trial', seconds for 'step').",
    )
    reward: Literal["trial", "step"] = Field(
        "trial", description="three-factor: reward −L at trial end, or −ℓ_t every scored step."
    )
    noise: Literal["gaussian", "kicks"] = Field(
        "gaussian",
        description="three-factor: exploration as intrinsic noise σ√α ξ or sparse random kicks.",
    )
    kick_rate: float = Field(3.0, gt=0, description="three-factor: kicks per unit per second, Hz.")
    kick_amplitude: float = Field(
        1.0, gt=0, description="three-factor: a kick adds U(−A, A) to x; this is A."
    )
    supralinear: float | None = Field(
        None,
        gt=0,
        description="three-factor: exponent p of S(y) = sign(y)|y|^p on the "
        "Hebbian term (3: Miconi's y³; None: linear).",
    )
    normalise: bool = Field(
        False, description="three-factor: divide M by ‖x − x̄‖² (times the number of units)."
    )

    @model_validator(mode="after")
    def _fit(self) -> RuleSpec:
        # an option that does not apply is an error unless it holds its default (a resolved
        # config written by a run lists every field)
        fields = type(self).model_fields

        def changed(key: str) -> bool:
            return getattr(self, key) != fields[key].default

        perturb_only = ("sigma", "signal", "K", "baseline", "scale", "norm", "trace_decay")
        if self.name in GRADIENT_RULES:
            bad = [k for k in perturb_only if changed(k)]
            if bad:
                raise ValueError(f"option {bad[0]!r} does not apply to rule {self.name!r}")
        if self.name != "tbptt" and changed("k"):
            raise ValueError(f"option 'k' applies only to rule 'tbptt' (got rule {self.name!r})")
        three_factor_only = (
            "tau_e", "tau_b", "tau_r", "reward", "noise", "kick_rate", "kick_amplitude",
            "supralinear", "normalise",
        )  # fmt: skip
        if self.name == "three-factor":
            bad = [k for k in perturb_only if k != "sigma" and changed(k)]
        else:
            bad = [k for k in three_factor_only if changed(k)]
        if bad:
            raise ValueError(f"option {bad[0]!r} does not apply to rule {self.name!r}")
        if changed("noise_access") and (self.name != "np" or self.baseline != "noisy"):
            raise ValueError(
                "option 'noise_access' applies only to rule 'np' with baseline 'noisy'"
            )
        if self.name == "wp" and (changed("scale") or changed("norm")):
            raise ValueError("options 'scale' and 'norm' apply to node perturbation, not 'wp'")
        if self.name == "rtg-np" and self.signal not in (None, "rtg"):
            raise ValueError("signal: rule 'rtg-np' uses signal 'rtg'")
        if self.signal == "trace" and self.name not in ("np", "anp"):
            raise ValueError("signal 'trace' applies to rules 'np' and 'anp'")
        if changed("trace_decay") and self.signal != "trace":
            raise ValueError("option 'trace_decay' applies only to signal 'trace'")
        return self

    @property
    def is_gradient(self) -> bool:
        return self.name in GRADIENT_RULES


def make_rule(
    spec: RuleSpec, layered: bool = False
) -> NodePerturbation | WeightPerturbation | LayeredNodePerturbation | LayeredWeightPerturbation:
    """The perturbation estimator of a (non-gradient) rule spec: for the rate RNN, or for a
    layered feed-forward network when ``layered`` (where the credit signal is moot: T = 1)."""
    if spec.is_gradient:
        raise ValueError(f"rule {spec.name!r} is computed by autograd, not a perturbation rule")
    if spec.name == "three-factor":
        raise ValueError(
            "rule 'three-factor' changes weights online during trials: train it with bp.run "
            "(no one-batch gradient estimate)"
        )
    if layered:
        if spec.name == "wp":
            return LayeredWeightPerturbation()
        kind = "np" if spec.name == "rtg-np" else spec.name
        return LayeredNodePerturbation(
            kind=kind, scale=spec.scale, norm=spec.norm, own_noise=spec.noise_access == "own"
        )
    if spec.noise_access == "own":
        raise ValueError("noise_access 'own' is implemented for feed-forward (mlp) models only")
    signal = spec.signal or ("rtg" if spec.name == "rtg-np" else "local")
    if spec.name == "wp":
        return WeightPerturbation(signal=signal)
    kind = "np" if spec.name in ("np", "rtg-np") else spec.name
    return NodePerturbation(
        kind=kind, signal=signal, scale=spec.scale, norm=spec.norm, trace_decay=spec.trace_decay
    )


def make_three_factor(spec: RuleSpec, dt: float) -> ThreeFactor:
    """The online three-factor rule of a spec, for a model with step ``dt`` (seconds)."""
    opts = ("tau_e", "tau_b", "tau_r", "reward", "noise", "kick_rate", "kick_amplitude")
    return ThreeFactor(
        dt,
        **{k: getattr(spec, k) for k in opts},
        supralinear=spec.supralinear,
        normalise=spec.normalise,
    )


__all__ = [
    "RULES",
    "LayeredNodePerturbation",
    "LayeredWeightPerturbation",
    "NodePerturbation",
    "RuleSpec",
    "ThreeFactor",
    "WeightPerturbation",
    "make_rule",
    "make_three_factor",
]
