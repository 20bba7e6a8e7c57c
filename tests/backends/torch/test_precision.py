"""train.precision (backends/torch/precision.py): float32 / tf32 / bf16 for the gradient rules.

Tolerances (docs/design-decisions.md, "Precision"): bf16 rounds matmul inputs to an 8-bit
mantissa (unit roundoff u = 2^-9 ≈ 2.0e-3) and TF32 to a 10-bit one (u = 2^-11 ≈ 4.9e-4),
both accumulating in float32. An autograd gradient carries a few such roundings per layer
and step, partly averaged over the batch: we hold it to 25 u, i.e. a relative error
‖g − g64‖ / ‖g64‖ ≤ 5e-2 for bf16 and ≤ 1e-2 for TF32, and float32 to 1e-4. The LIF network
gets twice that (1e-1, 5e-2): its forward pass has thresholds, and a rounding that flips a
spike changes the trajectory. Measured on these problems in bf16 (CPU): rate BPTT 3.4e-3,
MLP BP 5.5e-3, LIF surrogate BPTT 3.3e-2; float32 ≤ 3e-7.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bioplaus as bp
from bioplaus.backends.torch import precision as prec
from bioplaus.protocol import protocol_from_dict
from bioplaus.runs import build_task
from bioplaus.train.trainer import Trainer

TOL = {"float32": 1e-4, "tf32": 1e-2, "bf16": 5e-2}
TOL_LIF = {"float32": 1e-4, "tf32": 5e-2, "bf16": 1e-1}


def tol(kind: str, precision: str) -> float:
    return (TOL_LIF if kind == "lif" else TOL)[precision]


def rel(g: dict, ref: dict) -> float:
    """Relative error over all parameters flattened."""
    num = sum(float(np.sum((g[k] - ref[k]) ** 2)) for k in ref)
    den = sum(float(np.sum(ref[k] ** 2)) for k in ref)
    return (num / den) ** 0.5


def problems():
    """Noise-free rate, LIF and MLP problems (a float32 and a float64 run share everything)."""
    rng = np.random.default_rng(0)
    T, B = 40, 8
    rate = bp.RateSpec(n_in=3, n_rec=48, n_out=2, tau=0.02, dt=0.002, sigma=0.0)
    lif = bp.LIFSpec(n_in=2, n_rec=40, n_out=1, dt=0.002, sigma_v=0.0, bias_current=1.2)
    mlp = bp.MLPSpec(sizes=[10, 32, 32, 3], output="linear_mse")
    out = {}
    for name, spec in (("rate", rate), ("lif", lif)):
        u = rng.standard_normal((T, B, spec.n_in))
        y = 0.3 * rng.standard_normal((T, B, spec.n_out))
        out[name] = ("bptt", spec, u, y)
    out["mlp"] = ("bp", mlp, rng.standard_normal((64, 10)), rng.standard_normal((64, 3)))
    return out


def estimate(rule, spec, u, y, precision="float32", dtype="float32", device="cpu"):
    params = bp.init_params(spec, seed=1)
    with prec.precision_scope(precision, device):
        return bp.estimate(rule, spec, params, u, y, seed=0, dtype=dtype, device=device)


@pytest.mark.parametrize("kind", ["rate", "lif", "mlp"])
def test_bf16_gradient_within_tolerance_of_float64(kind):
    rule, spec, u, y = problems()[kind]
    ref = estimate(rule, spec, u, y, dtype="float64")
    e32 = rel(estimate(rule, spec, u, y), ref)
    ebf = rel(estimate(rule, spec, u, y, "bf16"), ref)
    assert e32 < tol(kind, "float32"), e32
    assert ebf < tol(kind, "bf16"), ebf
    # the autocast really ran the matmuls in bf16 (else this would be float32 rounding)
    assert ebf > 20 * e32, (ebf, e32)


def test_scopes_are_scoped():
    a = torch.randn(4, 4)
    with prec.precision_scope("bf16", "cpu"):
        assert (a @ a).dtype == torch.bfloat16
    assert (a @ a).dtype == torch.float32
    with prec.precision_scope("float32", "cpu"):
        assert (a @ a).dtype == torch.float32
    m = torch.backends.cuda.matmul
    before = m.allow_tf32
    with prec._tf32():  # the flag is a process setting even on a CPU build
        assert m.allow_tf32
    assert m.allow_tf32 == before


def test_scope_refuses_unknown_and_tf32_off_cuda():
    with pytest.raises(ValueError, match="tf32"):
        prec.precision_scope("tf32", "cpu")
    with pytest.raises(ValueError, match="precision"):
        prec.precision_scope("fp16", "cpu")


def protocol(rule="bptt", **train):
    return {
        "name": "prec",
        "seed": 2,
        "model": {"n_in": 10, "n_rec": 32, "n_out": 10, "tau": 1.0, "dt": 1.0, "sigma": 1e-3},
        "task": {"name": "copy", "length": 4, "delay": 2},
        "rule": {"name": rule},
        "train": {"steps": 4, "batch_size": 8, "optimizer": "adam", "lr": 3e-3, **train},
    }


@pytest.mark.parametrize(
    ("rule", "train", "match"),
    [
        ("anp", {"precision": "bf16"}, "gradient rules"),
        ("np", {"precision": "bf16"}, "σ√α"),
        ("three-factor", {"precision": "bf16"}, "gradient rules"),
        ("bptt", {"precision": "tf32"}, "CUDA"),
        ("bptt", {"precision": "bf16", "dtype": "float64"}, "train.dtype"),
        ("bptt", {"precision": "fp16"}, "train.precision"),
    ],
)
def test_protocol_refuses_what_precision_cannot_honour(rule, train, match):
    with pytest.raises(bp.SpecError, match=match) as err:
        protocol_from_dict(protocol(rule, **train))
    assert "\n" not in str(err.value)
    assert "precision" in str(err.value)


def test_protocol_accepts_bf16_bptt_and_defaults_to_float32():
    assert protocol_from_dict(protocol()).train.precision == "float32"
    assert protocol_from_dict(protocol(precision="bf16")).train.precision == "bf16"
    assert protocol_from_dict(protocol("tbptt", precision="bf16")).train.precision == "bf16"


def _train(precision: str) -> tuple[list[float], dict]:
    spec = protocol_from_dict(protocol(precision=precision, steps=3))
    task = build_task(spec)
    t = Trainer(spec, task, bp.init_params(spec.model, seed=spec.seed))
    losses = [t.step().loss for _ in range(3)]
    return losses, t.params_numpy()


def test_trainer_applies_bf16_to_the_estimate_only():
    l32, p32 = _train("float32")
    lbf, pbf = _train("bf16")
    # the same trials and weights: the clean losses agree to bf16 rounding, not bit for bit
    assert l32 != lbf
    np.testing.assert_allclose(lbf, l32, rtol=TOL["bf16"])
    # the weights stay float32 (the optimizer and guard run outside the scope)
    assert torch.is_floating_point(torch.as_tensor(pbf["W_rec"]))
    assert rel(pbf, p32) < 1e-2


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["float32", "tf32", "bf16"])
@pytest.mark.parametrize("kind", ["rate", "lif", "mlp"])
def test_cuda_precision_within_tolerance_of_cpu_float64(kind, precision):
    rule, spec, u, y = problems()[kind]
    ref = estimate(rule, spec, u, y, dtype="float64")
    err = rel(estimate(rule, spec, u, y, precision, device="cuda"), ref)
    assert err < tol(kind, precision), err
