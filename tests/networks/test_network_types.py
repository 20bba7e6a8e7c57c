"""The open registry of network types: one entry per type (rate, LIF, MLP), found by name;
``bp.init_params``, ``bp.simulate``, ``bp.estimate``, the trainer, the run loop, exports and
analysis look it up instead of branching on ``spec.kind``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

import bioplaus as bp
from bioplaus.registry import NETWORK_TYPES, RULES, NetworkType, TrainerHooks, network_kinds

ROOT = Path(__file__).resolve().parents[2]


def _toy_init(spec, seed: int = 0) -> dict[str, np.ndarray]:
    """A user's network type: one weight matrix W [n_out, n_in], zeros."""
    return {"W": np.zeros((spec.n_out, spec.n_in))}


def _toy_check(spec, params) -> None:
    if params["W"].shape != (spec.n_out, spec.n_in):
        raise ValueError("W: wrong shape")


def _toy_estimate(rs, spec, params, inputs, targets, seed, mask, loss, device, dtype):
    return {"W": np.ones_like(params["W"])}


class ToyTrainer:
    """A user's network type may bring a trainer class of its own (``trainer=``)."""


class ToyRuleOptions(bp.RuleSpec):
    name: Literal["toy-exact"] = "toy-exact"


@pytest.fixture
def toy():
    entry = bp.register_network(
        "toy",
        init_params=_toy_init,
        check_params=_toy_check,
        estimate=_toy_estimate,
        trainer=f"{__name__}:ToyTrainer",
        state="h",
        reference="bp",
        sequential=False,
        alignment=False,
        summary="a test's network type",
    )
    yield entry
    NETWORK_TYPES.remove("toy")


def test_builtin_types_are_registered_with_their_entry_points():
    assert {"rate", "lif", "mlp"} <= set(network_kinds())
    rate, lif, mlp = (bp.network_type(k) for k in ("rate", "lif", "mlp"))
    assert (rate.state, lif.state) == ("x", "v")
    assert (rate.reference, lif.reference, mlp.reference) == ("bptt", "bptt", "bp")
    assert rate.alignment and mlp.alignment and not lif.alignment
    assert rate.sequential and lif.sequential and not mlp.sequential
    # one trainer for every built-in type, what differs in the type's hooks
    assert {nt.trainer_class().__name__ for nt in (rate, lif, mlp)} == {"Trainer"}
    assert all(isinstance(nt.hooks, TrainerHooks) for nt in (rate, lif, mlp))
    assert rate.hooks.alignment is not None and mlp.hooks.alignment is not None
    assert lif.hooks.alignment is None
    assert mlp.simulate is None and callable(rate.simulate) and callable(lif.simulate)
    for k in ("rate", "lif", "mlp"):
        assert bp.network_type(k).module == f"bioplaus.{'mlp' if k == 'mlp' else 'params'}"


def test_the_trainer_hooks_are_picked_by_backend():
    """One Trainer on every back-end: the rate type names its brian2 hooks (the trials and
    the clean evaluation on brian2), a type without them does not train there."""
    rate, lif = bp.network_type("rate"), bp.network_type("lif")
    assert rate.trainer_hooks("torch") is rate.hooks and lif.trainer_hooks() is lif.hooks
    with pytest.raises(ValueError, match="network type 'lif' does not train on 'brian2'"):
        lif.trainer_hooks("brian2")
    pytest.importorskip("brian2")
    from bioplaus.train import brian2_trainer

    hooks = rate.trainer_hooks("brian2")
    assert hooks is brian2_trainer.HOOKS and hooks.alignment is None
    assert hooks.tensors is rate.hooks.tensors and hooks.estimate is not rate.hooks.estimate


def test_init_params_is_the_network_types():
    for spec in (
        bp.RateSpec(n_in=2, n_rec=5, n_out=1),
        bp.LIFSpec(n_in=2, n_rec=5, n_out=1),
        bp.MLPSpec(sizes=[3, 4, 2]),
    ):
        nt = bp.network_type(spec.kind)
        want, got = nt.init_params(spec, 3), bp.init_params(spec, seed=3)
        assert want.keys() == got.keys()
        assert all(np.array_equal(want[k], got[k]) for k in want)


def test_the_public_api_looks_the_type_up():
    """Replacing the registered entry changes what ``bp.init_params`` and ``bp.simulate`` do:
    they dispatch through the registry, not on the spec's kind."""
    rate = bp.network_type("rate")
    seen = []

    def init(spec, seed=0):
        seen.append("init")
        return rate.init_params(spec, seed)

    def simulate(*args, **kwargs):
        seen.append("simulate")
        return rate.simulate(*args, **kwargs)

    NETWORK_TYPES.add("rate", dataclasses.replace(rate, init_params=init, simulate=simulate),
                      replace=True)  # fmt: skip
    try:
        spec = bp.RateSpec(n_in=2, n_rec=5, n_out=1)
        x = bp.simulate(spec, np.ones((3, 2, 2)))
    finally:
        NETWORK_TYPES.add("rate", rate, replace=True)
    assert seen == ["init", "simulate"] and x.shape == (3, 2, 5)


def test_a_network_type_registered_in_a_test_module_is_found_by_name(toy):
    nt = bp.network_type("toy")
    assert isinstance(nt, NetworkType) and nt is toy and "toy" in network_kinds()
    assert nt.module == __name__ and nt.state == "h" and nt.simulate is None
    assert nt.trainer_class() is ToyTrainer
    spec = bp.MLPSpec(sizes=[3, 2])
    assert nt.init_params(spec, 0)["W"].shape == (2, 3)
    # a rule may declare it among the networks it is written for
    entry = bp.register_rule(
        "toy-exact", options=ToyRuleOptions, build=None, mechanism="gradient", networks=("toy",)
    )
    try:
        assert entry.networks == ("toy",)
    finally:
        RULES.remove("toy-exact")
    # the same module registering again keeps the newest; another entry needs replace=True
    again = bp.register_network("toy", init_params=_toy_init, check_params=_toy_check,
                                estimate=_toy_estimate)  # fmt: skip
    assert bp.network_type("toy") is again
    with pytest.raises(ValueError, match="network type 'toy' is already registered"):
        NETWORK_TYPES.add("toy", dataclasses.replace(again, module="elsewhere"))


def test_an_unknown_kind_is_a_one_line_error():
    with pytest.raises(KeyError) as err:
        bp.network_type("lfi")
    msg = err.value.args[0]
    assert "\n" not in msg
    assert re.fullmatch(
        r"unknown network type 'lfi' \(did you mean 'lif'\?\) \(choose from \[.*'rate'.*\]\)",
        msg,
    )


def test_register_network_checks_its_arguments():
    with pytest.raises(TypeError, match="estimate: must be callable"):
        bp.register_network("bad", init_params=_toy_init, check_params=_toy_check, estimate=1)
    with pytest.raises(TypeError, match="trainer: a class or 'module:Class'"):
        bp.register_network("bad", init_params=_toy_init, check_params=_toy_check,
                            estimate=_toy_estimate, trainer="Trainer")  # fmt: skip
    with pytest.raises(TypeError, match=r"backend_hooks\['brian2'\]: TrainerHooks"):
        bp.register_network("bad", init_params=_toy_init, check_params=_toy_check,
                            estimate=_toy_estimate, backend_hooks={"brian2": "HOOKS"})  # fmt: skip
    with pytest.raises(ValueError, match="network type name must be a non-empty string"):
        bp.register_network("", init_params=_toy_init, check_params=_toy_check,
                            estimate=_toy_estimate)  # fmt: skip
    assert "bad" not in NETWORK_TYPES


#: the modules that branched on ``spec.kind`` before the network types had an entry point
LOOKUP_SITES = (
    "params.py", "estimate.py", "simulate.py", "train/trainer.py", "runs/loop.py",
    "tasks/build.py", "export.py", "analysis/alignment.py", "protocol.py",
)  # fmt: skip


@pytest.mark.parametrize("path", LOOKUP_SITES)
def test_no_kind_branches_in_the_shared_modules(path):
    text = (ROOT / "bioplaus" / path).read_text()
    hits = re.findall(r"""kind\s*[!=]=\s*["'](?:rate|lif|mlp)["']|\.lif\b\s*[:=]""", text)
    assert hits == [], f"{path}: {hits}"
