"""The GPU check in one command: tests, correctness against float64 CPU references, timings.

    python benchmarks/gpu_check.py --device cuda [--json gpu_check.json] [--budget 420]
    python benchmarks/gpu_check.py --device cpu --small --json out.json   # the suite's smoke run

Sections, in order (each prints its elapsed time):

1. ``tests``: the ``gpu``-marked tests (``pytest -m gpu`` on the files that hold them); on a
   machine without CUDA they skip, and the section says so.
2. ``correctness``: every back-end path on ``--device``, in float64 and float32, against the
   same computation on the CPU in float64, with the same noise (:class:`ReplayNoise`): rate
   simulate, BPTT, TBPTT, the paired-pass estimate of every perturbation rule and option (np,
   anp, inp, wp, rtg-np, trace and trial signals, K > 1, noisy baseline, a mask) on the rate
   and LIF networks, the MLP's, the decorrelation update, and a few trainer updates (online
   three-factor rule with Gaussian noise and kicks, rate and LIF; DANP and BPTT with D
   learned; MLP NP with decorrelation). Relative error ‖a − b‖ / ‖b‖, the worst parameter.
3. ``rollout``: the no-grad rate rollout at N = 4096, B = 1024 against T back-to-back addmm
   of the same shapes, interleaved in one run (target: ≥ 60 % of the matmul rate).
4. ``danp_vs_bptt``: one DANP update against one full-BPTT update (and BPTT with the
   decorrelation statistics) at N = 1024, B = 256, T = 1000 (target: danp ≤ 0.6 × bptt).
5. ``lif_anp_vs_bptt``: a LIF ANP update against a surrogate-BPTT update, same sizes.
6. ``cpu_speedup`` (CUDA only): the same jobs on the CPU (all its cores) at fewer steps,
   compared per step (every job is linear in T).
7. ``precision``: float32, TF32 (CUDA) and bf16 — their error against float64 (rollout,
   BPTT gradient, and an ANP estimate to show why perturbation rules refuse them) and their
   speed (rollout, BPTT update).
8. ``compile``: the rate step loop eager against ``torch.compile`` (and, on CUDA, the
   library's rollout captured as one CUDA graph); default on CUDA, ``--compile`` on the CPU.

Timing uses CUDA events after a warm-up on CUDA and ``time.perf_counter`` on the CPU.
``--budget`` (seconds, from the start) skips the timing jobs that would not fit: a job
starts only while the elapsed time is below the budget, and repeats are cut so that the
job ends within it (estimated from its warm-up call). The last thing printed is one short
table; ``--json`` writes every number. Exit status: 0 when the tests and the correctness
checks pass, 1 when one fails, 2 when a package is missing.

Needs: torch, numpy, pydantic (+ pydantic-core, annotated-types, typing-inspection),
pandas, tqdm, and pytest for the tests section; the working tree on the path (the script
puts its own checkout first).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

NEEDS = ("numpy", "torch", "pydantic", "pandas", "tqdm")


def _missing() -> list[str]:
    return [m for m in NEEDS if importlib.util.find_spec(m) is None]


if __name__ == "__main__" and _missing():
    print(
        f"gpu_check: missing Python packages: {', '.join(_missing())} (the project needs "
        "them; on a machine without internet carry them as wheels: BENCHMARKS.md, 'GPU check')",
        file=sys.stderr,
    )
    sys.exit(2)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_rollout import rollout_jobs  # noqa: E402
from common import (  # noqa: E402
    device_time,
    lif_problem,
    lif_update_fn,
    problem,
    update_fn,
)

import bioplaus as bp  # noqa: E402
from bioplaus.backends.torch.precision import precision_scope  # noqa: E402
from bioplaus.backends.torch.rate import consts_of, to_torch  # noqa: E402
from bioplaus.backends.torch.rate.rollout import noise_source, rollout, rollout_fast  # noqa: E402
from bioplaus.rules.decorrelation import decorrelation_update  # noqa: E402

#: sizes of the full run (on a GPU) and of --small (the test suite, CPU)
FULL = {
    "rollout": (4096, 1024, 100),
    "step": (1024, 256, 1000),
    "lif": (1024, 256, 1000),
    "precision_err": (256, 32, 100),
    "cpu_steps": 100,
    "cpu_rollout_steps": 10,
    "repeats": 3,
    "compile": [(4096, 1024, 100), (1024, 256, 200)],
}
SMALL = {
    "rollout": (128, 32, 20),
    "step": (48, 8, 40),
    "lif": (40, 8, 40),
    "precision_err": (48, 8, 30),
    "cpu_steps": 20,
    "cpu_rollout_steps": 10,
    "repeats": 2,
    "compile": [(128, 32, 20)],
}
#: the gpu tests' limit, seconds
TESTS_TIMEOUT_S = 240.0
#: seconds of budget the first torch.compile needs before it starts
COMPILE_NEED_S = 120.0
#: correctness tolerances on ‖a − b‖ / ‖b‖ against the float64 CPU reference (module doc);
#: float32 on the LIF network is looser: a spike that flips on one side is a jump
TOL64 = 1e-8
TOL32 = {"rate": 2e-3, "lif": 5e-2, "mlp": 2e-3, "decor": 1e-5, "train": 5e-3}
#: precision tolerances (docs/design-decisions.md, "Precision"): 25 u, u the unit roundoff
TOL_PREC = {"float32": 1e-4, "tf32": 1e-2, "bf16": 5e-2}


# -- noise shared between devices ---------------------------------------------------------
class ReplayNoise:
    """Within the context, ``torch.randn``, ``torch.rand`` and ``Tensor.normal_`` ignore their
    generator and return, call by call, the values of one float64 numpy stream (cast to the
    requested dtype and device), so the same computation on two devices or in two dtypes
    sees the same noise. ``calls`` lists the shapes drawn, to check that both runs took the
    same path."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    @staticmethod
    def _shape(args, kwargs) -> tuple[int, ...]:
        size = kwargs.get("size", args[0] if len(args) == 1 else args)
        if isinstance(size, int):
            size = (size,)
        return tuple(int(s) for s in size)

    def _make(self, kind: str, shape, out, dtype, device, requires_grad=False):
        self.calls.append((kind, shape))
        a = self.rng.standard_normal(shape) if kind == "n" else self.rng.random(shape)
        t = torch.from_numpy(np.ascontiguousarray(a))
        if out is not None:
            return out.copy_(t)
        t = t.to(device=device or "cpu", dtype=dtype or torch.get_default_dtype())
        return t.requires_grad_(requires_grad) if requires_grad else t

    def __enter__(self) -> ReplayNoise:
        self._saved = (torch.randn, torch.rand, torch.Tensor.__dict__.get("normal_"))

        def randn(*args, generator=None, out=None, dtype=None, device=None, **kw):
            shape = self._shape(args, kw)
            return self._make("n", shape, out, dtype, device, kw.get("requires_grad", False))

        def rand(*args, generator=None, out=None, dtype=None, device=None, **kw):
            shape = self._shape(args, kw)
            return self._make("u", shape, out, dtype, device, kw.get("requires_grad", False))

        def normal_(t, mean=0.0, std=1.0, *, generator=None):
            self.calls.append(("n", tuple(t.shape)))
            a = self.rng.standard_normal(tuple(t.shape)) * std + mean
            with torch.no_grad():
                return t.copy_(torch.from_numpy(np.ascontiguousarray(a)))

        torch.randn, torch.rand, torch.Tensor.normal_ = randn, rand, normal_
        return self

    def __exit__(self, *exc) -> None:
        torch.randn, torch.rand, normal_ = self._saved
        if normal_ is None:  # the method lives on torch._C.TensorBase: uncover it
            del torch.Tensor.normal_
        else:
            torch.Tensor.normal_ = normal_


# -- helpers -------------------------------------------------------------------------------
class Clock:
    """Elapsed time since the start, and the budget of the timing sections."""

    def __init__(self, budget: float | None) -> None:
        self.t0 = time.perf_counter()
        self.budget = budget
        self.skipped: list[str] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return math.inf if self.budget is None else self.budget - self.elapsed()

    def allow(self, what: str, need: float = 0.0) -> bool:
        """True while more than ``need`` seconds of the budget are left."""
        if self.left() > need:
            return True
        self.skipped.append(what)
        print(f"  skipped {what}: {self.left():.0f} s of the {self.budget:.0f} s budget left, "
              f"{need:.0f} s needed", flush=True)  # fmt: skip
        return False


def timed(clock: Clock, name: str, fn, device: str, repeats: int) -> dict | None:
    """device_time with the budget: None (and a note) when the budget is spent; repeats cut
    to what fits after the warm-up call."""
    if not clock.allow(name):
        return None
    cuda = device.startswith("cuda")
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    first = time.perf_counter() - t0
    n = repeats if first * repeats < clock.left() else max(1, int(clock.left() / max(first, 1e-9)))
    r = device_time(fn, device, repeats=n, warmup=0)
    r["first"] = first
    return r


def rel_err(a: dict, b: dict) -> float:
    """max over keys of ‖a − b‖ / ‖b‖ (‖b‖ = 0: the absolute norm)."""
    worst = 0.0
    for k in b:
        x, y = np.asarray(a[k], dtype=np.float64), np.asarray(b[k], dtype=np.float64)
        d = float(np.linalg.norm(x - y))
        n = float(np.linalg.norm(y))
        worst = max(worst, d / n if n > 0 else d)
    return worst


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def section(name: str, clock: Clock, log: dict):
    """A context that prints a section's header and its elapsed time."""

    @contextlib.contextmanager
    def cm():
        print(f"\n== {name} (t = {clock.elapsed():.1f} s)", flush=True)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            log[name] = round(time.perf_counter() - t0, 2)
            print(f"   {name}: {log[name]:.1f} s", flush=True)

    return cm()


# -- 1. tests ------------------------------------------------------------------------------
def run_tests(device: str) -> dict:
    if os.environ.get("BIOPLAUS_GPU_CHECK_NESTED"):
        return {"status": "skipped", "reason": "nested gpu_check (called from a test)"}
    if importlib.util.find_spec("pytest") is None:
        return {"status": "skipped", "reason": "pytest is not installed"}
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("test_*.py")
        if "pytest.mark.gpu" in p.read_text(encoding="utf-8")
        and p.name != "test_gpu_check.py"  # this script's own test runs it at --small
    )
    env = {
        **os.environ,
        "BIOPLAUS_GPU_CHECK_NESTED": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *files]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env,
                           timeout=TESTS_TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"status": "failed", "rc": None, "files": files,
                "summary": f"pytest -m gpu ran past {TESTS_TIMEOUT_S:.0f} s"}  # fmt: skip
    lines = [ln for ln in (r.stdout + r.stderr).strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    cuda = torch.cuda.is_available()
    ok = r.returncode == 0 or (r.returncode == 5 and not cuda)
    status = "passed" if ok and cuda else ("skipped (no CUDA)" if ok else "failed")
    if r.returncode != 0 and not ok:
        print("\n".join(lines[-40:]))
    return {"status": status, "rc": r.returncode, "files": files, "summary": last,
            "device_has_cuda": cuda}  # fmt: skip


# -- 2. correctness ------------------------------------------------------------------------
def _rate_problem():
    rng = np.random.default_rng(0)
    spec = bp.RateSpec(n_in=3, n_rec=40, n_out=2, tau=0.02, dt=0.002, sigma=0.05, bias=True,
                       out_bias=True, decorrelate_input=True, decorrelate_rec=True)  # fmt: skip
    par = bp.init_params(spec, seed=0)
    par["D_rec"] = par["D_rec"] + 0.05 * rng.standard_normal(par["D_rec"].shape)
    par["D_in"] = par["D_in"] + 0.05 * rng.standard_normal(par["D_in"].shape)
    par["b"] = 0.1 * rng.standard_normal(par["b"].shape)
    T, B = 30, 5
    u = rng.standard_normal((T, B, 3))
    y = 0.3 * rng.standard_normal((T, B, 2))
    mask = (rng.random((T, B)) < 0.6).astype(float)
    return spec, par, u, y, mask


def _lif_problem():
    rng = np.random.default_rng(1)
    spec = bp.LIFSpec(n_in=3, n_rec=40, n_out=2, dt=0.002, sigma=0.1, sigma_v=0.5,
                      bias_current=0.7, in_gain=2.0, decorrelate_rec=True)  # fmt: skip
    par = bp.init_params(spec, seed=0)
    T, B = 40, 4
    u = (rng.random((T, B, 3)) < 0.3).astype(float)
    y = 0.3 * rng.standard_normal((T, B, 2))
    return spec, par, u, y


def _mlp_problem():
    rng = np.random.default_rng(2)
    spec = bp.MLPSpec(sizes=[10, 24, 24, 3], output="linear_mse", decorrelate=True, sigma=0.05)
    par = bp.init_params(spec, seed=0)
    return spec, par, rng.standard_normal((32, 10)), rng.standard_normal((32, 3))


RATE_RULES = [
    ("bptt", {}), ("tbptt", {"k": 5}), ("np", {}), ("anp", {}), ("anp+mask", {}),
    ("anp", {"K": 3}), ("anp", {"baseline": "noisy"}), ("np", {"baseline": "noisy"}),
    ("inp", {}), ("wp", {}), ("rtg-np", {}), ("anp", {"signal": "trace", "trace_decay": 0.9}),
    ("np", {"signal": "trial"}), ("anp", {"norm": "layer", "scale": "sqrt_n"}),
]  # fmt: skip
LIF_RULES = [
    ("bptt", {}), ("np", {}), ("anp", {}), ("rtg-np", {}), ("anp", {"K": 3}),
    ("anp", {"signal": "trace", "trace_decay": 0.9}), ("np", {"signal": "trial"}),
]  # fmt: skip
MLP_RULES = [("bp", {}), ("np", {}), ("anp", {}), ("inp", {}), ("wp", {}),
             ("np", {"baseline": "noisy"})]  # fmt: skip


def _label(rule: str, opts: dict) -> str:
    return rule + "".join(f" {k}={v}" for k, v in opts.items())


def correctness_cases() -> list[tuple[str, str, object]]:
    """(name, family, fn(device, dtype) → dict of numpy arrays)."""
    cases = []
    rs, rp, ru, ry, rm = _rate_problem()

    def sim_rate(d, t):
        return {"x": bp.simulate(rs, ru, rp, seed=0, device=d, dtype=t)}

    cases.append(("rate/simulate", "rate", sim_rate))
    for rule, opts in RATE_RULES:
        name, m = (rule[:-5], rm) if rule.endswith("+mask") else (rule, None)

        def f(d, t, name=name, opts=opts, m=m):
            return bp.estimate(name, rs, rp, ru, ry, seed=0, mask=m, device=d, dtype=t, **opts)

        cases.append((f"rate/{_label(rule, opts)}", "rate", f))
    ls_, lp, lu, ly = _lif_problem()

    def sim_lif(d, t):
        return {"v": bp.simulate(ls_, lu, lp, seed=0, device=d, dtype=t)}

    cases.append(("lif/simulate", "lif", sim_lif))
    for rule, opts in LIF_RULES:

        def g(d, t, rule=rule, opts=opts):
            return bp.estimate(rule, ls_, lp, lu, ly, seed=0, device=d, dtype=t, **opts)

        cases.append((f"lif/{_label(rule, opts)}", "lif", g))
    ms, mp, mx, my = _mlp_problem()
    for rule, opts in MLP_RULES:

        def h(d, t, rule=rule, opts=opts):
            return bp.estimate(rule, ms, mp, mx, my, seed=0, device=d, dtype=t, **opts)

        cases.append((f"mlp/{_label(rule, opts)}", "mlp", h))

    def decor(d, t):
        td = {"float32": torch.float32, "float64": torch.float64}[t]
        z = torch.randn(200, 30, dtype=td, device=d) @ torch.randn(30, 30, dtype=td, device=d)
        D = torch.eye(30, dtype=td, device=d)
        for _ in range(5):
            y_ = z @ D.T
            D = decorrelation_update(D, y_.T @ y_, float(len(y_)), 1e-3)
        return {"D": D.cpu().double().numpy()}

    cases.append(("decorrelation update", "decor", decor))
    for name, proto in _train_protocols():
        cases.append((f"train/{name}", "train", lambda d, t, proto=proto: _train(proto, d, t)))
    return cases


def _train_protocols() -> list[tuple[str, dict]]:
    rate = {"n_in": 10, "n_rec": 32, "n_out": 10, "tau": 0.02, "dt": 0.004, "sigma": 0.05,
            "decorrelate_rec": True}  # fmt: skip
    lif = {"kind": "lif", "n_in": 10, "n_rec": 32, "n_out": 10, "dt": 0.002, "sigma": 0.1,
           "sigma_v": 0.5, "bias_current": 0.7, "decorrelate_rec": True}  # fmt: skip
    copy = {"name": "copy", "length": 3, "delay": 2}
    tf = {"name": "three-factor", "tau_b": 0.02}
    out = [
        ("rate three-factor gaussian", rate, copy, tf, 1e-3),
        ("rate three-factor kicks", rate, copy, {**tf, "noise": "kicks", "supralinear": 3.0}, 0.0),
        ("lif three-factor", lif, copy, tf, 0.0),
        ("rate danp (D learned)", rate, copy, {"name": "anp"}, 1e-3),
        ("rate bptt (D learned)", rate, copy, {"name": "bptt"}, 1e-3),
        ("lif anp (D learned)", lif, copy, {"name": "anp"}, 1e-3),
    ]
    protos = [
        (n, {"name": "check", "seed": 4, "model": m, "task": task, "rule": rule,
             "train": {"steps": 3, "batch_size": 4, "optimizer": "adam", "lr": 1e-2,
                       "lr_decor": ld, "eval_batch": 4}})
        for n, m, task, rule, ld in out
    ]  # fmt: skip
    mlp = {"kind": "mlp", "sizes": [32, 24, 10], "output": "linear_mse", "decorrelate": True,
           "sigma": 0.05}  # fmt: skip
    protos.append(("mlp np (decorrelated)", {
        "name": "check", "seed": 4, "model": mlp, "task": {"name": "synthetic"},
        "rule": {"name": "np"},
        "train": {"steps": 3, "batch_size": 8, "optimizer": "sgd", "lr": 1e-2,
                  "lr_decor": 1e-3, "eval_batch": 8}}))  # fmt: skip
    return protos


def _train(proto: dict, device: str, dtype: str) -> dict:
    from bioplaus.protocol import protocol_from_dict
    from bioplaus.runs import build_task

    data = {**proto, "train": {**proto["train"], "device": device, "dtype": dtype}}
    spec = protocol_from_dict(data)
    from bioplaus.train.trainer import Trainer  # every network type (its hooks)

    t = Trainer(spec, build_task(spec), bp.init_params(spec.model, seed=spec.seed))
    for _ in range(spec.train.steps):
        t.step()
    return t.params_numpy()


def check_correctness(device: str, clock: Clock) -> list[dict]:
    rows = []
    on_cpu = device == "cpu"
    for name, family, fn in correctness_cases():
        row = {"path": name, "family": family}
        try:
            with ReplayNoise(7) as rn_ref:
                ref = fn("cpu", "float64")
            if on_cpu:
                row["err64"] = 0.0  # the reference itself
                row["noise_paths_equal64"] = True
            else:
                with ReplayNoise(7) as rn64:
                    d64 = fn(device, "float64")
                row["err64"] = rel_err(d64, ref)
                row["noise_paths_equal64"] = rn64.calls == rn_ref.calls
            with ReplayNoise(7) as rn32:
                d32 = fn(device, "float32")
            row["err32"] = rel_err(d32, ref)
            row["noise_paths_equal32"] = rn32.calls == rn_ref.calls
            row["tol64"], row["tol32"] = TOL64, TOL32[family]
            row["ok"] = bool(
                row["err64"] <= TOL64
                and row["err32"] <= TOL32[family]
                and row["noise_paths_equal64"]
                and row["noise_paths_equal32"]
            )
        except Exception as exc:  # a path that breaks on this device is a finding
            row.update(ok=False, error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        rows.append(row)
        flag = "ok  " if row["ok"] else "FAIL"
        if "error" in row:
            print(f"  {flag} {name:44s} {row['error']}", flush=True)
        else:
            print(f"  {flag} {name:44s} float64 {row['err64']:.1e}  float32 {row['err32']:.1e}"
                  f"  (tol {TOL64:.0e} / {TOL32[family]:.0e})", flush=True)  # fmt: skip
    return rows


# -- 3-6. timings --------------------------------------------------------------------------
def time_rollout(device: str, size, repeats: int, clock: Clock, dtype=torch.float32) -> dict:
    N, B, T = size
    roll, mm, flops = rollout_jobs(N, B, T, device, dtype)
    res = {}
    for _ in range(repeats):  # interleaved, as bench_rollout.py
        for name, f in (("rollout", roll), ("matmul", mm)):
            r = timed(clock, f"rollout {name} N={N}", f, device, 1)
            if r is not None:
                res.setdefault(name, []).append(r["seconds"])
    if set(res) != {"rollout", "matmul"}:
        return {"skipped": "time budget", "N": N, "B": B, "T": T}
    med = {k: float(np.median(v)) for k, v in res.items()}
    gf = {k: flops / v / 1e9 for k, v in med.items()}
    return {"N": N, "B": B, "T": T, "dtype": str(dtype).removeprefix("torch."),
            "seconds": med, "gflops": gf, "fraction_of_matmul": gf["rollout"] / gf["matmul"],
            "target": 0.6}  # fmt: skip


def time_updates(device: str, size, repeats: int, clock: Clock, lif: bool = False,
                 rules=None) -> dict:  # fmt: skip
    N, B, T = size
    if lif:
        spec, p, u, y = lif_problem(N, B, T, device=device)
        rules = rules or ("anp", "bptt")
        fns = {r: lif_update_fn(r, spec, p, u, y, device) for r in rules}
    else:
        spec, p, u, y = problem(N, B, T, device=device)
        rules = rules or ("danp", "bptt", "dbptt")
        fns = {r: update_fn(r, spec, p, u, y, device) for r in rules}
    sec = {}
    for r, f in fns.items():
        t = timed(clock, f"{'lif ' if lif else ''}{r} N={N} T={T}", f, device, repeats)
        if t is not None:
            sec[r] = t["seconds"]
    out = {"N": N, "B": B, "T": T, "seconds": sec,
           "seconds_per_step": {r: s / T for r, s in sec.items()}}  # fmt: skip
    ref = "bptt"
    if ref in sec:
        out["ratio_to_bptt"] = {r: s / sec[ref] for r, s in sec.items()}
    if not lif:
        out["target"] = 0.6
    return out


def cpu_speedup(gpu: dict, clock: Clock, repeats: int, sizes: dict) -> dict:
    """The CPU (all cores) on the GPU's jobs, fewer steps; ratios of seconds per step."""
    torch.set_num_threads(os.cpu_count() or 1)
    out = {"threads": torch.get_num_threads()}
    N, B, _ = sizes["rollout"]
    Tc = sizes["cpu_rollout_steps"]
    r = time_rollout("cpu", (N, B, Tc), 1, clock)
    if "seconds" in r and "seconds" in gpu.get("rollout", {}):
        g = gpu["rollout"]
        out["rollout"] = {"cpu_T": Tc, "cpu_gflops": r["gflops"]["rollout"],
                          "gpu_gflops": g["gflops"]["rollout"],
                          "speedup": g["gflops"]["rollout"] / r["gflops"]["rollout"]}  # fmt: skip
    for key, lif in (("danp_vs_bptt", False), ("lif_anp_vs_bptt", True)):
        g = gpu.get(key, {})
        if "seconds_per_step" not in g:
            continue
        N, B, _ = sizes["lif" if lif else "step"]
        Tc = sizes["cpu_steps"]
        rules = tuple(g["seconds_per_step"])
        c = time_updates("cpu", (N, B, Tc), max(1, repeats - 1), clock, lif=lif, rules=rules)
        out[key] = {
            "cpu_T": Tc,
            "cpu_seconds_per_step": c["seconds_per_step"],
            "gpu_seconds_per_step": g["seconds_per_step"],
            "speedup": {r: c["seconds_per_step"][r] / g["seconds_per_step"][r]
                        for r in c["seconds_per_step"]},
        }  # fmt: skip
    torch.set_num_threads(1)
    return out


# -- 7. precision ----------------------------------------------------------------------------
def precisions(device: str) -> list[str]:
    return ["float32", "tf32", "bf16"] if device.startswith("cuda") else ["float32", "bf16"]


def precision_errors(device: str, size) -> dict:
    """Error against float64 CPU (same noise) of the rollout states, the BPTT gradient and
    an ANP estimate (generic path, K = 2), at each precision on ``device``."""
    N, B, T = size
    rng = np.random.default_rng(3)
    spec = bp.RateSpec(n_in=4, n_rec=N, n_out=2, tau=0.02, dt=0.002, sigma=1e-3)
    par = bp.init_params(spec, seed=0)
    u = rng.standard_normal((T, B, 4))
    y = 0.3 * rng.standard_normal((T, B, 2))
    with ReplayNoise(11):
        x64 = bp.simulate(spec, u, par, seed=0, dtype="float64")
    with ReplayNoise(12):
        g64 = bp.estimate("bptt", spec, par, u, y, seed=0, dtype="float64")
    with ReplayNoise(13):
        a64 = bp.estimate("anp", spec, par, u, y, seed=0, dtype="float64", K=2)
    out = {}
    for prec in precisions(device):
        row = {}
        with ReplayNoise(11):
            if prec == "bf16":  # the fast rollout has no autocast: bfloat16 tensors throughout
                p = to_torch(par, device, torch.bfloat16)
                ut = torch.as_tensor(u, device=device, dtype=torch.bfloat16)
                xi = noise_source((B, N), generator=torch.Generator(device=device), device=device,
                                  dtype=torch.bfloat16)  # fmt: skip
                with torch.no_grad():
                    x = rollout(p, consts_of(spec), ut, xi, keep_outputs=False).x
                x = x.float().cpu().double().numpy()
            else:
                with precision_scope(prec, device):
                    x = bp.simulate(spec, u, par, seed=0, device=device)
        row["rollout"] = rel_err({"x": x}, {"x": x64})
        with ReplayNoise(12), precision_scope(prec, device):
            row["bptt"] = rel_err(bp.estimate("bptt", spec, par, u, y, seed=0, device=device), g64)
        try:  # the perturbation paths are not written for autocast (they are refused it)
            with ReplayNoise(13), precision_scope(prec, device):
                row["anp_K2"] = rel_err(
                    bp.estimate("anp", spec, par, u, y, seed=0, device=device, K=2), a64
                )
        except RuntimeError as exc:
            row["anp_K2"] = float("nan")
            row["anp_K2_error"] = str(exc).splitlines()[0][:200]
        if prec == "bf16":  # what a perturbation estimate would be in bfloat16 throughout
            row["anp_K2_bf16_tensors"] = _anp_bf16_tensors(spec, par, u, y, device, a64)
        row["tol_bptt"] = TOL_PREC[prec]
        row["bptt_ok"] = row["bptt"] <= TOL_PREC[prec]
        out[prec] = row
    return {"N": N, "B": B, "T": T, "sigma_sqrt_alpha": spec.sigma * (spec.dt / spec.tau) ** 0.5,
            "errors": out}  # fmt: skip


def _anp_bf16_tensors(spec, par, u, y, device: str, ref: dict) -> float:
    from bioplaus.backends.torch.rate.perturb import perturbation_estimate
    from bioplaus.rules import RuleSpec, make_rule

    bf = torch.bfloat16
    p = to_torch(par, device, bf)
    ut, yt = (torch.as_tensor(a, device=device, dtype=bf) for a in (u, y))
    with ReplayNoise(13):
        res = perturbation_estimate(p, consts_of(spec), make_rule(RuleSpec(name="anp")), ut, yt,
                                    None, "mse", torch.Generator(device=device), K=2)  # fmt: skip
    return rel_err({k: v.float().cpu().numpy() for k, v in res.grads.items()}, ref)


def precision_speed(device: str, sizes: dict, repeats: int, clock: Clock) -> dict:
    out = {}
    for prec in precisions(device):
        row = {}
        dt = torch.bfloat16 if prec == "bf16" else torch.float32
        scope = contextlib.nullcontext() if prec == "bf16" else precision_scope(prec, device)
        with scope:
            r = time_rollout(device, sizes["rollout"], max(1, repeats - 1), clock, dtype=dt)
        if "fraction_of_matmul" in r:
            row["rollout_gflops"] = r["gflops"]["rollout"]
            row["matmul_gflops"] = r["gflops"]["matmul"]
            row["rollout_fraction"] = r["fraction_of_matmul"]
        N, B, T = sizes["step"]
        spec, p, u, y = problem(N, B, T, device=device)
        f = update_fn("bptt", spec, p, u, y, device)
        with precision_scope(prec, device):
            t = timed(clock, f"bptt {prec}", f, device, repeats)
        if t is not None:
            row["bptt_seconds"] = t["seconds"]
        out[prec] = row
    return out


# -- 8. compile ------------------------------------------------------------------------------
def compile_check(device: str, sizes: list, repeats: int, clock: Clock) -> dict:
    """The rate step x ← a_t + (1 − α) x + r Rᵀ, r ← tanh(x) over T steps: the library's
    eager rollout (rollout_fast), the same loop in eager torch, the loop with the step
    ``torch.compile``d, and (CUDA) the library rollout captured as one CUDA graph."""
    out = {"torch": torch.__version__}
    try:
        importlib.import_module("torch._dynamo")
    except Exception as exc:
        return {"skipped": f"torch.compile unavailable: {exc}"}
    for i, (N, B, T) in enumerate(sizes):
        # a compilation cannot be cut short: the first one took 77 s on a loaded 2-core CPU
        if not clock.allow(f"compile N={N}", need=COMPILE_NEED_S if i == 0 else 30.0):
            break
        row = out[f"N{N}"] = {"N": N, "B": B, "T": T}
        try:
            _compile_size(device, N, B, T, repeats, clock, row)
        except Exception as exc:  # e.g. a broken capture: keep what this size measured
            row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return out


def _compile_size(device: str, N: int, B: int, T: int, repeats: int, clock: Clock,
                  row: dict) -> None:  # fmt: skip
    """One size of :func:`compile_check`, into ``row``."""
    spec = bp.RateSpec(n_in=4, n_rec=N, n_out=4, tau=0.02, dt=0.002, sigma=1e-3)
    c = consts_of(spec)
    p = to_torch(bp.init_params(spec, 0), device)
    a = float(c.alpha)
    g = torch.Generator(device=device).manual_seed(0)
    u = torch.randn(T, B, 4, generator=g, device=device)
    noise = torch.randn(T, B, N, generator=g, device=device)
    xi = noise_source((B, N), noise=noise, device=device)
    A = (u @ (p.W_in * a).T) + (c.sigma * a**0.5) * noise  # the chunk part, precomputed
    RaT = (p.W_rec * a).T.contiguous()

    def step(x, r, a_t, RaT=RaT, a=a):
        x = torch.addmm(a_t + (1.0 - a) * x, r, RaT)
        return x, torch.tanh(x)

    def loop(fstep, A=A, B=B, N=N):
        x = torch.zeros(B, N, device=device)
        r = torch.zeros(B, N, device=device)
        for t in range(A.shape[0]):
            x, r = fstep(x, r, A[t])
        return x

    def lib(p=p, u=u, xi=xi, c=c):
        with torch.no_grad():
            return rollout_fast(p, c, u, xi, keep_states=False, keep_outputs=False)

    with torch.no_grad():
        for name, f in (("library_eager", lib), ("loop_eager", lambda: loop(step))):
            t = timed(clock, f"compile {name} N={N}", f, device, repeats)
            if t is not None:
                row[name] = t["seconds"]
        try:
            cstep = torch.compile(step, fullgraph=True, dynamic=False)
            t0 = time.perf_counter()
            ref = loop(step)
            got = loop(cstep)
            sync(device)
            row["compile_seconds"] = time.perf_counter() - t0
            row["compiled_rel_err"] = float((got - ref).norm() / ref.norm())
            t = timed(clock, f"compile loop_compiled N={N}",
                      lambda cstep=cstep: loop(cstep), device, repeats)  # fmt: skip
            if t is not None:
                row["loop_compiled"] = t["seconds"]
        except Exception as exc:  # no compiler, unsupported platform, ...
            row["compiled_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if device.startswith("cuda"):
            try:
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for _ in range(2):
                        lib()
                torch.cuda.current_stream().wait_stream(s)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    lib()
                t = timed(clock, f"compile cuda_graph N={N}", graph.replay, device, repeats)
                if t is not None:
                    row["library_cuda_graph"] = t["seconds"]
            except Exception as exc:
                row["cuda_graph_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    if "library_eager" in row:
        for k in ("loop_compiled", "library_cuda_graph"):
            if k in row:
                row[f"speedup_{k}"] = row["library_eager"] / row[k]


# -- main ------------------------------------------------------------------------------------
def machine(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    m = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
         "torch": torch.__version__, "numpy": np.__version__, "device": device}  # fmt: skip
    if device.startswith("cuda"):
        m["gpu"] = torch.cuda.get_device_name(device)
        m["cuda"] = torch.version.cuda
        m["cudnn"] = torch.backends.cudnn.version()
    return m


def summary_rows(res: dict) -> list[tuple[str, str, str]]:
    rows = []
    t = res.get("tests", {})
    rows.append(("gpu tests", t.get("status", "?"), t.get("summary", "")[:60]))
    corr = res.get("correctness", [])
    corr = corr if isinstance(corr, list) else []
    bad = [r["path"] for r in corr if not r.get("ok")]
    worst32 = max((r.get("err32", 0.0) for r in corr if "err32" in r), default=float("nan"))
    worst64 = max((r.get("err64", 0.0) for r in corr if "err64" in r), default=float("nan"))
    rows.append(("correctness", f"{len(corr) - len(bad)}/{len(corr)} ok",
                 f"worst rel. err float64 {worst64:.1e}, float32 {worst32:.1e}"
                 + (f"; FAIL: {', '.join(bad[:3])}" if bad else "")))  # fmt: skip
    r = res.get("rollout", {})
    if "fraction_of_matmul" in r:
        rows.append((f"rollout N={r['N']} B={r['B']}", f"{r['fraction_of_matmul']:.2f} of matmul",
                     f"{r['gflops']['rollout']:.0f} / {r['gflops']['matmul']:.0f} GFLOP/s "
                     "(target >= 0.60)"))  # fmt: skip
    for key, label in (("danp_vs_bptt", "danp / bptt"), ("lif_anp_vs_bptt", "lif anp / bptt")):
        d = res.get(key, {})
        rr = d.get("ratio_to_bptt", {})
        first = "danp" if "danp" in rr else "anp"
        if first in rr:
            rows.append((f"{label} N={d['N']} T={d['T']}", f"{rr[first]:.2f}x",
                         f"{d['seconds'][first]:.3f} s vs {d['seconds']['bptt']:.3f} s"
                         + (" (target <= 0.60)" if key == "danp_vs_bptt" else "")))  # fmt: skip
    sp = res.get("cpu_speedup", {})
    for key in ("rollout", "danp_vs_bptt", "lif_anp_vs_bptt"):
        v = sp.get(key, {}).get("speedup") if isinstance(sp, dict) else None
        if isinstance(v, dict):
            rows.append((f"gpu/cpu {key}", ", ".join(f"{k} {x:.0f}x" for k, x in v.items()), ""))
        elif isinstance(v, float):
            rows.append((f"gpu/cpu {key}", f"{v:.0f}x", ""))
    pe = res.get("precision", {}).get("errors", {}).get("errors", {})
    ps = res.get("precision", {}).get("speed", {})
    for prec, e in pe.items():
        s = ps.get(prec, {})
        speed = ", ".join(f"{k} {s[k]:.3g}" for k in ("rollout_gflops", "bptt_seconds") if k in s)
        anp = (f"anp err {e['anp_K2']:.1e}" if math.isfinite(e["anp_K2"])
               else "anp: no autocast path")  # fmt: skip
        if "anp_K2_bf16_tensors" in e:
            anp += f", anp in bf16 tensors {e['anp_K2_bf16_tensors']:.2f}"
        errs = f"rollout err {e['rollout']:.1e}, {anp}"
        rows.append((f"precision {prec}", f"bptt err {e['bptt']:.1e}", f"{errs}; {speed}"))
    comp = res.get("compile", {})
    for k, v in comp.items():
        if isinstance(v, dict) and "library_eager" in v:
            parts = [f"eager {v['library_eager']:.4f} s"]
            for name in ("loop_compiled", "library_cuda_graph"):
                if name in v:
                    parts.append(f"{name} {v[name]:.4f} s")
            if "compiled_error" in v:
                parts.append("compile failed")
            rows.append((f"compile {k}", parts[0], ", ".join(parts[1:])))
        elif k == "skipped":
            rows.append(("compile", "skipped", str(v)))
    return rows


def render_markdown(res: dict) -> str:
    """The summary of a JSON written by this script, as Markdown for BENCHMARKS.md."""
    m = res["meta"]
    where = (
        f"{m['gpu']} ({m['cores']} CPU cores: {m['cpu']})"
        if "gpu" in m
        else (f"{m['cpu']}, {m['cores']} cores, no GPU")
    )
    vers = f"torch {m['torch']}" + (f", CUDA {m['cuda']}" if m.get("cuda") else "")
    lines = [
        f"{where}; Python {m['python']}, {vers}, "
        f"numpy {m['numpy']}; `python benchmarks/{m['command']}`, "
        f"{res['elapsed_s']['total']:.0f} s"
        + (f"; skipped for time: {', '.join(res['skipped_for_budget'])}"
           if res.get("skipped_for_budget") else "") + ".",
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]  # fmt: skip
    rows = res.get("summary") or summary_rows(res)  # a run cut short has no summary yet
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--small", action="store_true", help="tiny sizes (the test suite, CPU)")
    ap.add_argument("--json", default=None, help="write every number here")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds from the start after which timing jobs are skipped "
                         "(default: 420 on CUDA, none on the CPU)")  # fmt: skip
    ap.add_argument("--compile", action="store_true",
                    help="measure torch.compile (always on CUDA)")  # fmt: skip
    ap.add_argument("--compile-sizes", nargs="+", default=None, metavar="N,B,T",
                    help="sizes of the compile section (default: 4096,1024,100 1024,256,200; "
                         "--small: 128,32,20)")  # fmt: skip
    ap.add_argument("--no-tests", action="store_true", help="skip the pytest section")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (timings)")
    ap.add_argument("--render", default=None, metavar="JSON",
                    help="print a JSON this script wrote as Markdown, and exit")  # fmt: skip
    args = ap.parse_args(argv)
    if args.render:
        print(render_markdown(json.loads(Path(args.render).read_text())))
        return 0
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: --device {dev}, but torch {torch.__version__} sees no CUDA device "
              "(a CPU-only torch build, or no driver)", file=sys.stderr)  # fmt: skip
        return 2
    torch.set_num_threads(args.threads)
    cuda = dev.startswith("cuda")
    budget = args.budget if args.budget is not None else (420.0 if cuda else None)
    sizes = dict(SMALL if args.small else FULL)
    if args.compile_sizes:
        try:
            sizes["compile"] = [tuple(int(v) for v in x.split(",")) for x in args.compile_sizes]
            assert all(len(x) == 3 for x in sizes["compile"])
        except (ValueError, AssertionError):
            ap.error(f"--compile-sizes: expected N,B,T triples (got {args.compile_sizes})")
    clock = Clock(budget)
    cmd = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    res: dict = {"meta": {**machine(dev), "small": args.small, "budget_s": budget, "command": cmd}}
    elapsed: dict = {}
    print(f"gpu_check on {res['meta'].get('gpu', res['meta']['cpu'])} (torch {torch.__version__})")

    reps = sizes["repeats"]

    def tests():
        return {"status": "skipped", "reason": "--no-tests"} if args.no_tests else run_tests(dev)

    def precision():
        errs = precision_errors(dev, sizes["precision_err"])
        return {"errors": errs, "speed": precision_speed(dev, sizes, reps, clock),
                "tolerance": TOL_PREC}  # fmt: skip

    jobs = [
        ("tests", tests),
        ("correctness", lambda: check_correctness(dev, clock)),
        ("rollout", lambda: time_rollout(dev, sizes["rollout"], reps + 2, clock)),
        ("danp_vs_bptt", lambda: time_updates(dev, sizes["step"], reps, clock)),
        ("lif_anp_vs_bptt", lambda: time_updates(dev, sizes["lif"], reps, clock, lif=True)),
        ("cpu_speedup", lambda: cpu_speedup(res, clock, reps, sizes) if cuda
         else {"skipped": "the device is the CPU"}),
        ("precision", precision),
        ("compile", lambda: compile_check(dev, sizes["compile"], reps, clock)
         if cuda or args.compile else {"skipped": "not requested on the CPU (--compile)"}),
    ]  # fmt: skip
    errors = {}
    for name, job in jobs:
        with section(name, clock, elapsed):
            try:
                res[name] = job()
            except Exception as exc:  # a section that breaks is a finding; the rest still runs
                errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                res[name] = {"error": errors[name]}
                print(f"  ERROR in {name}: {errors[name]}", flush=True)
            if name == "tests":
                print(f"  {res['tests'].get('status')}: {res['tests'].get('summary', '')}")
            elif name != "correctness":
                print(f"  {json.dumps(_short(res[name]))}", flush=True)
        res["elapsed_s"] = {**elapsed, "total": round(clock.elapsed(), 2)}
        if args.json:  # after every section: a run cut short keeps what it measured
            Path(args.json).write_text(json.dumps(res, indent=1, default=float))
    res["skipped_for_budget"] = clock.skipped
    res["section_errors"] = errors
    tests_ok = res["tests"].get("status") != "failed" and "tests" not in errors
    corr = res["correctness"] if isinstance(res["correctness"], list) else []
    corr_ok = bool(corr) and all(r.get("ok") for r in corr)
    perr = res["precision"].get("errors", {}).get("errors", {})
    prec_ok = bool(perr) and all(e["bptt_ok"] for e in perr.values())
    res["ok"] = bool(tests_ok and corr_ok and prec_ok and not errors)
    rows = summary_rows(res)
    rows += [(f"ERROR {k}", "section failed", v[:80]) for k, v in errors.items()]
    res["summary"] = [list(r) for r in rows]
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=float))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    skipped = f"; skipped for time: {', '.join(clock.skipped)}" if clock.skipped else ""
    where = res["meta"].get("gpu", res["meta"]["cpu"])
    print(f"\n== summary ({where}, torch {torch.__version__}, {clock.elapsed():.0f} s{skipped})")
    for a, b, c in rows:
        print(f"{a:<{w0}}  {b:<{w1}}  {c}")
    print("ALL OK" if res["ok"] else "SOME CHECKS FAILED")
    return 0 if res["ok"] else 1


def _short(d, digits: int = 4):
    """Round floats for printing."""
    if isinstance(d, dict):
        return {k: _short(v, digits) for k, v in d.items() if k != "all"}
    if isinstance(d, list):
        return [_short(v, digits) for v in d]
    if isinstance(d, float):
        return float(f"{d:.{digits}g}")
    return d


if __name__ == "__main__":
    sys.exit(main())
