"""Checks made before any work starts: a protocol's cross-field rules, the device, the memory
a run needs, the run folder, and the arguments of ``bp.simulate`` / ``bp.estimate``.

Everything a pydantic model cannot see alone lives here, in one place: which rule runs on
which network type (:func:`capabilities`, from the rule registry), which rules need σ > 0,
the device string, finite numbers in rule options, sizes against the machine's memory. The run layer
calls :func:`check_protocol` before it creates the run folder, so a bad protocol ends with one
line (``source: key: problem``) and nothing written.

Errors are :class:`~bioplaus.spec.SpecError` (a ``ValueError``) or ``TypeError`` for an
argument of the wrong type; every message is one line that names the key or argument.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .registry import Memory, network_type
from .spec import ModelSpec, SpecError

# -- capabilities --------------------------------------------------------------------------
#: Which rule trains which network type, and whether it needs a perturbation σ > 0, derived
#: from the rule registry's declarations (``networks``, ``mechanism``): node and weight
#: perturbation need σ > 0, the online three-factor rule only with Gaussian exploration
#: (kicks explore without it), gradient rules never. Back-end limits are the back-ends' own
#: (``backends/brian2/capabilities.py``, called by ``ProtocolSpec``).
_SIGMA = {"node": True, "weight": True, "online": None, "gradient": False}


def capabilities() -> dict[str, dict[str, Any]]:
    """``{rule: {"models": {...}, "sigma": True | False | None}}`` for every registered rule."""
    from .registry import RULES

    return {
        name: {"models": set(e.networks), "sigma": _SIGMA.get(e.mechanism, False)}
        for name, e in RULES.items()
    }


#: rule options a network type cannot honour, (option, allowed values, why): each type
#: declares its own (``register_network(option_limits=...)``); these are the built-in ones'
RATE_OPTION_LIMITS: tuple[tuple[str, tuple, str], ...] = (
    ("noise_access", ("difference",), "'own' is for feed-forward (mlp) models"),
    ("c_reg", (0.0,), "firing-rate regularisation is for LIF networks"),
)
LIF_OPTION_LIMITS: tuple[tuple[str, tuple, str], ...] = (
    ("baseline", ("clean",), "the LIF driver has only a clean (unperturbed) baseline"),
    ("noise_access", ("difference",), "'own' is for feed-forward (mlp) models"),
)
#: rule options that are floats: each must be finite (and > 0 where pydantic says so)
RULE_FLOATS = (
    "sigma", "trace_decay", "tau_e", "tau_b", "tau_r", "kick_rate", "kick_amplitude",
    "supralinear", "scale", "c_reg", "f0",
)  # fmt: skip


class UnknownKeywordError(SpecError, TypeError):
    """An unknown keyword argument: a TypeError as Python raises it, and a SpecError (one line,
    naming the keyword) as the rest of bioplaus's bad input."""


DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
DTYPES = ("float32", "float64")
GIB = 1024**3


# -- devices -------------------------------------------------------------------------------
def check_device(device: Any, key: str = "device", error: type[Exception] = SpecError) -> None:
    """``device`` is ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` and exists on this machine."""
    if not isinstance(device, str):
        raise TypeError(f"{key}: expected a device name such as 'cpu' or 'cuda:0' (got {device!r})")
    if not DEVICE_RE.match(device):
        raise error(f"{key}: unknown device {device!r} (choose cpu, cuda, cuda:N or mps)")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise error(f"{key}: {device!r} requested but CUDA is not available on this machine")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise error(
                f"{key}: {device!r} requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    if device == "mps":
        import torch

        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise error(f"{key}: 'mps' requested but MPS is not available on this machine")


# -- memory ----------------------------------------------------------------------------------
def machine_memory(device: str = "cpu") -> int | None:
    """Total memory (bytes) of the machine, or of a CUDA device; None when unknown.

    ``BIOPLAUS_MEMORY_GIB`` overrides it (tests; a batch job's share of a node)."""
    env = os.environ.get("BIOPLAUS_MEMORY_GIB")
    if env:
        try:
            return int(float(env) * GIB)
        except ValueError:
            pass
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            idx = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
            return int(torch.cuda.get_device_properties(idx).total_memory)
        return None
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.virtual_memory().total)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def task_steps(task: Any) -> int:
    """Time steps T of the task's trials (1 for static tasks; best effort for user tasks)."""
    T = getattr(task, "T", None)
    if isinstance(T, int | np.integer) and T > 0:
        return int(T)
    length = getattr(task, "length", None)
    if isinstance(length, int | np.integer) and length > 0:
        return int(length) + int(getattr(task, "offset", 0) or 0)
    return 1


def estimate_memory(protocol: Any, task: Any = None) -> tuple[int, str]:
    """A lower estimate of the bytes a run needs, and what dominates it.

    Counted: the weights with their gradient estimate and optimizer state, the states of
    the stacked passes (and their history for BPTT), the per-trial eligibility traces of
    the trial/rtg/trace credit signals, the task's batches (float64), and one thread stack
    (8 MiB) per torch thread. Only what certainly has to fit is counted. What the model
    needs is its network type's declaration (``memory``: :func:`rnn_memory`,
    :func:`mlp_memory`); a type without one counts only the thread stacks."""
    total, what, _ = _memory(protocol, task)
    return total, what


def _memory(protocol: Any, task: Any) -> tuple[int, str, str]:
    """:func:`estimate_memory`'s bytes and dominant parts, and the key to reduce."""
    m, rs, tr = protocol.model, protocol.rule, protocol.train
    item = 8 if tr.dtype == "float64" else 4
    B = max(tr.batch_size, tr.eval_batch)
    T = task_steps(task) if task is not None else 1
    K = getattr(rs, "K", 1) or 1
    noisy_base = getattr(rs, "baseline", "clean") == "noisy"
    gradient = getattr(rs, "mechanism", None) == "gradient"  # bp, bptt, tbptt, a user's
    rows = B if gradient else B * (K + (2 if noisy_base else 1))
    # weights and their estimate, plus Adam's two moments or SGD's momentum buffer
    copies = 4 if tr.optimizer == "adam" else (3 if tr.momentum > 0 else 2)
    memory = network_type(m.kind).memory
    mem = (
        Memory()
        if memory is None
        else memory(m, rs, batch=B, steps=T, rows=rows, item=item, gradient=gradient)
    )
    parts = {"weights": mem.weights * item * copies, **mem.parts}
    parts["threads"] = (tr.threads or 1) * 8 * 1024**2
    total = int(sum(parts.values()))
    top = sorted(parts, key=parts.get, reverse=True)[:2]
    top = [k for k in top if parts[k] >= 0.1 * total]
    names = {
        "weights": mem.name,
        "states": "states",
        "traces": "eligibility traces",
        "data": "task batches",
        "threads": f"{tr.threads or 1} thread stacks",
    }
    first = top[0] if top else "threads"
    reduce = "train.threads" if first == "threads" else _REDUCE.get(first, mem.reduce)
    return total, " and ".join(names.get(k, k) for k in top), reduce


def rnn_memory(per_state: int):
    """The memory estimate of a recurrent network with N = ``n_rec`` units and
    ``per_state`` state tensors per unit (rate: x, r; LIF: v, I, r, refractory), for
    ``register_network(memory=...)``: weights N² + N n_in + n_out N (+ N², n_in² for D_rec,
    D_in), states rows·N·per_state (every step's for BPTT), the per-trial eligibility traces
    B·K·N·(n_in + N + 1) of the trial/rtg/trace credit signals, task batches
    T·B·(n_in + n_out + 1) in float64 (twice: train and evaluation)."""

    def memory(m, rs, *, batch: int, steps: int, rows: int, item: int, gradient: bool) -> Memory:
        B, T, K = batch, steps, getattr(rs, "K", 1) or 1
        N, n_in, n_out = m.n_rec, m.n_in, m.n_out
        n_w = N * N + N * n_in + n_out * N
        if m.decorrelate_rec:
            n_w += N * N
        if m.decorrelate_input:
            n_w += n_in * n_in
        states = rows * N * item * per_state
        if gradient:
            states *= max(T, 1)  # autograd keeps every step's states
        traces = 0
        if getattr(rs, "per_sample_traces", False):
            traces = B * K * N * (n_in + N + 1) * item  # per-trial traces E [P, N, M]
        parts = {"states": states, "traces": traces, "data": T * B * (n_in + n_out + 1) * 8 * 2}
        return Memory(n_w, parts, name="W_rec", reduce="model.n_rec")

    return memory


def mlp_memory(m, rs, *, batch: int, steps: int, rows: int, item: int, gradient: bool) -> Memory:
    """The memory estimate of a feed-forward network of layer sizes n_0 … n_L: weights
    Σ (n_l n_{l+1} + n_{l+1}) (+ Σ n_l² for the D_l), states rows·Σ n_l (three copies for the
    exact gradient), static batches B·(n_in + n_out) in float64 (train and evaluation)."""
    sizes = list(m.sizes)
    n_w = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    if m.decorrelate:
        n_w += sum(a * a for a in sizes[:-1])
    parts = {
        "states": rows * sum(sizes) * item * (3 if gradient else 2),
        "data": batch * (m.n_in + m.n_out) * 8 * 2,
    }
    return Memory(n_w, parts)


#: what to reduce, by the part of :func:`estimate_memory` that dominates (the weights: the
#: network type's ``Memory.reduce``)
_REDUCE = {
    "states": "train.batch_size, rule.K or model.n_rec",
    "traces": "train.batch_size, rule.K or model.n_rec",
    "data": "the task's length or train.batch_size",
}


def _gib(n: float) -> str:
    g = n / GIB
    return f"{g:.0f} GiB" if g >= 10 else f"{g:.2g} GiB"


def check_memory(protocol: Any, task: Any = None, source: str | None = None) -> None:
    """Refuse, in one line, a run whose sizes cannot fit this machine's memory."""
    need, what, reduce = _memory(protocol, task)
    have = machine_memory(protocol.train.device)
    if have is not None and need > have:
        head = f"{source}: " if source else ""
        where = "this GPU" if protocol.train.device.startswith("cuda") else "this machine"
        raise SpecError(
            f"{head}sizes: needs ≈ {_gib(need)} for {what}, {where} has {_gib(have)} "
            f"(reduce {reduce})"
        )


# -- protocols -------------------------------------------------------------------------------
def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def check_rule_options(rs: Any, error: type[Exception] = SpecError, head: str = "") -> None:
    """Finite rule options; a numeric ANP scale is > 0."""
    for key in RULE_FLOATS:
        v = getattr(rs, key, None)
        if isinstance(v, float | int) and not isinstance(v, bool) and not _finite(float(v)):
            raise error(f"{head}rule.{key}: must be a finite number (got {v})")
    scale = getattr(rs, "scale", None)
    if isinstance(scale, float | int) and not isinstance(scale, bool) and not scale > 0:
        raise error(f"{head}rule.scale: must be 'n', 'sqrt_n' or a number > 0 (got {scale})")


def check_rule_model(rs: Any, model: Any, backend: str = "torch", head: str = "") -> None:
    """The rule can run on this network type and back-end, with the σ it needs."""
    caps = capabilities()
    cap = caps.get(rs.name)
    if cap is None:  # not registered: its own checks apply
        return
    kind = model.kind
    if kind not in cap["models"]:
        ok = sorted(r for r, c in caps.items() if kind in c["models"])
        raise SpecError(
            f"{head}rule.name: rule {rs.name!r} does not run on a {kind} model (rules for "
            f"{kind}: {', '.join(ok)})"
        )
    for opt, allowed, why in network_type(kind).option_limits:
        if getattr(rs, opt, allowed[0]) not in allowed:
            raise SpecError(f"{head}rule.{opt}: {getattr(rs, opt)!r} on a {kind} model: {why}")
    needs_sigma = cap["sigma"]
    if needs_sigma is None:  # online: only Gaussian exploration needs σ (three-factor)
        needs_sigma = getattr(rs, "noise", None) == "gaussian"
    if needs_sigma:
        from .rules.options import noise_sigma

        sigma = noise_sigma(getattr(rs, "sigma", None), model.sigma)
        where = "model.sigma" if getattr(rs, "sigma", None) is None else "rule.sigma"
        if not sigma > 0:
            what = "Gaussian exploration" if cap["sigma"] is None else "perturbation"
            raise SpecError(
                f"{head}{where}: rule {rs.name!r} needs sigma > 0 for its {what} (got {sigma})"
            )


def check_protocol(protocol: Any, source: str | None = None, task: Any = None) -> None:
    """Every cross-field rule of model × task × rule × back-end × device, before a run starts.

    ``task``: the built task, for the checks that need its sizes (an MLP needs static
    samples; memory). Raises :class:`SpecError` (one line, ``source: key: problem``)."""
    head = f"{source}: " if source else ""
    m, rs, tr = protocol.model, protocol.rule, protocol.train
    check_rule_options(rs, head=head)
    check_rule_model(rs, m, protocol.backend, head=head)
    check_device(tr.device, key=f"{head}train.device")
    fi = np.finfo(np.float32 if tr.dtype == "float32" else np.float64)
    big, tiny = float(fi.max), float(fi.tiny)
    for section, obj in (("train", tr), ("model", m), ("rule", rs)):
        for key, v in obj.model_dump().items():
            if isinstance(v, float) and (abs(v) > big or 0 < abs(v) < tiny):
                raise SpecError(
                    f"{head}{section}.{key}: {v:g} does not fit train.dtype {tr.dtype!r}"
                )
    if task is not None:
        if not network_type(m.kind).sequential and task_steps(task) > 1:
            raise SpecError(
                f"{head}model.kind: an {m.kind} model needs static samples but task "
                f"{getattr(task, 'name', '?')!r} is a sequence task (T = {task_steps(task)})"
            )
        if protocol.backend == "brian2" and getattr(task, "loss", "mse") != "mse":
            raise SpecError(f"{head}backend: 'brian2' trains mse tasks (task loss {task.loss!r})")
    check_memory(protocol, task, source)


# -- the run folder ----------------------------------------------------------------------------
def check_out(out: str | Path, key: str = "out") -> None:
    """The run folder ``out`` can be created (or is a writable folder). One-line SpecError."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError(f"{key}: {out} is a file, not a folder")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise SpecError(f"{key}: cannot create {out}: {probe} is a file")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise SpecError(f"{key}: cannot create {out}: {probe} is not writable")


# -- the Python API ------------------------------------------------------------------------------
def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed: expected a non-negative integer (got {seed!r})")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative integer (got {seed})")


def _numeric(name: str, a: Any) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except Exception as exc:  # noqa: BLE001 — ragged lists and the like
        raise TypeError(f"{name}: expected a numeric array ({exc})") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name}: expected a numeric array (got dtype {arr.dtype})")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name}: expected a real array (got dtype {arr.dtype})")
    return arr


def _finite_array(name: str, arr: np.ndarray, allow_nonfinite: bool) -> None:
    if not allow_nonfinite and arr.size and not np.all(np.isfinite(arr)):
        raise SpecError(f"{name}: contains NaN or Inf (pass allow_nonfinite=True to allow it)")


def check_shapes(params: Mapping[str, Any], shapes: dict[str, tuple[int, ...]], required) -> None:
    """Raise ValueError naming the key if a ``required`` key is missing, or a key is not in
    ``shapes`` or has another shape (every network type's parameter check)."""
    for key in required:
        if key not in params:
            raise ValueError(f"params: missing {key}")
    for key, value in params.items():
        if key not in shapes:
            raise ValueError(f"params: unknown parameter {key!r}")
        if tuple(np.shape(value)) != shapes[key]:
            raise ValueError(
                f"params: {key} has shape {tuple(np.shape(value))}, expected {shapes[key]}"
            )


def check_spec_type(spec: Any) -> None:
    """``spec`` is a model spec object (TypeError naming ``spec`` otherwise)."""
    _check_spec(spec, "init_params")


def _check_spec(spec: Any, what: str) -> Any:
    """``spec`` is an instance of the spec class of the network type its ``kind`` names
    (TypeError otherwise); that type, whose ``simulate`` is not None for ``bp.simulate``."""
    from .registry import NETWORK_TYPES, spec_classes

    if isinstance(spec, Mapping):
        raise TypeError(
            "spec: expected a model spec (bp.RateSpec, bp.LIFSpec, bp.MLPSpec or "
            "bp.load_model(path)), got a dict; build one with bp.RateSpec(**d)"
        )
    classes = spec_classes()
    kind = getattr(spec, "kind", None)
    if not (isinstance(kind, str) and kind in classes and isinstance(spec, classes[kind])):
        raise TypeError(f"spec: expected a model spec, got {type(spec).__name__}")
    nt = NETWORK_TYPES.get(kind)
    if what == "simulate" and nt.simulate is None:
        dynamic = [c.__name__ for k, c in classes.items() if NETWORK_TYPES.get(k).simulate]
        raise TypeError(
            f"spec: simulate runs recurrent networks ({', '.join(dynamic)}); an "
            f"{type(spec).__name__} has no dynamics to simulate"
        )
    return nt


def _check_params(params: Any, allow_nonfinite: bool) -> None:
    if params is None:
        return
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected a dict of arrays (got {type(params).__name__})")
    for k, v in params.items():
        arr = _numeric(f"params: {k}", v)
        _finite_array(f"params: {k}", arr, allow_nonfinite)


def check_simulate(
    spec: Any,
    inputs: Any,
    params: Any = None,
    backend: Any = "torch",
    noise: Any = None,
    seed: Any = 0,
    x0: Any = None,
    device: Any = "cpu",
    dtype: Any = "float32",
    options: Mapping[str, Any] | None = None,
    allow_nonfinite: bool = False,
) -> None:
    """The arguments of ``bp.simulate``: TypeError / ValueError naming the argument."""
    nt = _check_spec(spec, "simulate")
    _check_seed(seed)
    if not isinstance(backend, str) or backend not in ("torch", "brian2"):
        raise SpecError(f"backend: unknown backend {backend!r} (choose from ['torch', 'brian2'])")
    if dtype not in DTYPES:
        raise SpecError(f"dtype: must be one of {list(DTYPES)} (got {dtype!r})")
    check_device(device, key="device")
    if backend == "brian2" and device != "cpu":
        raise SpecError(f"device: backend 'brian2' runs on the CPU (got {device!r})")
    options = dict(options or {})
    if backend == "torch":
        allowed = set(nt.simulate_options)  # LIF: spikes, spike_times, crossing
        unknown = sorted(set(options) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed)) if allowed else "no backend options"
            raise UnknownKeywordError(
                f"simulate() got an unexpected keyword argument {unknown[0]!r} (backend "
                f"'torch' takes {takes})"
            )
    arr = _numeric("inputs", inputs)
    if arr.ndim != 3:
        raise SpecError(f"inputs: expected shape [T, B, n_in={spec.n_in}], got {arr.shape}")
    T, B = arr.shape[:2]
    _check_params(params, allow_nonfinite)
    if noise is not None:
        n = _numeric("noise", noise)
        if n.shape != (T, B, spec.n_rec):
            raise SpecError(f"noise: expected shape {(T, B, spec.n_rec)}, got {n.shape}")
        _finite_array("noise", n, allow_nonfinite)
    if x0 is not None:
        # the initial state by the type's name of it (LIF: v0)
        name = "x0" if nt.state == "x" else f"x0 ({nt.state}0 of a {nt.kind.upper()} network)"
        a = _numeric("x0", x0)
        if a.shape != (B, spec.n_rec):
            raise SpecError(f"{name}: expected shape {(B, spec.n_rec)} [B, N], got {a.shape}")
        _finite_array("x0", a, allow_nonfinite)


def check_estimate(
    rule: Any,
    spec: Any,
    params: Any,
    inputs: Any,
    targets: Any,
    seed: Any = 0,
    mask: Any = None,
    device: Any = "cpu",
    dtype: Any = "float32",
    options: Mapping[str, Any] | None = None,
    allow_nonfinite: bool = False,
) -> None:
    """The arguments of ``bp.estimate``: the rule with its options validated again (also a
    :class:`RuleSpec` given with extra options), the rule against the network type, seed,
    device, dtype, finite params and mask."""
    from pydantic import ValidationError

    from .rules.options import RuleOptionError, RuleSpec, rule_options
    from .spec import format_validation_error

    _check_spec(spec, "estimate")
    _check_seed(seed)
    if dtype not in DTYPES:
        raise SpecError(f"dtype: must be one of {list(DTYPES)} (got {dtype!r})")
    check_device(device, key="device")
    options = dict(options or {})
    if "name" in options:
        raise TypeError("estimate(): name the rule with the first argument, not name=")
    if isinstance(rule, RuleSpec):  # validated again with the options given here
        data = {**rule.model_dump(), **options}
    elif isinstance(rule, str):
        data = {"name": rule, **options}
    else:
        raise TypeError(f"rule: expected a rule name or a bp.RuleSpec (got {type(rule).__name__})")
    try:
        rs = rule_options(data)
    except RuleOptionError as exc:
        if exc.key in options and exc.problem.startswith("unknown key"):
            raise UnknownKeywordError(
                f"estimate() got an unexpected keyword argument {exc.key!r} (rule "
                f"{data['name']!r}: {exc.problem})"
            ) from None
        raise SpecError(f"rule.{exc.key}: {exc.problem}") from None
    except ValidationError as err:
        raise SpecError(format_validation_error(err, None, prefix="rule.")) from None
    check_rule_options(rs)
    check_rule_model(rs, spec)
    if params is None or not isinstance(params, Mapping):
        raise TypeError(f"params: expected a dict of arrays (got {type(params).__name__})")
    _check_params(params, allow_nonfinite)
    _numeric("inputs", inputs)
    _numeric("targets", targets)
    if mask is not None:
        mk = _numeric("mask", mask)
        _finite_array("mask", mk, allow_nonfinite)
        if mk.size and np.any(mk < 0):
            raise SpecError("mask: must be >= 0 (1 where a step is scored, 0 elsewhere)")


# -- the data of bp.simulate / bp.estimate ------------------------------------------------
def check_inputs(spec: ModelSpec, inputs: np.ndarray, name: str = "inputs") -> np.ndarray:
    """Validate [T, B, n_in] inputs; return them as float64."""
    arr = np.asarray(inputs, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != spec.n_in:
        raise SpecError(f"{name}: expected shape [T, B, n_in={spec.n_in}], got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise SpecError(f"{name}: empty sequence or batch (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise SpecError(f"{name}: contains NaN or Inf")
    return arr


def check_targets(
    spec: ModelSpec, inputs: np.ndarray, targets, mask
) -> tuple[np.ndarray, np.ndarray | None]:
    """Targets [T, B, n_out] (finite) and an optional mask [T, B] for checked ``inputs``
    [T, B, n_in] → float64 (targets, mask)."""
    T, B, _ = inputs.shape
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape != (T, B, spec.n_out):
        raise SpecError(f"targets: expected shape {(T, B, spec.n_out)}, got {targets.shape}")
    if not np.all(np.isfinite(targets)):
        raise SpecError("targets: contains NaN or Inf")
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float64)
        if mask.shape != (T, B):
            raise SpecError(f"mask: expected shape {(T, B)}, got {mask.shape}")
    return targets, mask


def check_mlp_data(spec, inputs, targets, mask) -> tuple[np.ndarray, np.ndarray]:
    """MLP data: inputs [B, n_in] (or [1, B, n_in], a T = 1 sequence as tasks produce) and
    targets [B, n_out] (or [1, B, n_out]) → float64 [B, ·]."""
    if mask is not None:
        raise SpecError("mask: a feed-forward model scores every sample (pass mask=None)")
    out = []
    for name, arr, n in (("inputs", inputs, spec.n_in), ("targets", targets, spec.n_out)):
        a = np.asarray(arr, dtype=np.float64)
        if a.ndim == 3 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 2 or a.shape[1] != n or a.shape[0] == 0:
            raise SpecError(f"{name}: expected shape [B, {n}] or [1, B, {n}], got {np.shape(arr)}")
        if not np.all(np.isfinite(a)):
            raise SpecError(f"{name}: contains NaN or Inf")
        out.append(a)
    if out[0].shape[0] != out[1].shape[0]:
        raise SpecError(
            f"targets: batch {out[1].shape[0]} does not match inputs' batch {out[0].shape[0]}"
        )
    return out[0], out[1]
