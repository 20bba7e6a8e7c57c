# ruff: noqa: E402, E501  (a notebook-style script: imports where they are used, Markdown tables)
# %% [markdown]
# # (f) Move a run to the GPU
#
# The torch back-end runs on any torch device. A protocol's `train.device` picks it
# (`cpu`, `cuda`, `cuda:1`); `bp.simulate` and `bp.estimate` take `device=` directly. The
# clean and noisy passes of a perturbation rule are stacked in one batch, so large
# networks and batches are where a GPU pays off; the small networks of most protocols run
# fastest on one CPU thread.
#
#     python docs/tutorials/f_gpu.py            # times CPU and (if present) GPU
#     python docs/tutorials/f_gpu.py --small    # seconds (the tests; CPU only if no GPU)
#
# Without a CUDA device, everything below runs on the CPU and says so.

# %%
import argparse
import os
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

import bioplaus as bp

ap = argparse.ArgumentParser()
ap.add_argument("--small", action="store_true", help="tiny sizes (what the test suite runs)")
ap.add_argument(
    "--out", help="folder for the figures (default runs/tutorials/img; make docs-figures: docs/)"
)
ap.add_argument("--work", help="folder for the run directories (default runs/tutorials)")
args, _ = ap.parse_known_args()
SMALL = args.small or os.environ.get("BIOPLAUS_TUTORIAL_SMALL") == "1"

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next(p for p in (here, *here.parents) if (p / "protocols").is_dir())
IMG = Path(args.out) if args.out else ROOT / "runs" / "tutorials" / "img"
WORK = Path(args.work) if args.work else ROOT / "runs" / "tutorials"
IMG.mkdir(parents=True, exist_ok=True)

GPU = torch.cuda.is_available()
devices = ["cpu", "cuda"] if GPU else ["cpu"]
print("CUDA available:", GPU, "|", torch.cuda.get_device_name(0) if GPU else "CPU only")

# %% [markdown]
# ## A run on the GPU
#
# One override moves a protocol's training to the GPU — from the shell:
#
#     bioplaus run protocols/mackey_glass_danp.toml --out runs/mg_danp_gpu --set train.device='"cuda"'
#
# (the value is a TOML literal, hence the inner quotes). If no CUDA device is present the
# command stops before writing anything, with one line naming `train.device`. Here the
# same from Python, on whichever device this machine has:

# %%
device = "cuda" if GPU else "cpu"
out = WORK / "gpu_run"
shutil.rmtree(out, ignore_errors=True)
overrides = [
    f'train.device="{device}"',
    f"train.steps={5 if SMALL else 200}",
    f"train.eval_every={5 if SMALL else 50}",
]
if SMALL:
    overrides += ["task.length=60", "task.washout=5", "model.n_rec=16", "train.eval_batch=8"]
res = bp.run(
    ROOT / "protocols" / "mackey_glass_danp.toml", out=out, overrides=overrides, progress=False
)
print(
    res.status,
    "on",
    device,
    "| wall time",
    round(float(res.metrics["wall_time"].iloc[-1]), 1),
    "s | held-out NRMSE",
    round(float(res.metrics["metric"].iloc[-1]), 3),
)

# %% [markdown]
# The run directory is the same as on the CPU: `config.json` records the device, the
# final weights are numpy arrays, and `bp.resume` continues on the device the protocol
# names. (Results on a GPU are reproducible on the same GPU, but not bit-identical to the
# CPU's: the floating-point reductions differ.)
#
# ## When does the GPU pay off?
#
# Time one gradient estimate — ANP, one clean and one noisy pass stacked in the batch —
# against the network size N, on each device.


# %%
def time_estimate(N, device, B=32, T=100, repeat=3):
    spec = bp.RateSpec(n_in=1, n_rec=N, n_out=1, tau=0.01, dt=0.01, sigma=1e-3)
    params = bp.init_params(spec, seed=0)
    rng = np.random.default_rng(0)
    u, y = rng.standard_normal((T, B, 1)), rng.standard_normal((T, B, 1))
    bp.estimate("anp", spec, params, u, y, device=device)  # warm-up (CUDA kernels, allocator)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeat):
        bp.estimate("anp", spec, params, u, y, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeat


sizes = [16, 64] if SMALL else [64, 256, 1024] + ([2048, 4096] if GPU else [])
times = {d: [time_estimate(N, d, T=20 if SMALL else 100) for N in sizes] for d in devices}
for d, ts in times.items():
    print(d, ", ".join(f"N={N}: {t * 1e3:.1f} ms" for N, t in zip(sizes, ts, strict=True)))

fig, ax = plt.subplots(figsize=(5, 3.2))
for d, ts in times.items():
    name = torch.cuda.get_device_name(0) if d == "cuda" else f"{torch.get_num_threads()} threads"
    ax.plot(sizes, ts, "-o", ms=4, label=f"{d} ({name})")
ax.set(
    xscale="log",
    yscale="log",
    xlabel="hidden units N",
    ylabel="seconds per ANP estimate",
    title="one ANP estimate (B = 32, T = 100)" if not SMALL else "one ANP estimate (small)",
)
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
fig.savefig(IMG / "f_gpu_timing.png", dpi=110)

# %% [markdown]
# ![timing](img/f_gpu_timing.png)
#
# The figure on this page was made on the machine named in its legend (the machine that
# built these docs had no GPU, so it shows the CPU alone); run the script to see yours. Rules of thumb: keep small networks on the CPU with `train.threads = 1`
# (and run several at once, e.g. with a [sweep](c_noise_sweep.md)); move large networks,
# large batches or many resamples (`rule.K`) to the GPU. `float64` (`train.dtype`) is much
# slower on most GPUs.
#
# ## Simulating and estimating on the GPU
#
# Inputs and outputs stay numpy arrays; only the computation moves:

# %%
spec = bp.RateSpec(n_in=3, n_rec=64, n_out=2, tau=0.02, dt=0.001, sigma=1e-3)
params = bp.init_params(spec, seed=0)
u = np.random.default_rng(0).standard_normal((50, 8, 3))
x = bp.simulate(spec, u, params=params, device=device)
g = bp.estimate("anp", spec, params, u, np.zeros((50, 8, 2)), seed=0, device=device)
print(x.shape, type(x).__name__, {k: v.shape for k, v in g.items()})
