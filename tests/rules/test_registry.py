"""The open rule registry: a user's rule in a user's file is named in a protocol and trained,
resumed, swept and estimated like a built-in; every rule validates its own options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import interrupted_at

import bioplaus as bp
from bioplaus.registry import RULES, load_plugin
from bioplaus.rules import RuleOptionError, RuleSpec, rule_options

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "docs" / "tutorials" / "mixed_credit.py"


@pytest.fixture(scope="module", autouse=True)
def _plugin():
    load_plugin(str(PLUGIN))


def problem(T=12, B=4):
    spec = bp.RateSpec(n_in=2, n_rec=8, n_out=1, tau=0.02, dt=0.01, sigma=1e-3)
    rng = np.random.default_rng(3)
    u = rng.standard_normal((T, B, 2))
    y = rng.standard_normal((T, B, 1)) * 0.3
    return spec, bp.init_params(spec, seed=1), u, y


# -- options: each rule validates its own table -----------------------------------------------
def test_each_rule_has_its_own_options_model():
    anp, bptt, tf = (RuleSpec(name=n) for n in ("anp", "bptt", "three-factor"))
    assert type(anp).__name__ == "NodePerturbationOptions" and anp.K == 1
    assert "K" not in type(bptt).model_fields and "tau_e" not in type(anp).model_fields
    assert type(tf).__name__ == "ThreeFactorOptions"
    assert all(isinstance(r, RuleSpec) for r in (anp, bptt, tf))
    assert bptt.is_gradient and anp.mechanism == "node" and tf.mechanism == "online"


def test_options_of_other_rules_and_typos_are_refused_in_one_line():
    with pytest.raises(RuleOptionError, match="'K' does not apply to rule 'bptt'"):
        rule_options({"name": "bptt", "K": 2})
    with pytest.raises(RuleOptionError, match="did you mean 'sigma'"):
        rule_options({"name": "anp", "sigam": 0.1})
    with pytest.raises(RuleOptionError, match="unknown rule 'anpp'.*did you mean 'anp'"):
        rule_options({"name": "anpp"})
    # a config written by an earlier bioplaus listed every option at its default: it reloads
    assert rule_options({"name": "bptt", "K": 1, "tau_b": 0.05, "signal": None}).name == "bptt"


def test_protocol_errors_name_the_rule_key(tmp_path):
    base = ROOT / "protocols" / "copy_anp.toml"
    with pytest.raises(bp.SpecError, match=r"copy_anp.toml: rule.tau_e: option 'tau_e' does not"):
        from bioplaus.protocol import load_protocol

        load_protocol(base, ["rule.tau_e=0.1"])
    with pytest.raises(bp.SpecError, match=r"rule.K: Input should be greater than or equal to 1"):
        load_protocol(base, ["rule.K=0"])


def test_danp_is_a_name_users_can_type():
    from bioplaus.protocol import load_protocol

    p = load_protocol(ROOT / "protocols" / "copy_bptt.toml", ['rule.name="danp"'])
    assert p.rule.name == "danp" and p.rule.kind == "anp"
    assert p.model.decorrelate_rec and p.train.lr_decor == 1e-3  # the preset turns it on
    q = load_protocol(ROOT / "protocols" / "copy_danp.toml", ['rule.name="danp"'])
    assert q.train.lr_decor == 1e-3  # the protocol's own value is kept
    with pytest.raises(bp.SpecError, match="rule 'danp' learns decorrelation"):
        load_protocol(
            ROOT / "protocols" / "copy_bptt.toml", ['rule.name="danp"', "train.lr_decor=0.0"]
        )
    spec, p0, u, y = problem()
    a = bp.estimate("danp", spec, p0, u, y, seed=4, dtype="float64")
    b = bp.estimate("anp", spec, p0, u, y, seed=4, dtype="float64")
    assert all(np.array_equal(a[k], b[k]) for k in a)  # at fixed weights DANP's estimate is ANP's


def test_every_registered_rule_declares_its_mechanism_and_networks():
    for name, entry in RULES.items():
        assert entry.mechanism in ("gradient", "node", "weight", "online"), name
        assert set(entry.networks) <= {"rate", "lif", "mlp"}, name
        assert entry.options.model_fields["name"].description, name


# -- a user's rule through the public API ---------------------------------------------------
def test_user_rule_estimate_matches_the_built_in_it_generalises():
    spec, p, u, y = problem()
    local = bp.estimate("mixed-np", spec, p, u, y, seed=7, hidden_credit="local", dtype="float64")
    np_local = bp.estimate("np", spec, p, u, y, seed=7, dtype="float64")
    for k in local:  # the same driver, the same random stream: the same estimate
        np.testing.assert_allclose(local[k], np_local[k], rtol=1e-10, atol=1e-14)
    mixed = bp.estimate("mixed-np", spec, p, u, y, seed=7, dtype="float64")
    np_trial = bp.estimate("np", spec, p, u, y, seed=7, signal="trial", dtype="float64")
    np.testing.assert_allclose(mixed["W_rec"], np_trial["W_rec"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(mixed["W_out"], np_local["W_out"], rtol=1e-10, atol=1e-14)
    assert not np.allclose(mixed["W_rec"], np_local["W_rec"])


def test_user_rule_options_are_validated_by_its_own_model():
    spec, p, u, y = problem()
    with pytest.raises(bp.SpecError, match="hidden_credit"):
        bp.estimate("mixed-np", spec, p, u, y, hidden_credit="sometimes")
    with pytest.raises(bp.SpecError, match="'signal' does not apply to rule 'mixed-np'"):
        bp.estimate("mixed-np", spec, p, u, y, signal="rtg")


def _protocol(name: str, steps: int) -> dict:
    import tomllib

    path = ROOT / "protocols" / "custom" / f"{name}.toml"
    data = tomllib.loads(path.read_text())
    data["plugins"] = [str(PLUGIN)]
    if isinstance(data["model"], dict) and "base" in data["model"]:
        data["model"]["base"] = str((path.parent / data["model"]["base"]).resolve())
    data["train"].update(steps=steps, eval_every=5, checkpoint_every=5, eval_batch=8)
    data["train"]["batch_size"] = 4
    if name.startswith("lif"):
        data["task"].update(pattern=0.1)
    return data


@pytest.mark.parametrize("name", ["pattern_mixed_np", "lif_pattern_mixed_np"])
def test_user_rule_trains_and_resumes_bit_identically(tmp_path, monkeypatch, name):
    proto = _protocol(name, steps=12)
    full = bp.run(proto, out=tmp_path / "full", progress=False)
    assert full.status == "completed"
    cfg = json.loads((tmp_path / "full" / "config.json").read_text())["protocol"]
    assert cfg["rule"]["name"] == "mixed-np" and cfg["plugins"] == [str(PLUGIN.resolve())]
    assert cfg["model"]["decorrelate_rec"] and cfg["train"]["lr_decor"] > 0
    with interrupted_at(7), pytest.raises(KeyboardInterrupt):
        bp.run(proto, out=tmp_path / "cut", progress=False)
    resumed = bp.resume(tmp_path / "cut", progress=False)
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
    assert not np.array_equal(full.params["D_rec"], np.eye(full.params["D_rec"].shape[0]))


def test_user_rule_learns_on_the_rate_network(tmp_path):
    proto = _protocol("pattern_mixed_np", steps=30)
    res = bp.run(proto, out=tmp_path / "r", progress=False)
    first, last = res.metrics["eval_loss"].iloc[0], res.metrics["eval_loss"].iloc[-1]
    assert last < 0.7 * first, (first, last)


def test_user_rule_in_a_two_point_sweep_in_fresh_processes(tmp_path):
    """The sweep's workers are other processes: they find the rule from the point config."""
    proto = tmp_path / "proto.toml"
    from bioplaus.tomlwrite import dumps

    proto.write_text(dumps(_protocol("pattern_mixed_np", steps=4)))
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'name = "s"\nprotocol = "{proto}"\nthreads = 1\n[grid]\n"rule.sigma" = [1e-3, 1e-2]\n'
    )
    res = subprocess.run(
        [sys.executable, "-m", "bioplaus", "sweep", str(sweep), "--out", str(tmp_path / "out"),
         "--workers", "2", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert sorted(table["status"]) == ["completed", "completed"]
    assert sorted(table["rule.sigma"]) == [1e-3, 1e-2]
