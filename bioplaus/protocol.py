"""Training protocols (TOML): model + task + rule + training schedule, validated up front.

A protocol file::

    name = "copy_danp"
    seed = 0
    model = "../models/copy_rnn.toml"      # a path (relative to this file), an inline table,
                                           # or a table {base = "path", key = value, ...}
    [task]
    name = "copy"                          # + the task's own options
    length = 10
    [rule]
    name = "anp"                           # + rule options (sigma, signal, K, baseline, ...)
    [train]
    steps = 500
    lr = 1e-3

``--set key=value`` overrides use dotted keys (``train.lr=1e-2``, ``rule.sigma=1e-2``,
``model.n_rec=128``); values are TOML literals.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from .registry import NETWORK_TYPES, load_plugin, network_kinds, network_type, spec_classes
from .rules import RuleOptionError, RuleSpec, rule_options
from .spec import ModelSpec, SpecError, format_validation_error, read_toml, spec_from_dict


class TrainSpec(BaseModel):
    """How a protocol trains."""

    # no float takes NaN or ±inf (lr = inf, max_abs_weight = nan: nonsense, not a run)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    steps: int = Field(ge=1, description="Number of weight updates (one batch each).")
    batch_size: int = Field(16, ge=1, description="Trials per update.")
    optimizer: Literal["sgd", "adam"] = Field(
        "sgd", description="Torch optimizer applied to the estimate."
    )
    lr: float = Field(1e-3, gt=0, description="Learning rate of the forward weights.")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum.")
    lr_decor: float = Field(
        0.0,
        ge=0,
        description="Decorrelation rate η_D (0: D stays as it is); needs a model with "
        "decorrelate_input or decorrelate_rec.",
    )
    grad_clip: float | None = Field(
        None, gt=0, description="Clip the estimate's global norm to this value (None: no clipping)."
    )
    eval_every: int = Field(
        10, ge=1, description="Evaluate on held-out trials every this many steps."
    )
    eval_batch: int = Field(32, ge=1, description="Held-out trials per evaluation (fixed set).")
    checkpoint_every: int = Field(
        100, ge=1, description="Write a resumable checkpoint every this many steps."
    )
    max_abs_weight: float = Field(
        1e4,
        gt=0,
        description="Divergence guard: stop when a weight or state exceeds this magnitude.",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="Torch CPU threads for this run (None: torch's default). Small "
        "networks run fastest on 1; give each parallel run its share of the cores.",
    )
    device: str = Field("cpu", description="Torch device: cpu, cuda, cuda:N or mps.")
    dtype: Literal["float32", "float64"] = Field("float32", description="Floating-point precision.")
    precision: Literal["float32", "tf32", "bf16"] = Field(
        "float32",
        description="Matmul precision of the estimate (float32 weights): float32, tf32 (CUDA "
        "TF32 matmuls) or bf16 (bfloat16 autocast, CPU or CUDA); tf32/bf16 for the gradient "
        "rules bp, bptt, tbptt only (backends/torch/precision.py).",
    )

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", v):
            raise ValueError(f"unknown device {v!r} (choose cpu, cuda, cuda:N or mps)")
        return v


def _model_spec(value: Any) -> Any:
    """A protocol's ``model``: a spec object of a registered network type (the spec class
    its ``kind`` names: ``RateSpec``, ``LIFSpec``, ``MLPSpec`` or a user type's), as
    :func:`protocol_from_dict` builds it from the ``[model]`` table."""
    classes = spec_classes()
    kind = getattr(value, "kind", None)
    if isinstance(kind, str) and kind in classes and isinstance(value, classes[kind]):
        return value
    raise ValueError(
        f"expected a model spec of a registered network type (known: {', '.join(classes)}; "
        f"got {type(value).__name__})"
    )


def _dump_model(value: BaseModel, info: SerializationInfo) -> dict[str, Any]:
    """The model spec's own fields (a user type's spec class is not one of ``ModelSpec``)."""
    return value.model_dump(mode="json" if info.mode_is_json() else "python")


#: the ``model`` of a protocol: any registered network type's spec, found by its ``kind``
#: (annotated as the built-in union, which the generated file reference lists)
AnyModelSpec = Annotated[ModelSpec, PlainValidator(_model_spec), PlainSerializer(_dump_model)]


class ProtocolSpec(BaseModel):
    """A complete, resolved protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field("run", description="Protocol name (recorded in the run).")
    plugins: list[str] = Field(
        default_factory=list,
        description="User modules to import before the rule and task are looked up: .py "
        "files (relative to the protocol file; recorded as absolute paths) or module names. "
        "A rule or task they register is named in [rule] / [task] like a built-in.",
    )
    seed: int = Field(0, ge=0, description="Root seed: every random stream derives from it.")
    backend: Literal["torch", "brian2"] = Field(
        "torch",
        description="Simulation back-end used to train: torch, or brian2 (rate models, rules "
        "three-factor and anp; docs/brian2.md).",
    )
    model: AnyModelSpec = Field(
        description="The model: a file path, an inline table, or {base = path, key = value}."
    )
    task: dict[str, Any] = Field(
        description="Task name and options, e.g. {name = 'copy', length = 10}."
    )
    rule: SerializeAsAny[RuleSpec] = Field(
        description="The learning rule and its options ([rule] table), validated by the "
        "options model of the rule it names."
    )
    train: TrainSpec = Field(description="The training schedule ([train] table).")

    @field_validator("rule", mode="before")
    @classmethod
    def _rule_table(cls, v: Any) -> Any:
        if isinstance(v, dict):
            try:
                return rule_options(v)
            except RuleOptionError as exc:
                raise ValueError(f"{exc.key}: {exc.problem}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ProtocolSpec:
        if "name" not in self.task:
            raise ValueError("task.name: missing key")
        # a network type without decorrelating matrices has neither key
        decor = getattr(self.model, "decorrelate_input", False) or getattr(
            self.model, "decorrelate_rec", False
        )
        if "lr_decor" in self.rule.entry.preset.get("train", {}) and not self.train.lr_decor > 0:
            raise ValueError(
                f"train.lr_decor: rule {self.rule.name!r} learns decorrelation and needs "
                f"lr_decor > 0 (got {self.train.lr_decor})"
            )
        if self.train.lr_decor > 0 and not decor:
            raise ValueError(
                "train.lr_decor > 0 needs model.decorrelate_input or model.decorrelate_rec = true"
            )
        if self.rule.alignment:
            kind, why = self.model.kind, None
            if not network_type(kind).alignment:
                why = f"not logged for {kind} models"
            elif not self.rule.alignment_probe:
                why = f"rule {self.rule.name!r} has no estimate to probe"
            elif self.backend != "torch":
                why = f"not logged on the {self.backend} back-end"
            if why is not None:
                raise ValueError(
                    f"rule.alignment: {why} (it is logged on the torch back-end, for rate and "
                    "MLP models)"
                )
        check_precision(self)
        if self.backend == "brian2":
            from .backends.brian2.capabilities import check_brian2_protocol

            check_brian2_protocol(self)
        return self


def check_precision(protocol: ProtocolSpec) -> None:
    """``train.precision`` tf32/bf16 lowers the float32 matmuls of an autograd estimate; refuse
    what it cannot honour (docs/design-decisions.md, "Precision")."""
    tr, rule = protocol.train, protocol.rule.name
    prec = tr.precision
    if prec == "float32":
        return
    if tr.dtype != "float32":
        raise ValueError(f"train.precision: {prec!r} applies to train.dtype = 'float32' "
                         f"(got {tr.dtype!r})")  # fmt: skip
    if protocol.backend != "torch":
        raise ValueError(f"train.precision: {prec!r} needs backend 'torch' "
                         f"(got {protocol.backend!r})")  # fmt: skip
    if not protocol.rule.is_gradient:
        raise ValueError(
            f"train.precision: {prec!r} is for the gradient rules (bp, bptt, tbptt): rule "
            f"{rule!r} correlates perturbations of size σ√α, below {prec} rounding (use 'float32')"
        )
    if prec == "tf32" and not tr.device.startswith("cuda"):
        raise ValueError(f"train.precision: 'tf32' is a CUDA matmul mode (train.device = "
                         f"{tr.device!r}); use 'bf16' or 'float32' off CUDA")  # fmt: skip


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (["a", "b"], value parsed as a TOML literal, else kept as a string)."""
    if "=" not in item:
        raise SpecError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    path = [k for k in key.strip().split(".") if k]
    if not path:
        raise SpecError(f"--set {item!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    out = copy.deepcopy(data)
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for k in path[:-1]:
            if not isinstance(node.get(k, {}), dict):
                raise SpecError(f"--set {item!r}: {k} is not a table")
            node = node.setdefault(k, {})
        node[path[-1]] = value
    return out


def protocol_from_dict(
    data: dict, source: str = "protocol", base_dir: Path | None = None
) -> ProtocolSpec:
    """Validate a protocol dict; a string ``model`` is a TOML path relative to ``base_dir``."""
    data = dict(data)
    _check_sections(data, source)
    data["plugins"] = load_plugins(data.get("plugins", []), source, base_dir)
    preset = rule_preset(data)
    if isinstance(data.get("rule"), dict):
        data = apply_rule_preset(data)
        try:
            data["rule"] = rule_options(data["rule"])
        except RuleOptionError as exc:
            raise SpecError(f"{source}: rule.{exc.key}: {exc.problem}") from None
        except ValidationError as err:
            raise SpecError(format_validation_error(err, source, prefix="rule.")) from None
    model = data.get("model")
    if isinstance(model, str):
        data["model"] = _read_model(model, base_dir)
    elif isinstance(model, dict) and "base" in model:
        if not isinstance(model["base"], str):
            raise SpecError(f"{source}: model.base: expected a file path")
        rest = {k: v for k, v in model.items() if k != "base"}
        data["model"] = {**_read_model(model["base"], base_dir), **rest}
    if isinstance(data.get("model"), dict):
        data["model"] = spec_from_dict(
            model_preset(data["model"], preset), source=source, prefix="model."
        )
    elif "model" not in data:
        raise SpecError(f"{source}: model: missing key")
    else:
        raise SpecError(f"{source}: model: expected a table or a file path")
    try:
        return ProtocolSpec(**data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, source)) from None


def _check_sections(data: dict, source: str) -> None:
    """An unknown top-level key or section is named, with the closest valid one."""
    import difflib

    known = list(ProtocolSpec.model_fields)
    for key in data:
        if key in known:
            continue
        table = isinstance(data[key], dict)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        what = f"[{key}]: unknown section" if table else f"{key}: unknown key"
        hint = ""
        if close:
            hint = f" (did you mean [{close[0]}]?)" if table else f" (did you mean {close[0]}?)"
        raise SpecError(f"{source}: {what}{hint}; sections: model, task, rule, train")


def load_plugins(refs: Any, source: str, base_dir: Path | None) -> list[str]:
    """Import a protocol's ``plugins`` (once per process); their resolved references."""
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise SpecError(f"{source}: plugins: expected a list of .py files or module names")
    out = []
    for ref in refs:
        try:
            out.append(load_plugin(ref, base_dir))
        except ValueError as exc:
            raise SpecError(f"{source}: plugins: {exc}") from None
    return out


def rule_preset(data: dict) -> dict[str, dict]:
    """The preset of the rule a protocol dict names (e.g. ``danp``: decorrelation on), or {}."""
    from .registry import RULES

    rule = data.get("rule")
    name = rule.get("name") if isinstance(rule, dict) else getattr(rule, "name", None)
    return RULES.get(name).preset if name in RULES else {}


def apply_rule_preset(data: dict) -> dict:
    """A rule's preset fills keys of the ``[train]`` table that the protocol leaves unset (the
    model's keys: :func:`model_preset`); what the protocol says wins."""
    preset = rule_preset(data)
    data = dict(data)
    for table, values in preset.items():
        if table != "model" and isinstance(data.get(table, {}), dict):
            data[table] = {**values, **data.get(table, {})}
    return data


def model_preset(model: dict, preset: dict[str, dict]) -> dict:
    """The resolved model table with the preset's model keys: the rule defines them (DANP *is*
    ANP with decorrelation), so they win over the model file. A key the network type's spec
    has not is the one its ``preset_keys`` names (on an MLP, ``decorrelate_rec`` means
    ``decorrelate``, every layer's input)."""
    values = dict(preset.get("model", {}))
    if not values:
        return model
    kind = model.get("kind", "rate")
    if isinstance(kind, str) and kind in network_kinds():
        for key, own in NETWORK_TYPES.get(kind).preset_keys.items():
            if key in values:
                values = {own: values.pop(key), **values}
    return {**model, **values}


def _read_model(path: str, base_dir: Path | None) -> dict:
    mpath = Path(path)
    if not mpath.is_absolute() and base_dir is not None:
        mpath = base_dir / mpath
    mdata = read_toml(mpath)
    return mdata["model"] if isinstance(mdata.get("model"), dict) else mdata


def model_overrides(data: dict, overrides: list[str], base_dir: Path | None) -> dict:
    """Inline a file-referenced model so ``model.*`` overrides apply to it."""
    if any(o.split("=", 1)[0].strip().startswith("model.") for o in overrides) and isinstance(
        data.get("model"), str
    ):
        data = {**data, "model": _read_model(data["model"], base_dir)}
    return data


def load_protocol(path: str | Path, overrides: list[str] | None = None) -> ProtocolSpec:
    """Read, override and validate a protocol file."""
    p = Path(path)
    data = read_toml(p)
    overrides = list(overrides or [])
    data = model_overrides(data, overrides, p.parent)
    data = apply_overrides(data, overrides)
    return protocol_from_dict(data, source=str(p), base_dir=p.parent)
