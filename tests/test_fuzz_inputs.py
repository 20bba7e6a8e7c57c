"""Property-based fuzzer of bad input (issue 17, What to build 7).

hypothesis generates invalid model/protocol files, ``--set`` values and sweep files; each
must end with exit status 2, exactly one line on stderr, no traceback, and nothing written.
Every generated input is invalid by construction: a value outside the field's type or
range (read from the pydantic fields themselves), NaN / ±inf in a float, an unknown key or
section, a rule on a network type or back-end it does not run on, σ = 0 for a perturbation
rule, sizes no machine of 24 GiB can hold, a device that does not exist, a bad sweep key.

Runs in-process through ``bioplaus.cli.main`` (a subprocess per example would cost ~5 s).
The default suite tries a few hundred examples; ``pytest -m slow tests/test_fuzz_inputs.py``
tries thousands and prints the counts reported in docs/reliability.md.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import tempfile
import typing
from collections import Counter
from pathlib import Path

import pytest
from annotated_types import Ge, Gt, Le, Lt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bioplaus import cli
from bioplaus.protocol import TrainSpec
from bioplaus.spec import LIFSpec, MLPSpec, RateSpec
from bioplaus.tomlwrite import dumps, value
from bioplaus.validate import capabilities

RATE = {"kind": "rate", "n_in": 10, "n_rec": 12, "n_out": 10, "tau": 1.0, "dt": 1.0}
LIF = {"kind": "lif", "n_in": 10, "n_rec": 12, "n_out": 10}
MLP = {"kind": "mlp", "sizes": [64, 8, 10]}
COPY = {"name": "copy", "length": 3, "delay": 1}
DIGITS = {"name": "digits", "n_test": 40}
TRAIN = {"steps": 2, "batch_size": 2, "lr": 0.01, "eval_every": 1, "eval_batch": 2}
BASES = {
    "rate": {"model": RATE, "task": COPY, "rule": {"name": "anp"}},
    "lif": {"model": LIF, "task": COPY, "rule": {"name": "anp"}},
    "mlp": {"model": MLP, "task": DIGITS, "rule": {"name": "anp"}},
}
SPECS = {"rate": RateSpec, "lif": LIFSpec, "mlp": MLPSpec}

STATS: Counter = Counter()


def base(kind: str) -> dict:
    b = copy.deepcopy(BASES[kind])
    return {"name": "fz", "seed": 0, **b, "train": dict(TRAIN)}


def _scalar(annotation) -> tuple[str, tuple]:
    """('float' | 'int' | 'bool' | 'literal' | 'str' | 'other', literal values)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if annotation is float or float in args and not any(typing.get_origin(a) for a in args):
        return ("float", ())
    if typing.get_origin(annotation) is typing.Literal:
        return ("literal", typing.get_args(annotation))
    lits = [a for a in args if typing.get_origin(a) is typing.Literal]
    if lits and float in args:
        return ("literal|float", typing.get_args(lits[0]))
    if lits:
        return ("literal", typing.get_args(lits[0]))
    if annotation is bool:
        return ("bool", ())
    if annotation is int or int in args:
        return ("int", ())
    if annotation is str:
        return ("str", ())
    return ("other", ())


def bad_values(field) -> list:
    """Values certainly invalid for a pydantic field (type, range, literal set)."""
    kind, lits = _scalar(field.annotation)
    out: list = [{"a": 1}, [1, 2]] if kind != "other" else []
    lo = hi = None
    for m in field.metadata:
        if isinstance(m, Gt):
            lo = ("gt", m.gt)
        elif isinstance(m, Ge):
            lo = ("ge", m.ge)
        elif isinstance(m, Lt):
            hi = ("lt", m.lt)
        elif isinstance(m, Le):
            hi = ("le", m.le)
    if kind in ("float", "int", "literal|float"):
        out += ["1", True] + [math.nan, math.inf, -math.inf]
        if lo:
            b = lo[1]
            out += [b - 1, b if lo[0] == "gt" else b - 0.5]
        if hi:
            b = hi[1]
            out += [b + 1, b if hi[0] == "lt" else b + 0.5]
        if kind == "int":
            out += [1.5, 2.0]
    if kind == "float":
        pass
    if kind in ("literal", "literal|float"):
        out += ["definitely-not-a-choice", "ANP "]
        if kind == "literal":
            out += [3]
    if kind == "bool":
        out += ["yes", 1, 0.5]
    if kind == "literal|float":
        out = [v for v in out if not (isinstance(v, int) and not isinstance(v, bool))] + [0.0]
    return out


def field_cases() -> list[tuple[str, str, str, object]]:
    """(base kind, section, key, bad value) for every field of every spec."""
    cases = []
    for kind, cls in SPECS.items():
        for key, f in cls.model_fields.items():
            if key == "kind":
                continue
            for v in bad_values(f):
                if kind == "mlp" and key == "sizes":
                    continue
                cases.append((kind, "model", key, v))
        cases += [(kind, "model", "kind", v) for v in ("spiking", 1, "")]
    for key, f in TrainSpec.model_fields.items():
        for v in bad_values(f):
            cases.append(("rate", "train", key, v))
    cases += [("rate", "train", "device", v) for v in ("foo", "meta", "", "cuda:x", "gpu")]
    from bioplaus.registry import RULES

    for name, entry in RULES.items():
        for key, f in entry.options.model_fields.items():
            if key == "name":
                continue
            for v in bad_values(f):
                cases.append(("rate", f"rule:{name}", key, v))
    cases += [("mlp", "model", "sizes", v) for v in ([], [3], [64, 0, 10], [64, -1, 10], "8")]
    for key, vals in {"length": [0, -1, 2.5, "3", math.nan], "delay": [-1, "1", 0.5]}.items():
        cases += [("rate", "task", key, v) for v in vals]
    cases += [("rate", "task", "name", v) for v in ("cpy", 3, "")]
    cases += [("rate", "top", "seed", v) for v in (-1, 1.5, "0", True, math.nan)]
    cases += [("rate", "top", "backend", v) for v in ("nest", 2, "")]
    return cases


FIELD_CASES = field_cases()


def cross_cases() -> list[tuple[str, dict]]:
    """Combinations each field allows alone but not together."""
    out = []
    for rule, cap in capabilities().items():
        for kind in ("rate", "lif", "mlp"):
            if kind not in cap["models"]:
                out.append((kind, {"rule": {"name": rule}}))
        if cap["sigma"]:
            for kind in cap["models"]:
                m = {**BASES[kind]["model"], "sigma": 0.0}
                out.append((kind, {"model": m, "rule": {"name": rule}}))
    out.append(("rate", {"rule": {"name": "np", "baseline": "noisy", "noise_access": "own"}}))
    out.append(("lif", {"rule": {"name": "np", "baseline": "noisy"}}))
    out.append(("rate", {"model": {**RATE, "kind": "mlp"}}))  # rate keys on an mlp
    out.append(
        ("rate", {"model": {"kind": "mlp", "sizes": [10, 8, 10], "output": "linear_mse"}})
    )  # an MLP on a sequence task
    out.append(("rate", {"backend": "brian2", "rule": {"name": "bptt"}}))
    out.append(("lif", {"backend": "brian2"}))
    out.append(("rate", {"model": {**RATE, "dt": 2.0}}))
    out.append(("lif", {"model": {**LIF, "v_reset": 2.0}}))
    out.append(("lif", {"model": {**LIF, "t_ref": 0.003}}))
    out.append(("rate", {"train": {**TRAIN, "lr_decor": 0.1}}))
    out.append(("rate", {"train": {**TRAIN, "lr": 1e300}}))
    for key, v in (("n_rec", 10**6), ("n_rec", 3 * 10**5)):
        out.append(("rate", {"model": {**RATE, key: v}}))
    for key, v in (("batch_size", 10**10), ("threads", 10**5), ("eval_batch", 10**10)):
        out.append(("rate", {"train": {**TRAIN, key: v}}))
    out.append(("rate", {"rule": {"name": "np", "K": 10**9}}))
    out.append(("rate", {"task": {**COPY, "length": 10**9}}))
    return out


CROSS_CASES = cross_cases()
SECTIONS = ["model", "task", "rule", "train"]


def _typo(word: str, i: int) -> str:
    i %= len(word)
    return word[:i] + word[i + 1 :] if i % 2 else word[:i] + word[i] + word[i:]


def build(kind_idx: int, family: int, idx: int, via_set: bool) -> tuple[dict, list[str]]:
    """A bad protocol (and --set overrides applied to a valid one, where the family allows)."""
    if family == 0:  # one field, one bad value
        kind, section, key, v = FIELD_CASES[idx % len(FIELD_CASES)]
        d = base(kind)
        if section == "top":
            if via_set:
                return d, [f"{key}={value(v)}"]
            d[key] = v
            return d, []
        if section.startswith("rule:"):
            section, d["rule"] = "rule", {"name": section.split(":", 1)[1]}
        if via_set and not isinstance(v, dict) and key != "kind":
            return d, [f"{section}.{key}={value(v)}"]
        d[section] = {**d[section], key: v}
        return d, []
    if family == 1:  # a combination
        kind, patch = CROSS_CASES[idx % len(CROSS_CASES)]
        d = base(kind)
        d.update(copy.deepcopy(patch))
        return d, []
    if family == 2:  # an unknown key inside a section, or a mistyped section
        d = base(("rate", "lif", "mlp")[kind_idx % 3])
        sec = SECTIONS[idx % 4]
        if (idx // 4) % 2:
            d[_typo(sec, idx // 8)] = d.pop(sec)
        else:
            junk = f"x{idx}_{_typo(sec, idx)}"
            if via_set:
                return d, [f"{sec}.{junk}=1"]
            d[sec] = {**d[sec], junk: 1}
        return d, []
    # family 3: a required key removed
    d = base(("rate", "lif", "mlp")[kind_idx % 3])
    req = [("model",), ("task",), ("rule",), ("train",), ("train", "steps"), ("rule", "name"),
           ("task", "name")]  # fmt: skip
    path = req[idx % len(req)]
    node = d
    for k in path[:-1]:
        node = node[k]
    del node[path[-1]]
    return d, []


def run_cli(args: list[str], capsys) -> tuple[int | None, str, str | None]:
    try:
        rc = cli.main(args)
    except SystemExit as exc:  # argparse
        rc = exc.code if isinstance(exc.code, int) else 2
    except Exception as exc:  # noqa: BLE001 — what the fuzzer is looking for
        cap = capsys.readouterr()
        return None, cap.err, f"{type(exc).__name__}: {exc}"
    return rc, capsys.readouterr().err, None


def check(rc, err, exc, out: Path) -> None:
    STATS["tried"] += 1
    if exc is not None:
        STATS["tracebacks"] += 1
        raise AssertionError(f"traceback: {exc}")
    if rc == 0:
        STATS["silent acceptances"] += 1
        raise AssertionError("accepted")
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert not out.exists(), f"{out} written: {err}"
    STATS["clean"] += 1


#: every test here sees a machine of 24 GiB (conftest.machine_of_24_gib)
pytestmark = pytest.mark.usefixtures("machine_of_24_gib")


def _protocol_example(capsys, kind_idx, family, idx, via_set):
    d = Path(tempfile.mkdtemp(prefix="fz"))
    try:
        data, overrides = build(kind_idx, family, idx, via_set)
        p = d / "p.toml"
        p.write_text(dumps(data))
        out = d / "run"
        args = ["run", str(p), "--out", str(out), "--quiet"]
        for o in overrides:
            args += ["--set", o]
        check(*run_cli(args, capsys), out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


SWEEP_BAD = [
    "threads = true\n", "threads = 0\n", 'threads = "2"\n', "threads = 1.5\n",
    'name = "../../escaped"\n', 'name = "a/b"\n', 'name = ".."\n', 'name = ""\n', "name = 3\n",
    'name = ".hidden"\n', 'retries = -1\n', "retries = true\n", 'table = "xlsx"\n',
    "[plot]\ncolour = 1\n", '[plot]\nx = 3\n', "frobnicate = 1\n", 'protocol = "nope.toml"\n',
    "[random]\nsamples = 0\n", '[random]\nsamples = 2\n', "[fixed]\nx = {a = 1}\n",
    '[fixed]\n"train.momentum" = nan\n', '[fixed]\n"model.sigma" = -4\n',
    '[fixed]\n"rule.name" = "xx"\n',
    '[fixed]\n"train.device" = "foo"\n', '[fixed]\n"model.tau" = inf\n',
]  # fmt: skip
GRIDS = [
    '[grid]\n"train.lr" = [0.01, 0.02]\n',
    '[grid]\n"train.lr" = {logspace = [-3, -2], num = 2}\n',
    '[grid]\n"model.n_rec" = [8, 12]\n',
]


def _sweep_example(capsys, i, g, bad_grid):
    d = Path(tempfile.mkdtemp(prefix="fzs"))
    try:
        data = base("rate")
        (d / "p.toml").write_text(dumps(data))
        extra = SWEEP_BAD[i % len(SWEEP_BAD)]
        grid = GRIDS[g % len(GRIDS)]
        if bad_grid:  # a grid that cannot be expanded or validated instead
            extra = ""
            grid = ['[grid]\n"train.lr" = []\n', '[grid]\n"train.lr" = 3\n',
                    '[grid]\n"train.lr" = [0.0, 0.1]\n', '[grid]\n"train.steps" = [1, -1]\n',
                    '[grid]\n"rule.name" = ["anp", "nope"]\n',
                    '[grid]\n"train.lr" = {logspace = [-3], num = 2}\n'][g % 6]  # fmt: skip
        top = 'protocol = "p.toml"\n'
        if extra.startswith("protocol"):
            top, extra = extra, ""
        text = top + grid + extra if extra.startswith("[") else top + extra + grid
        s = d / "s.toml"
        s.write_text(text)
        out = d / "sw"
        old = os.getcwd()
        os.chdir(d)  # the default output folder (runs/sweeps/NAME) would land here
        try:
            rc, err, exc = run_cli(["sweep", str(s), "--out", str(out), "--quiet"], capsys)
            if "escaped" in text or "a/b" in text:
                rc2, err2, exc2 = run_cli(["sweep", str(s), "--quiet"], capsys)
                check(rc2, err2, exc2, d / "runs")
        finally:
            os.chdir(old)
        check(rc, err, exc, out)
        assert not (d.parent / "escaped").exists()
    finally:
        shutil.rmtree(d, ignore_errors=True)


PROTOCOL_ARGS = dict(
    kind_idx=st.integers(0, 2),
    family=st.sampled_from([0, 0, 0, 1, 2, 3]),
    idx=st.integers(0, 10_000),
    via_set=st.booleans(),
)
SWEEP_ARGS = dict(i=st.integers(0, 1000), g=st.integers(0, 100), bad_grid=st.booleans())
FAST = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOW = settings(FAST, max_examples=4000)


@FAST
@given(**PROTOCOL_ARGS)
def test_fuzz_bad_protocols(capsys, kind_idx, family, idx, via_set):
    _protocol_example(capsys, kind_idx, family, idx, via_set)


@settings(FAST, max_examples=60)
@given(**SWEEP_ARGS)
def test_fuzz_bad_sweeps(capsys, i, g, bad_grid):
    _sweep_example(capsys, i, g, bad_grid)


def _enumerated(capsys, via_set: bool) -> int:
    n = 0
    for family, cases in ((0, FIELD_CASES), (1, CROSS_CASES)):
        for idx in range(len(cases)):
            _protocol_example(capsys, 0, family, idx, via_set and family == 0)
            n += 1
    for idx in range(16):
        _protocol_example(capsys, idx % 3, 2, idx, via_set)
    for i in range(len(SWEEP_BAD)):
        _sweep_example(capsys, i, i, False)
    return n


def test_every_field_case_and_combination_once(capsys):
    """Not left to chance: each enumerated case runs once (in the file)."""
    assert _enumerated(capsys, via_set=False) > 300


@pytest.mark.slow
def test_every_field_case_through_set(capsys):
    """… and once more with the bad value given as --set on a valid file."""
    assert _enumerated(capsys, via_set=True) > 300


@pytest.mark.slow
@SLOW
@given(**PROTOCOL_ARGS)
def test_fuzz_bad_protocols_thousands(capsys, kind_idx, family, idx, via_set):
    _protocol_example(capsys, kind_idx, family, idx, via_set)


@pytest.mark.slow
@settings(SLOW, max_examples=600)
@given(**SWEEP_ARGS)
def test_fuzz_bad_sweeps_many(capsys, i, g, bad_grid):
    _sweep_example(capsys, i, g, bad_grid)


def teardown_module(module):
    if STATS["tried"]:
        print(
            f"\nfuzzer: {STATS['tried']} cases tried, {STATS['clean']} clean, "
            f"{STATS['tracebacks']} tracebacks, {STATS['silent acceptances']} silent acceptances"
        )
