"""Open registries: learning rules, network types, tasks and plug-in modules, found by name.

A rule is registered once, with the pydantic model of its own options, a factory and the
*mechanism* that runs it (the drivers are per mechanism, never per rule)::

    bp.register_rule("my-np", options=MyOptions, build=make_my_rule, mechanism="node")

and is then named in a protocol's ``[rule]`` table like a built-in. Mechanisms:

    gradient  autograd through the network (bptt, tbptt); ``build`` is not called
    node      paired clean/noisy passes with node noise: the rule implements the
              ``PerturbationRule`` contract of :mod:`bioplaus.rules.base`
    weight    paired passes with weight noise (the ``WPRecord`` contract)
    online    weights change during the trial (the three-factor rule)

A protocol's top-level ``plugins = ["my_rules.py", "package.module"]`` imports user modules
(paths relative to the protocol file) before its ``[rule]`` and ``[task]`` tables are
validated, so a rule or task registered there is found by ``bioplaus run``, ``resume``, sweeps
and ``compare`` alike.

A network type (``rate``, ``lif``, ``mlp``: a model spec's ``kind``) is one entry,
:class:`NetworkType`, registered with :func:`register_network` and found by
:func:`network_type`; ``bp.init_params``, ``bp.simulate``, ``bp.estimate``, the trainer, the
run loop, exports and analysis look it up instead of branching on ``spec.kind``. It brings
its spec class (``spec=``, :func:`spec_classes`), which model files and a protocol's
``[model]`` are read into by ``kind``, and what validation reads of it (``memory``,
``option_limits``, ``simulate_options``, ``preset_keys``). The built-in
types live in :mod:`bioplaus.networks` (one module each), imported by name on the first
lookup, as plug-ins are. This module imports no other layer of bioplaus.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Mechanism = Literal["gradient", "node", "weight", "online"]
MECHANISMS: tuple[str, ...] = ("gradient", "node", "weight", "online")
NETWORKS: tuple[str, ...] = ("rate", "lif", "mlp")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class RuleEntry:
    """A registered learning rule.

    ``options``: the pydantic model of its ``[rule]`` table (a subclass of
    :class:`bioplaus.rules.options.RuleSpec`). ``build(options, network)`` returns the rule
    object a driver of ``mechanism`` runs, for network type ``network`` (``rate``, ``lif``,
    ``mlp``). ``networks``: the types it is written for. ``preset``: option defaults of other
    protocol tables it sets (e.g. DANP turns decorrelation on)."""

    name: str
    options: type
    build: Callable[[Any, str], Any] | None
    mechanism: Mechanism
    networks: tuple[str, ...] = NETWORKS
    summary: str = ""
    preset: dict[str, dict[str, Any]] = field(default_factory=dict)
    module: str = ""


class Registry:
    """Entries by name, with a one-line error and a "did you mean" for unknown names."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, Any] = {}

    def add(self, name: str, item: Any, replace: bool = False) -> Any:
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.what} name must be a non-empty string (got {name!r})")
        if name in self._items and not replace and self._items[name] is not item:
            old = self._items[name]
            if getattr(old, "module", None) and getattr(old, "module", None) == getattr(
                item, "module", None
            ):
                pass  # the same module registering again (re-imported): keep the newest
            else:
                raise ValueError(
                    f"{self.what} {name!r} is already registered (pass replace=True to override)"
                )
        self._items[name] = item
        return item

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise KeyError(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        return (
            f"unknown {self.what} {name!r}{did_you_mean(str(name), self.names())} "
            f"(choose from {self.names()})"
        )

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self._items[k]) for k in self.names()]


RULES = Registry("rule")


def register_rule(
    name: str,
    *,
    options: type,
    build: Callable[[Any, str], Any] | None,
    mechanism: Mechanism,
    networks: tuple[str, ...] = NETWORKS,
    summary: str = "",
    preset: dict[str, dict[str, Any]] | None = None,
    replace: bool = False,
) -> RuleEntry:
    """Register a learning rule under ``name`` (see the module docstring).

    ``options`` must be a subclass of :class:`bioplaus.rules.options.RuleSpec` whose ``name``
    field accepts ``name``. Returns the entry."""
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism: must be one of {list(MECHANISMS)} (got {mechanism!r})")
    if not (isinstance(options, type) and "name" in getattr(options, "model_fields", {})):
        raise TypeError("options: must be a subclass of bioplaus.RuleSpec (a pydantic model)")
    known = (*NETWORKS, *(k for k in NETWORK_TYPES.names() if k not in NETWORKS))
    bad = [n for n in networks if n not in known]
    if bad:
        raise ValueError(f"networks: unknown network type {bad[0]!r} (choose from {known})")
    if mechanism != "gradient" and build is None:
        raise ValueError(f"build: a {mechanism!r} rule needs a factory build(options, network)")
    module = getattr(build, "__module__", "") or getattr(options, "__module__", "")
    entry = RuleEntry(
        name, options, build, mechanism, tuple(networks), summary, dict(preset or {}), module
    )
    return RULES.add(name, entry, replace=replace)


def rule_entry(name: str) -> RuleEntry:
    """The registered rule ``name`` (KeyError with a one-line message otherwise)."""
    return RULES.get(name)


# -- network types ------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainerHooks:
    """What the one trainer (:class:`bioplaus.train.trainer.Trainer`) calls for a network type;
    the trainer itself holds only what every type shares (weights, optimiser, generators,
    decorrelation update, divergence guard, evaluation, checkpoints).

    - ``consts(spec)``: the back-end's constants of the model;
    - ``make_online(protocol, task)``: the handle of an online rule (its driver for this
      network);
    - ``estimate(trainer, batch, u, y, m, loss, decor)``: one update's estimate of ∂L (a
      ``PassResult``);
    - ``outputs(trainer, u)``: the clean outputs o (a tensor, the task's layout [T, B, n_out])
      the trainer scores;
    - ``tensors(spec, params, device, dtype)`` → ``(weights, decor)``: the numpy parameters
      as the trainer's named tensors, the learnable ones (the optimiser's) and the
      decorrelating matrices D (rate, LIF: W_in, W_rec, W_out, b, b_out | D_in, D_rec; MLP:
      W{l}, b{l} | D{l});
    - ``pack(spec, weights, decor)``: those named tensors as the back-end's parameters
      (``RateParams``, ``MLPParams``), what ``estimate`` and ``outputs`` read from
      ``trainer.params()``; ``to_numpy(p)``: the back-end's parameters → float64 arrays;
    - ``data(trainer, batch)`` → ``(u, y, m)``: a task batch as tensors (a sequence network:
      [T, B, ·] and the mask; a feed-forward one: static samples [B, ·], T = 1 dropped);
    - ``eval_loss(loss, o, batch)``: the evaluation loss L of clean outputs o (numpy, the
      task's layout) on ``batch``;
    - ``alignment(trainer)`` → ``(estimate, reference)`` gradients (dicts of tensors) on the
      trainer's fixed training batch, or ``None`` when nothing is logged (``None``: the type
      logs no alignment); ``align_key(k)``: whether the angle ``k`` of
      :func:`bioplaus.analysis.alignment.angles` is logged (as ``align_k``);
    - ``check(protocol, task)``: ValueError when the trainer cannot run the protocol
      (``None``: no check beyond the protocol's validation)."""

    consts: Callable[[Any], Any]
    make_online: Callable[[Any, Any], Any]
    estimate: Callable[..., Any]
    outputs: Callable[[Any, Any], Any]
    tensors: Callable[[Any, Any, Any, Any], tuple[dict[str, Any], dict[str, Any]]]
    pack: Callable[[Any, dict[str, Any], dict[str, Any]], Any]
    to_numpy: Callable[[Any], dict[str, Any]]
    data: Callable[[Any, Any], tuple[Any, Any, Any]]
    eval_loss: Callable[[str, Any, Any], Any]
    alignment: Callable[[Any], tuple[dict[str, Any], dict[str, Any]] | None] | None = None
    align_key: Callable[[str], bool] = lambda k: k == "all"
    check: Callable[[Any, Any], None] | None = None


@dataclass(frozen=True)
class Memory:
    """A network type's part of the memory a run needs (``bioplaus.validate.estimate_memory``,
    a lower estimate): ``weights``, the number of parameters (the estimate adds their
    gradient estimate and the optimiser's state); ``parts``, the other bytes by part
    (``states``, ``traces``, ``data``, or a name of the type's own); ``name``, what the
    weights are called in the message (``"W_rec"``), and ``reduce``, the key to reduce when
    they dominate (``"model.n_rec"``)."""

    weights: int = 0
    parts: dict[str, int] = field(default_factory=dict)
    name: str = "the weights"
    reduce: str = "model.sizes"


@dataclass(frozen=True)
class NetworkType:
    """One network type: everything that differs between model kinds, in one entry.

    - ``init_params(spec, seed)`` → a dict of float64 numpy arrays (``bp.init_params``);
    - ``check_params(spec, params)``: ValueError naming the key of a missing or misshaped one;
    - ``estimate(rs, spec, params, inputs, targets, seed, mask, loss, device, dtype)`` → a
      dict of float64 arrays, ``bp.estimate`` after its argument checks (``rs`` the
      validated ``RuleSpec``, ``dtype`` a torch dtype);
    - ``simulate(spec, inputs, params, backend, noise, seed, x0, device, dtype, **options)``
      → the states (arrays or tensors, ``bp.simulate`` formats them), or ``None`` for a
      network without dynamics;
    - ``trainer``: the trainer class, or ``"module:Class"`` (imported when a run starts);
      ``hooks``: the :class:`TrainerHooks` the one trainer calls on the torch back-end
      (``None`` when ``trainer`` is a class of its own); ``backend_hooks``: those it calls
      on another back-end, by the protocol's ``backend`` (hooks or ``"module:NAME"``,
      imported when a run starts: the rate type's ``"brian2"``);
    - ``state``: the name of the state ``bp.simulate`` returns (``x``, ``v``), in exports;
    - ``reference``: the exact-gradient rule an estimate is compared with (``bptt``, ``bp``);
    - ``sequential``: data have a time axis [T, B, ·]; ``False``: static samples [B, ·]
      whose loss the model's output fixes;
    - ``alignment``: the trainer can log the alignment with the exact gradient;
    - ``spec``: the pydantic model of the type's model table, whose ``kind`` field is
      ``Literal[kind]`` (``bp.load_model``, ``spec_from_dict`` and a protocol's ``[model]``
      build it by ``kind``; ``None``: the type cannot be read from a file);
    - ``memory(spec, rule, batch=, steps=, rows=, item=, gradient=)`` → :class:`Memory`: the
      type's part of a run's memory estimate (``bioplaus.validate.estimate_memory``;
      ``None``: nothing of the model is counted, only the thread stacks);
    - ``option_limits``: ``(option, allowed values, why)`` of rule options the type cannot
      honour (protocol validation refuses another value, naming ``rule.<option>``);
    - ``simulate_options``: the keyword options ``bp.simulate`` takes on the torch back-end
      (LIF: ``spikes``, ``spike_times``, ``crossing``); any other is a TypeError;
    - ``preset_keys``: model keys a rule's preset sets (DANP: ``decorrelate_rec``) that the
      type's spec calls otherwise (MLP: ``{"decorrelate_rec": "decorrelate"}``)."""

    kind: str
    init_params: Callable[[Any, int], dict[str, Any]]
    check_params: Callable[[Any, dict[str, Any]], None]
    estimate: Callable[..., dict[str, Any]]
    simulate: Callable[..., Any] | None = None
    trainer: str | type = "bioplaus.train.trainer:Trainer"
    hooks: TrainerHooks | None = None
    backend_hooks: dict[str, TrainerHooks | str] = field(default_factory=dict)
    state: str = "x"
    reference: str = "bptt"
    sequential: bool = True
    alignment: bool = True
    spec: type | None = None
    memory: Callable[..., Memory] | None = None
    option_limits: tuple[tuple[str, tuple[Any, ...], str], ...] = ()
    simulate_options: frozenset[str] = frozenset()
    preset_keys: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    module: str = ""

    def trainer_class(self) -> type:
        """The trainer class (``trainer`` imported when it is given as ``"module:Class"``)."""
        if isinstance(self.trainer, type):
            return self.trainer
        module, _, name = str(self.trainer).partition(":")
        return getattr(importlib.import_module(module), name)

    def trainer_hooks(self, backend: str = "torch") -> TrainerHooks | None:
        """The :class:`TrainerHooks` the one trainer calls on ``backend``: ``hooks`` on torch,
        else ``backend_hooks[backend]`` (imported when given as ``"module:NAME"``)."""
        if backend == "torch":
            return self.hooks
        try:
            hooks = self.backend_hooks[backend]
        except KeyError:
            raise ValueError(
                f"backend: network type {self.kind!r} does not train on {backend!r} "
                f"(trains on {['torch', *self.backend_hooks]})"
            ) from None
        if isinstance(hooks, str):
            module, _, name = hooks.partition(":")
            hooks = getattr(importlib.import_module(module), name)
        return hooks


NETWORK_TYPES = Registry("network type")
#: the package whose modules register the built-in network types (imported on first lookup)
BUILTIN_NETWORKS = "bioplaus.networks"
_networks_loaded = False


def _load_builtin_networks() -> None:
    global _networks_loaded
    if not _networks_loaded:
        _networks_loaded = True
        try:
            importlib.import_module(BUILTIN_NETWORKS)
        except BaseException:
            _networks_loaded = False
            raise


def register_network(
    kind: str,
    *,
    init_params: Callable[[Any, int], dict[str, Any]],
    check_params: Callable[[Any, dict[str, Any]], None],
    estimate: Callable[..., dict[str, Any]],
    simulate: Callable[..., Any] | None = None,
    trainer: str | type = "bioplaus.train.trainer:Trainer",
    hooks: TrainerHooks | None = None,
    backend_hooks: dict[str, TrainerHooks | str] | None = None,
    state: str = "x",
    reference: str = "bptt",
    sequential: bool = True,
    alignment: bool = True,
    spec: type | None = None,
    memory: Callable[..., Memory] | None = None,
    option_limits: tuple[tuple[str, tuple[Any, ...], str], ...] = (),
    simulate_options: tuple[str, ...] | frozenset[str] = (),
    preset_keys: dict[str, str] | None = None,
    summary: str = "",
    replace: bool = False,
) -> NetworkType:
    """Register the network type ``kind`` (the ``kind`` of its model spec ``spec``); see
    :class:`NetworkType` for what each entry point does. Returns the entry."""
    for name, fn in (("init_params", init_params), ("check_params", check_params),
                     ("estimate", estimate)):  # fmt: skip
        if not callable(fn):
            raise TypeError(f"{name}: must be callable (got {type(fn).__name__})")
    if simulate is not None and not callable(simulate):
        raise TypeError(f"simulate: must be callable or None (got {type(simulate).__name__})")
    if not (isinstance(trainer, type) or (isinstance(trainer, str) and ":" in trainer)):
        raise TypeError(f"trainer: a class or 'module:Class' (got {trainer!r})")
    if hooks is not None and not isinstance(hooks, TrainerHooks):
        raise TypeError(f"hooks: must be a bioplaus TrainerHooks (got {type(hooks).__name__})")
    for backend, h in (backend_hooks or {}).items():
        if not (isinstance(h, TrainerHooks) or (isinstance(h, str) and ":" in h)):
            raise TypeError(f"backend_hooks[{backend!r}]: TrainerHooks or 'module:NAME' "
                            f"(got {h!r})")  # fmt: skip
    if spec is not None:
        check_spec_class(kind, spec)
    if memory is not None and not callable(memory):
        raise TypeError(f"memory: must be callable or None (got {type(memory).__name__})")
    for limit in option_limits:
        if not (isinstance(limit, tuple) and len(limit) == 3 and isinstance(limit[0], str)
                and isinstance(limit[1], tuple) and limit[1]):  # fmt: skip
            raise TypeError(f"option_limits: (option, allowed values, why) tuples (got {limit!r})")
    if isinstance(simulate_options, str) or not all(isinstance(o, str) for o in simulate_options):
        raise TypeError(f"simulate_options: option names (got {simulate_options!r})")
    module = getattr(init_params, "__module__", "") or ""
    entry = NetworkType(
        kind, init_params, check_params, estimate, simulate=simulate, trainer=trainer,
        hooks=hooks, backend_hooks=dict(backend_hooks or {}), state=state, reference=reference,
        sequential=bool(sequential), alignment=bool(alignment), spec=spec, memory=memory,
        option_limits=tuple(option_limits), simulate_options=frozenset(simulate_options),
        preset_keys=dict(preset_keys or {}),
        summary=summary, module=module,
    )  # fmt: skip
    return NETWORK_TYPES.add(kind, entry, replace=replace)


def check_spec_class(kind: str, spec: Any) -> None:
    """``spec`` is a pydantic model whose ``kind`` field takes ``kind`` (``Literal[kind]``),
    so a table with ``kind = "<kind>"`` validates into it (TypeError otherwise)."""
    fields = getattr(spec, "model_fields", None) if isinstance(spec, type) else None
    if not isinstance(fields, dict):
        raise TypeError(f"spec: must be a pydantic model class (got {spec!r})")
    f = fields.get("kind")
    if f is None:
        raise TypeError(f"spec: {spec.__name__} has no 'kind' field (kind: Literal[{kind!r}])")
    if kind not in typing.get_args(f.annotation) and f.default != kind:
        raise TypeError(
            f"spec: {spec.__name__}.kind does not take {kind!r} (declare kind: "
            f"Literal[{kind!r}] = {kind!r})"
        )


def spec_classes() -> dict[str, type]:
    """The spec class of every registered network type that has one, by ``kind``: the
    built-in ones first (rate, lif, mlp), then users' in the order of their names."""
    _load_builtin_networks()
    kinds = [
        *(k for k in NETWORKS if k in NETWORK_TYPES),
        *(k for k in NETWORK_TYPES.names() if k not in NETWORKS),
    ]
    return {k: NETWORK_TYPES.get(k).spec for k in kinds if NETWORK_TYPES.get(k).spec is not None}


def network_type(kind: str) -> NetworkType:
    """The registered network type ``kind`` (KeyError with a one-line message otherwise)."""
    _load_builtin_networks()
    return NETWORK_TYPES.get(kind)


def network_kinds() -> list[str]:
    """The names of the registered network types (the built-in ones and users')."""
    _load_builtin_networks()
    return NETWORK_TYPES.names()


# -- plug-in modules ----------------------------------------------------------------------
_LOADED: dict[str, Any] = {}


def load_plugin(ref: str, base_dir: Path | None = None) -> str:
    """Import a user module that registers rules or tasks, once per process.

    ``ref`` is a ``.py`` file (relative to ``base_dir``) or an importable module name.
    Returns the resolved reference (an absolute path for a file), to record in a run's config.
    Raises ValueError with a one-line message when it cannot be imported."""
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"expected a .py file or a module name (got {ref!r})")
    if ref.endswith(".py") or "/" in ref or "\\" in ref:
        path = Path(ref)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        path = path.resolve()
        key = str(path)
        if key in _LOADED:
            return key
        if not path.is_file():
            raise ValueError(f"{ref}: file not found")
        digest = hashlib.sha1(key.encode()).hexdigest()[:10]
        modname = f"bioplaus_plugin_{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(modname, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"{ref}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a user's module: report, in one line, what it raised
            sys.modules.pop(modname, None)
            raise ValueError(f"{ref}: importing it raised {type(exc).__name__}: {exc}") from None
        _LOADED[key] = module
        return key
    if ref in _LOADED:
        return ref
    try:
        _LOADED[ref] = importlib.import_module(ref)
    except Exception as exc:
        raise ValueError(f"{ref}: cannot import module ({type(exc).__name__}: {exc})") from None
    return ref
