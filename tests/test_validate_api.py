"""The Python API refuses bad arguments with ValueError / TypeError naming the argument
(issue 17, What to build 5): ``bp.simulate``, ``bp.estimate`` and ``bp.run``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import interrupted_at

import bioplaus as bp

SPEC = bp.RateSpec(n_in=2, n_rec=4, n_out=1, tau=1.0, dt=1.0)
U = np.zeros((5, 3, 2))
Y = np.zeros((5, 3, 1))
P = bp.init_params(SPEC, 0)
NAN = np.nan


def _nan(a):
    return np.full_like(a, NAN)


SIMULATE = [
    ("dtype float16", {"dtype": "float16"}, ValueError, "dtype"),
    ("device foo", {"device": "foo"}, ValueError, "device"),
    ("device empty", {"device": ""}, ValueError, "device"),
    ("device int", {"device": 0}, TypeError, "device"),
    ("x0 shape", {"x0": np.zeros(7)}, ValueError, "x0"),
    ("x0 strings", {"x0": np.full((3, 4), "a")}, TypeError, "x0"),
    ("params strings", {"params": {k: v.astype(str) for k, v in P.items()}}, TypeError, "params"),
    ("params not a dict", {"params": [1, 2]}, TypeError, "params"),
    ("params nan", {"params": {**P, "W_rec": _nan(P["W_rec"])}}, ValueError, "W_rec"),
    ("params inf", {"params": {**P, "W_in": P["W_in"] + np.inf}}, ValueError, "W_in"),
    ("noise nan", {"noise": np.full((5, 3, 4), NAN)}, ValueError, "noise"),
    ("noise shape", {"noise": np.zeros((5, 3, 3))}, ValueError, "noise"),
    ("x0 nan", {"x0": np.full((3, 4), NAN)}, ValueError, "x0"),
    ("unknown keyword", {"foo": 1}, TypeError, "foo"),
    ("seed 1.5", {"seed": 1.5}, TypeError, "seed"),
    ("seed true", {"seed": True}, TypeError, "seed"),
    ("seed negative", {"seed": -1}, ValueError, "seed"),
    ("backend", {"backend": "nest"}, ValueError, "backend"),
]


@pytest.mark.parametrize("kw,exc,needle", [c[1:] for c in SIMULATE], ids=[c[0] for c in SIMULATE])
def test_simulate_refuses(kw, exc, needle):
    with pytest.raises(exc, match=needle) as e:
        bp.simulate(SPEC, U, **kw)
    assert "\n" not in str(e.value)


def test_simulate_spec_type():
    with pytest.raises(TypeError, match="spec: .*dict"):
        bp.simulate(SPEC.model_dump(), U)
    with pytest.raises(TypeError, match="MLPSpec"):
        bp.simulate(bp.MLPSpec(sizes=[2, 3]), U)
    with pytest.raises(TypeError, match="inputs"):
        bp.simulate(SPEC, np.full((5, 3, 2), "x"))


def test_simulate_cuda_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="device: 'cuda' requested but CUDA is not available"):
        bp.simulate(SPEC, U, device="cuda")


def test_nonfinite_allowed_when_asked():
    x = bp.simulate(SPEC, U, x0=np.full((3, 4), NAN), allow_nonfinite=True)
    assert np.isnan(x).all()
    x = bp.simulate(SPEC, U, params=P, seed=np.int64(2))  # a numpy integer seed is fine
    assert x.shape == (5, 3, 4)
    lif = bp.LIFSpec(n_in=2, n_rec=4, n_out=1)
    v, s = bp.simulate(lif, U, spikes=True)
    assert v.shape == s.shape == (5, 3, 4)
    with pytest.raises(TypeError, match="spikez"):
        bp.simulate(lif, U, spikez=True)


ESTIMATE = [
    ("mask nan", dict(mask=np.full((5, 3), NAN)), ValueError, "mask"),
    ("mask negative", dict(mask=-np.ones((5, 3))), ValueError, "mask"),
    ("params nan", dict(params={**P, "W_out": _nan(P["W_out"])}), ValueError, "W_out"),
    ("seed 1.5", dict(seed=1.5), TypeError, "seed"),
    ("device foo", dict(device="foo"), ValueError, "device"),
    ("dtype", dict(dtype="float16"), ValueError, "dtype"),
    ("unknown keyword", dict(foo=3), TypeError, "foo"),
    ("scale nan", dict(scale=NAN), ValueError, "scale"),
    ("scale 0", dict(scale=0.0), ValueError, "scale"),
    ("targets strings", dict(targets=np.full((5, 3, 1), "y")), TypeError, "targets"),
]


@pytest.mark.parametrize("kw,exc,needle", [c[1:] for c in ESTIMATE], ids=[c[0] for c in ESTIMATE])
def test_estimate_refuses(kw, exc, needle):
    args = {"params": P, "targets": Y, **kw}
    params, targets = args.pop("params"), args.pop("targets")
    with pytest.raises(exc, match=needle) as e:
        bp.estimate("anp", SPEC, params, U, targets, **args)
    assert "\n" not in str(e.value)


def test_estimate_revalidates_a_rulespec_with_options():
    with pytest.raises(ValueError, match="'sigma' does not apply to rule 'bptt'"):
        bp.estimate(bp.RuleSpec(name="bptt"), SPEC, P, U, Y, sigma=0.5)
    with pytest.raises(ValueError, match="rule.K: "):
        bp.estimate(bp.RuleSpec(name="np"), SPEC, P, U, Y, K=0)
    g = bp.estimate(bp.RuleSpec(name="np"), SPEC, P, U, Y, K=2)  # a valid update still works
    assert set(g) == {"W_in", "W_rec", "W_out"}


def test_estimate_rule_against_model():
    lif = bp.LIFSpec(n_in=2, n_rec=4, n_out=1)
    with pytest.raises(ValueError, match="rule 'wp' does not run on a lif model"):
        bp.estimate("wp", lif, bp.init_params(lif, 0), U, Y)
    zero = bp.RateSpec(n_in=2, n_rec=4, n_out=1, tau=1.0, dt=1.0, sigma=0.0)
    with pytest.raises(ValueError, match="sigma > 0"):
        bp.estimate("np", zero, P, U, Y)
    with pytest.raises(TypeError, match="spec"):
        bp.estimate("np", dict(SPEC), P, U, Y)
    with pytest.raises(TypeError, match="rule"):
        bp.estimate(3, SPEC, P, U, Y)


# -- bp.run for a notebook -----------------------------------------------------------------------
PROTO = {
    "name": "nb",
    "model": {"n_in": 10, "n_rec": 8, "n_out": 10, "tau": 1.0, "dt": 1.0},
    "task": {"name": "copy", "length": 2, "delay": 1},
    "rule": {"name": "anp"},
    "train": {"steps": 4, "batch_size": 2, "eval_every": 2, "eval_batch": 2},
}


def test_run_twice_in_a_notebook(tmp_path):
    out = tmp_path / "r"
    first = bp.run(PROTO, out=out, progress=False)
    with pytest.raises(bp.SpecError) as e:
        bp.run(PROTO, out=out, progress=False)
    msg = str(e.value)
    assert "exist_ok=True" in msg and "bioplaus resume" not in msg and "--out" not in msg
    before = (out / "metrics.csv").read_bytes()
    again = bp.run(PROTO, out=out, progress=False, exist_ok=True)  # loaded, nothing written
    assert (out / "metrics.csv").read_bytes() == before
    assert again.status == "completed"
    for k in first.params:
        assert np.array_equal(first.params[k], again.params[k])
    same = bp.run(PROTO, out=out, progress=False, resume=True)
    assert np.array_equal(same.params["W_rec"], first.params["W_rec"])
    other = {**PROTO, "train": {**PROTO["train"], "lr": 0.5}}
    with pytest.raises(
        bp.SpecError, match=r"different protocol \(train.lr: saved 0.001, now 0.5\)"
    ):
        bp.run(other, out=out, progress=False, exist_ok=True)
    new = bp.run(other, out=out, progress=False, overwrite=True)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["protocol"]["train"]["lr"] == 0.5 and new.status == "completed"
    with pytest.raises(ValueError, match="at most one"):
        bp.run(PROTO, out=out, exist_ok=True, overwrite=True)
    with pytest.raises(bp.SpecError, match="no run to resume"):
        bp.run(PROTO, out=tmp_path / "none", resume=True)
    assert not (tmp_path / "none").exists()


def test_exist_ok_resumes_an_interrupted_run(tmp_path, monkeypatch):
    full = bp.run(PROTO, out=tmp_path / "full", progress=False)
    with interrupted_at(2), pytest.raises(KeyboardInterrupt) as e:
        bp.run(PROTO, out=tmp_path / "r", progress=False)
    assert "bp.resume(" in str(e.value) and "bioplaus resume" not in str(e.value)
    res = bp.run(PROTO, out=tmp_path / "r", progress=False, exist_ok=True)
    assert np.array_equal(res.params["W_rec"], full.params["W_rec"])
    assert list(res.metrics["step"]) == list(full.metrics["step"])


def test_exist_ok_keeps_a_diverged_run(tmp_path):
    proto = {
        **PROTO,
        "rule": {"name": "bptt"},
        "train": {**PROTO["train"], "steps": 30, "lr": 1e6, "max_abs_weight": 100.0},
    }
    first = bp.run(proto, out=tmp_path / "d", progress=False)
    assert first.status == "diverged"
    before = {f.name: f.read_bytes() for f in (tmp_path / "d").iterdir()}
    again = bp.run(proto, out=tmp_path / "d", progress=False, exist_ok=True)
    assert again.status == "diverged" and again.reason == first.reason
    assert {f.name: f.read_bytes() for f in (tmp_path / "d").iterdir()} == before


def test_cli_messages_give_cli_advice(tmp_path, capsys):
    from bioplaus import cli
    from bioplaus.tomlwrite import dumps

    p = tmp_path / "p.toml"
    p.write_text(dumps(PROTO))
    out = tmp_path / "r"
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"bioplaus: error: --out: {out} already holds a run (continue it with "
        f"`bioplaus resume {out}`, or choose another --out)"
    )
    assert "exist_ok" not in err and "bp." not in err


def test_seed_spec_and_path_types_elsewhere_in_the_api(tmp_path):
    with pytest.raises(TypeError, match="seed"):
        bp.init_params(SPEC, seed=1.5)
    with pytest.raises(TypeError, match="spec"):
        bp.init_params(dict(SPEC), 0)
    assert set(bp.init_params(SPEC, seed=np.int64(3))) == {"W_in", "W_rec", "W_out"}
    with pytest.raises(TypeError, match="out"):
        bp.run(PROTO, out=123)
    with pytest.raises(TypeError, match="protocol"):
        bp.run(42, out=tmp_path / "x")
    with pytest.raises(TypeError, match="path"):
        bp.load_model(3)
    with pytest.raises(TypeError, match="run_dir"):
        bp.resume(None)
    assert not (tmp_path / "x").exists()
