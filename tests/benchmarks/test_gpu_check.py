"""benchmarks/gpu_check.py cannot rot: its --small run on the CPU exits 0, writes every section,
and its correctness errors are within tolerance; the noise replay it relies on is exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
SECTIONS = (
    "meta", "tests", "correctness", "rollout", "danp_vs_bptt", "lif_anp_vs_bptt",
    "cpu_speedup", "precision", "compile", "elapsed_s", "summary", "ok",
)  # fmt: skip


def run_check(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "gpu_check.json"
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    r = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r, json.loads(out.read_text())


def check_result(res: dict, device: str) -> None:
    for key in SECTIONS:
        assert key in res, key
    assert res["ok"] is True
    assert res["meta"]["device"] == device
    corr = res["correctness"]
    paths = {r["path"] for r in corr}
    # every family of paths is there
    for must in ("rate/simulate", "rate/bptt", "rate/wp", "rate/inp", "rate/rtg-np",
                 "rate/anp K=3", "rate/np baseline=noisy", "lif/anp", "lif/bptt", "mlp/bp",
                 "decorrelation update", "train/rate three-factor gaussian",
                 "train/lif three-factor"):  # fmt: skip
        assert must in paths, must
    for r in corr:
        assert r["ok"], r
        assert r["err64"] <= r["tol64"] and r["err32"] <= r["tol32"], r
        assert r["noise_paths_equal32"], r
    # float32 really differs from float64 (the comparison is not vacuous)
    assert max(r["err32"] for r in corr) > 1e-9
    ro = res["rollout"]
    assert ro["fraction_of_matmul"] > 0 and ro["gflops"]["matmul"] > 0
    for key, first in (("danp_vs_bptt", "danp"), ("lif_anp_vs_bptt", "anp")):
        assert set(res[key]["seconds"]) >= {first, "bptt"}, res[key]
        assert res[key]["ratio_to_bptt"]["bptt"] == 1.0
    errs = res["precision"]["errors"]["errors"]
    assert {"float32", "bf16"} <= set(errs)
    for prec, e in errs.items():
        assert e["bptt"] <= res["precision"]["tolerance"][prec], (prec, e)
    assert errs["bf16"]["bptt"] > errs["float32"]["bptt"]
    assert res["summary"] and all(len(row) == 3 for row in res["summary"])


def test_small_cpu_run_has_every_section_and_passes(tmp_path):
    r, res = run_check(tmp_path, "--device", "cpu", "--small")
    check_result(res, "cpu")
    assert res["cpu_speedup"] == {"skipped": "the device is the CPU"}
    assert "skipped" in res["compile"]  # compile only with --compile on the CPU
    assert res["tests"]["status"] in ("skipped (no CUDA)", "passed")
    assert "ALL OK" in r.stdout.splitlines()[-1]
    md = _gpu_check().render_markdown(res).splitlines()
    assert md[2] == "| check | result | detail |" and len(md) == 4 + len(res["summary"])


def test_missing_cuda_is_one_clear_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cuda", "--small"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert "sees no CUDA device" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _gpu_check():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return gpu_check


def test_replay_noise_gives_every_device_and_dtype_the_same_stream():
    ReplayNoise = _gpu_check().ReplayNoise
    g = torch.Generator().manual_seed(0)
    with ReplayNoise(3) as a:
        x = torch.randn(4, 5, generator=g, dtype=torch.float64)
        y = torch.empty(6).normal_(generator=g)
        z = torch.rand((2, 2), generator=g)
    with ReplayNoise(3) as b:
        x2 = torch.randn(4, 5, dtype=torch.float32)
        y2 = torch.empty(6, dtype=torch.float64).normal_()
        z2 = torch.rand(2, 2, dtype=torch.float64)
    assert a.calls == b.calls == [("n", (4, 5)), ("n", (6,)), ("u", (2, 2))]
    np.testing.assert_allclose(x.numpy(), x2.double().numpy(), rtol=1e-7)
    np.testing.assert_allclose(y.numpy(), y2.numpy(), rtol=1e-7)
    np.testing.assert_allclose(z.numpy(), z2.numpy(), rtol=1e-7)
    # outside the context torch's own generators are back
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))
    assert torch.equal(torch.empty(3).normal_(generator=g1), torch.empty(3).normal_(generator=g2))
    assert "normal_" not in torch.Tensor.__dict__


@pytest.mark.gpu
def test_small_cuda_run_passes(tmp_path):
    """The prepared device run at its small size: every path on CUDA against float64 CPU."""
    _, res = run_check(tmp_path, "--device", "cuda", "--small", "--no-tests")
    check_result(res, "cuda")
    assert "rollout" in res["cpu_speedup"]
    assert "tf32" in res["precision"]["errors"]["errors"]
