"""Feed-forward back-end: forward pass, stacked paired passes, trainer through bp.run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bioplaus as bp
from bioplaus.backends.torch.mlp import forward, mlp_consts, mlp_to_torch
from bioplaus.spec import SpecError, spec_from_dict


def test_spec_from_dict_and_validation():
    spec = spec_from_dict({"kind": "mlp", "sizes": [4, 8, 3]})
    assert spec.n_in == 4 and spec.n_out == 3 and spec.n_layers == 2 and spec.loss == "ce"
    with pytest.raises(SpecError, match="sizes"):
        spec_from_dict({"kind": "mlp", "sizes": [4, 0, 3]})
    with pytest.raises(SpecError, match="output"):
        spec_from_dict({"kind": "mlp", "sizes": [4, 3], "output": "sigmoid"})


def test_init_params_shapes_and_he_scale():
    spec = bp.MLPSpec(sizes=[400, 300, 10], decorrelate=True)
    p = bp.init_params(spec, seed=0)
    assert p["W0"].shape == (300, 400) and p["b1"].shape == (10,) and p["D1"].shape == (300, 300)
    assert np.std(p["W0"]) == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert np.array_equal(p["D0"], np.eye(400))


def test_forward_matches_numpy_and_noise_enters_preactivations():
    spec = bp.MLPSpec(sizes=[3, 5, 2], nonlinearity="leaky_relu", negative_slope=0.1)
    p = bp.init_params(spec, seed=1)
    p["b0"] = np.linspace(-1, 1, 5)
    x = np.random.default_rng(0).standard_normal((4, 3))
    a0 = x @ p["W0"].T + p["b0"]
    h = np.where(a0 > 0, a0, 0.1 * a0)
    o = h @ p["W1"].T + p["b1"]
    tp = mlp_to_torch(p, 2, dtype=torch.float64)
    out = forward(tp, mlp_consts(spec), torch.as_tensor(x))
    np.testing.assert_allclose(out.out.numpy(), o, atol=1e-12)
    eps = [torch.full((4, 5), 1e-3, dtype=torch.float64), None]
    noisy = forward(tp, mlp_consts(spec), torch.as_tensor(x), noise=eps)
    np.testing.assert_allclose((noisy.a[0] - out.a[0]).numpy(), 1e-3, atol=1e-12)


def tiny_protocol(rule="anp", decorrelate=True, **rule_opts):
    return {
        "name": "tiny",
        "seed": 0,
        "model": {"kind": "mlp", "sizes": [64, 16, 16, 10], "decorrelate": decorrelate},
        "task": {"name": "digits"},
        "rule": {"name": rule, **rule_opts},
        "train": {"steps": 20, "batch_size": 32, "optimizer": "adam", "lr": 1e-3,
                  "lr_decor": 1e-3 if decorrelate else 0.0, "eval_every": 10,
                  "eval_batch": 64, "checkpoint_every": 10, "threads": 1},
    }  # fmt: skip


def test_run_logs_alignment_and_learns_decorrelation(tmp_path):
    res = bp.run(tiny_protocol(alignment=True), out=tmp_path / "r", progress=False)
    assert res.status == "completed"
    cols = set(res.metrics.columns)
    assert {"align_layer0", "align_layer2", "align_all", "eval_accuracy"} <= cols
    assert res.metrics["align_all"].between(0, 180).all()
    assert not np.allclose(res.params["D0"], np.eye(64))
    assert res.metrics["loss"].iloc[-1] < res.metrics["loss"].iloc[0]


@pytest.mark.parametrize("rule", ["bp", "inp", "wp"])
def test_every_rule_trains_without_error(tmp_path, rule):
    res = bp.run(tiny_protocol(rule, decorrelate=False), out=tmp_path / rule, progress=False)
    assert res.status == "completed" and np.isfinite(res.metrics["eval_loss"]).all()


def test_resume_is_bit_identical(tmp_path):
    full = bp.run(tiny_protocol(), out=tmp_path / "full", progress=False)
    part = tiny_protocol()
    part["train"]["steps"] = 10
    bp.run(part, out=tmp_path / "part", progress=False)
    # extend the run: rewrite its config with 20 steps and resume from the step-10 checkpoint
    import json

    cfg = json.loads((tmp_path / "part" / "config.json").read_text())
    cfg["protocol"]["train"]["steps"] = 20
    (tmp_path / "part" / "config.json").write_text(json.dumps(cfg))
    res = bp.resume(tmp_path / "part", progress=False)
    for k in full.params:
        assert np.array_equal(full.params[k], res.params[k]), k


def test_loss_mismatch_is_one_line_error(tmp_path):
    proto = tiny_protocol()
    proto["model"]["output"] = "linear_mse"
    with pytest.raises(SpecError, match="model.output"):
        bp.run(proto, out=tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
