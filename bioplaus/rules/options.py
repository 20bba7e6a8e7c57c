"""A rule's options: each registered rule validates its own ``[rule]`` table.

``RuleSpec`` is the base of every rule's options model. Calling it directly,
``RuleSpec(name="anp", sigma=1e-2)``, looks the name up in the rule registry and returns an
instance of *that rule's* options model (``NodePerturbationOptions`` here), so the protocol's
``[rule]`` table is validated by the rule it names, not by one shared model of every option.

An option that belongs to another registered rule is refused with
``option 'K' does not apply to rule 'bptt'`` unless it holds its default (a config written
by an earlier version of bioplaus listed every option of every rule; it still reloads).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..registry import RULES, did_you_mean

#: the shared option model of bioplaus ≤ 0.1 listed all of these in every resolved config
LEGACY_DEFAULTS: dict[str, Any] = {
    "sigma": None, "signal": None, "trace_decay": 1.0, "K": 1, "baseline": "clean",
    "scale": "n", "norm": "joint", "k": 1, "noise_access": "difference", "alignment": False,
    "tau_e": None, "tau_b": 0.05, "tau_r": 5.0, "reward": "trial", "noise": "gaussian",
    "kick_rate": 3.0, "kick_amplitude": 1.0, "supralinear": None, "normalise": False,
}  # fmt: skip


class RuleOptionError(ValueError):
    """An option that does not fit the rule: ``key`` names it, ``str()`` is one line."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key, self.problem = key, problem


class RuleSpec(BaseModel):
    """A learning rule and its options (the base of every rule's options model)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(description="The rule's registered name (bioplaus.registry.RULES).")
    alignment: bool = Field(
        False,
        description="Log, at every evaluation, the angle between this rule's estimate and "
        "the exact gradient (full BPTT for a rate RNN) on the fixed training batch (align_* "
        "columns; rate and MLP models, torch back-end).",
    )

    #: the trainer can log this rule's ``alignment``: its estimate from a probe pass on a
    #: fixed batch, at the current weights and rule state, against the exact gradient
    alignment_probe: ClassVar[bool] = True

    def __new__(cls, *args: Any, **data: Any) -> Any:
        if cls is RuleSpec and data:  # dispatch to the named rule's own options model
            return rule_options(data)
        return super().__new__(cls)

    def __init__(self, **data: Any) -> None:
        if getattr(self, "__pydantic_fields_set__", None) is not None:
            return  # built by __new__'s dispatch already
        super().__init__(**data)

    @property
    def entry(self):
        """The registry entry of this rule."""
        return RULES.get(self.name)

    @property
    def mechanism(self) -> str:
        """gradient | node | weight | online: which driver runs this rule."""
        return self.entry.mechanism

    @property
    def is_gradient(self) -> bool:
        return self.mechanism == "gradient"

    @property
    def per_sample_traces(self) -> bool:
        """The rule keeps a trace [P, N, M] per perturbed sample, which the memory estimate
        counts (a rule's options override this; none by default)."""
        return False

    def option(self, key: str, default: Any = None) -> Any:
        """The value of option ``key`` where this rule has it, else ``default``."""
        return getattr(self, key) if key in type(self).model_fields else default


def noise_sigma(sigma: float | None, model_sigma: float) -> float:
    """σ of a rule's noise: the rule's ``sigma``, or the model's ``model_sigma`` when the
    rule leaves it unset (None). The one place that default is resolved: every driver on
    every back-end (torch paired and online passes, brian2 learning) and the trainers call
    this."""
    return model_sigma if sigma is None else sigma


class PairedPassOptions(RuleSpec):
    """Options of the paired clean/noisy-pass driver, shared by every perturbation rule."""

    sigma: float | None = Field(
        None, gt=0, description="Perturbation σ of the noisy pass; default: the model's sigma."
    )
    K: int = Field(1, ge=1, description="Noisy resamples averaged per update.")
    baseline: Literal["clean", "noisy"] = Field(
        "clean", description="Baseline pass: clean (σ = 0) or a second noisy pass."
    )


def _option_defaults() -> dict[str, list[Any]]:
    """Every option key any registered rule (or the legacy shared model) knows, with the
    defaults it may hold without applying."""
    out: dict[str, list[Any]] = {k: [v] for k, v in LEGACY_DEFAULTS.items()}
    for _, entry in RULES.items():
        for key, f in entry.options.model_fields.items():
            if key != "name":
                out.setdefault(key, []).append(f.default)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def rule_options(data: Mapping[str, Any]) -> RuleSpec:
    """Validate a ``[rule]`` table with the options model of the rule it names.

    Raises :class:`RuleOptionError` (the key and a one-line problem) for a missing or
    unknown name and an option of another rule; pydantic's ValidationError for a bad value."""
    if not isinstance(data, Mapping):
        raise RuleOptionError("name", f"expected a table with the rule's name (got {data!r})")
    data = dict(data)
    if "name" not in data:
        raise RuleOptionError("name", "missing key")
    name = data["name"]
    if name not in RULES:
        raise RuleOptionError("name", RULES.unknown(name))
    entry = RULES.get(name)
    fields = entry.options.model_fields
    known = _option_defaults()
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if key in fields:
            kept[key] = value
        elif key in known:
            if any(_same(value, d) for d in known[key]):
                continue  # another rule's option at its default: a resolved config
            raise RuleOptionError(key, f"option {key!r} does not apply to rule {name!r}")
        else:
            raise RuleOptionError(
                key, f"unknown key{did_you_mean(key, [k for k in fields if k != 'name'])}"
            )
    return entry.options(**kept)


def rule_field_docs() -> list[type[RuleSpec]]:
    """The options model of every registered rule (for the generated file reference)."""
    seen: list[type[RuleSpec]] = []
    for _, entry in RULES.items():
        if entry.options not in seen:
            seen.append(entry.options)
    return seen
