"""The brian2 back-end's declaration and layering (capabilities.py, equations.py, network.py).

- CAPABILITIES is importable without brian2 and is what protocol validation asks;
- the rate equation is written in one place (equations.py), every other brian2 module
  builds on it;
- no brian2 module except the trainer adapter imports torch or the torch back-end.
These read the source, so they run without brian2 installed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bioplaus as bp
from bioplaus.backends.brian2.capabilities import (
    BRIAN2_RULES,
    CAPABILITIES,
    SIMULATES,
    can_train,
    check_brian2_protocol,
)
from bioplaus.protocol import protocol_from_dict
from bioplaus.spec import SpecError

PKG = Path(bp.__file__).resolve().parent / "backends" / "brian2"


def _strings(path: Path) -> list[str]:
    """String constants of a module that are not docstrings (f-string parts included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
        and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
    }  # fmt: skip
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
    ]


def _imports(path: Path, package: str = "bioplaus.backends.brian2") -> set[str]:
    """Absolute names of the modules ``path`` (in ``package``) imports, relative resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = package.split(".")
            if n.level:
                base = base[: len(base) - n.level + 1]
                out.add(".".join(base + ([n.module] if n.module else [])))
            else:
                out.add(n.module)
    return out


def test_capabilities_import_without_brian2():
    code = (
        "import sys; import bioplaus.backends.brian2.capabilities as c; "
        "print('brian2' in sys.modules, c.CAPABILITIES)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("False"), out.stdout


def test_capabilities_declare_what_brian2_trains():
    assert CAPABILITIES == {"rate": ("three-factor", "anp")}
    assert CAPABILITIES["rate"] == BRIAN2_RULES
    assert set(SIMULATES) == {"rate", "lif"}
    assert can_train("rate", "anp") and can_train("rate", "three-factor")
    assert not can_train("rate", "bptt") and not can_train("lif", "anp")


def test_the_trainer_runs_each_declared_rule_by_its_runner():
    """The brian2 trainer picks a rule's runner from one table whose names are the
    declaration's (not by comparing the rule's name in code)."""
    from bioplaus.train.brian2_trainer import RUNNERS

    assert set(RUNNERS) == set(BRIAN2_RULES)
    src = (PKG.parents[1] / "train" / "brian2_trainer.py").read_text(encoding="utf-8")
    assert "rule.name ==" not in src


def _proto(**change) -> dict:
    proto = {
        "name": "cap", "seed": 0, "backend": "brian2",
        "model": {"kind": "rate", "n_in": 1, "n_rec": 4, "n_out": 1, "tau": 0.1, "dt": 0.05},
        "task": {"name": "pattern", "dt": 0.05, "n_patterns": 1},
        "rule": {"name": "anp"},
        "train": {"steps": 1, "batch_size": 2},
    }  # fmt: skip
    for key, value in change.items():
        proto[key] = {**proto[key], **value}
    return proto


@pytest.mark.parametrize(
    "change, match",
    [
        ({"rule": {"name": "np"}}, "trains rules"),
        ({"rule": {"name": "anp", "K": 2}}, "K = 1"),
        ({"rule": {"name": "anp", "baseline": "noisy"}}, "clean baseline"),
        ({"rule": {"name": "anp", "norm": "layer"}}, "joint norm"),
        ({"rule": {"name": "anp", "signal": "trace", "trace_decay": 0.9}}, "time-local"),
        ({"model": {"bias": True}}, "bias"),
    ],
)
def test_protocol_validation_asks_the_declaration(change, match):
    protocol_from_dict(_proto())  # the declared combination validates
    with pytest.raises(SpecError, match=match):
        protocol_from_dict(_proto(**change))
    with pytest.raises(ValueError, match=match):  # the same check, asked directly
        check_brian2_protocol(protocol_from_dict({**_proto(**change), "backend": "torch"}))


def test_the_rate_equation_is_written_once():
    """``dx/dt`` of the rate units appears in generated-code strings of equations.py only."""
    where = {
        p.name
        for p in PKG.glob("*.py")
        if p.name != "lif.py" and any("dx/dt" in s for s in _strings(p))
    }
    assert where == {"equations.py"}, where


def test_brian2_backend_imports_no_torch():
    # its trainer adapter lives in the trainer layer (bioplaus/train/brian2_trainer.py): the
    # rate network's trainer hooks with the trials on brian2, picked by the one trainer
    assert not (PKG / "trainer.py").exists()
    assert "bioplaus.networks.rate" in _imports(
        PKG.parents[1] / "train" / "brian2_trainer.py", "bioplaus.train"
    )
    for path in sorted(PKG.glob("*.py")):
        bad = {m for m in _imports(path) if m == "torch" or m.startswith(("torch.",
               "bioplaus.backends.torch"))}  # fmt: skip
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_protocol_module_imports_capabilities_not_the_trainer():
    imports = _imports(PKG.parents[1] / "protocol.py", "bioplaus")
    assert "bioplaus.backends.brian2.capabilities" in imports, imports
    assert not any("brian2.trainer" in m for m in imports), imports
