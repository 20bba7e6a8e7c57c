# ruff: noqa: E402, E501  (a notebook-style script: imports where they are used, Markdown tables)
# %% [markdown]
# # (c) Sweep the noise level, locally and on a Dask cluster
#
# How much intrinsic noise should a network have for node perturbation to learn? The noise
# σ is both the network's intrinsic noise and the perturbation of the rule's noisy pass, so
# a sweep over `model.sigma` answers it. A *sweep file* names a base protocol, a grid of
# dotted keys, and variants (here the rules); every point is an ordinary run directory, and
# the sweep writes one results table and a standard figure. Everything about sweep files is
# in [Sweeps](../sweeps.md).
#
#     python docs/tutorials/c_noise_sweep.py            # ≈ 3–5 min on 2 cores
#     python docs/tutorials/c_noise_sweep.py --small    # seconds (the tests)

# %%
import argparse
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from bioplaus.analysis.sweep_plots import plot_sweep, summarise_sweep
from bioplaus.sweep import run_sweep

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
WORK.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The sweep file
#
# Base protocol: `protocols/mackey_glass_anp.toml` (64 tanh units, 5-step-ahead Mackey-Glass
# forecast). The grid: σ over four decades and the seed; the variants: ANP, DANP (ANP plus
# decorrelation) and BPTT, whose σ is pinned to 0 (it trains noise-free and is drawn as a
# reference line). Keys are the dotted protocol keys of `bioplaus run --set`.

# %%
sigmas = "{ logspace = [-4, -1, 2] }" if SMALL else "{ logspace = [-4, -1, 4] }"
fixed = (
    '"train.steps" = 4\n"train.eval_every" = 2\n"task.length" = 60\n"task.washout" = 5\n'
    '"model.n_rec" = 16\n"train.eval_batch" = 8\n'
    if SMALL
    else '"train.steps" = 150\n"train.eval_every" = 50\n'
)


def sweep_file(seeds: list[int]) -> Path:
    """Write the sweep file (seeds given) next to the runs and return its path."""
    text = f'''name = "tutorial_noise"
protocol = "{(ROOT / "protocols" / "mackey_glass_anp.toml").as_posix()}"
threads = 1

[fixed]
"train.lr" = 3e-3
{fixed}
[grid]
"model.sigma" = {sigmas}
seed = {seeds}

[variants.anp]
"rule.name" = "anp"

[variants.danp]
"rule.name" = "anp"
"model.decorrelate_rec" = true
"train.lr_decor" = 1e-3

[variants.bptt]
"rule.name" = "bptt"
"model.sigma" = 0.0

[plot]
x = "model.sigma"
y = "metric"
'''
    path = WORK / "tutorial_noise.toml"
    path.write_text(text)
    return path


path = sweep_file(seeds=[0])
print(path.read_text())

# %% [markdown]
# ## Run it locally
#
# `run_sweep(path, out, workers=N)` runs the points in N local processes (`workers=1`: in
# this one), each with `threads` torch threads — one per run is fastest for networks this
# small. From the shell: `bioplaus sweep SWEEP.toml --workers 2 --out DIR`, and
# `bioplaus sweep SWEEP.toml --dry-run` lists the points and checks every one of them
# without running anything.
#
# This page runs in one process (`workers=1`) so that it also works cell by cell in a
# notebook. In a *script* that starts worker processes (`workers=2`, or a Dask
# `LocalCluster` with processes), put the calls under `if __name__ == "__main__":` —
# Python starts workers by re-importing the main module.

# %%
out = WORK / "sweep_noise"
shutil.rmtree(out, ignore_errors=True)
df = run_sweep(path, out, workers=1, progress=False)
print(df[["point", "variant", "model.sigma", "seed", "status", "metric"]].to_string(index=False))

# %% [markdown]
# `OUT/results.csv` holds one row per point (its last metrics row, the status, the run
# directory); `OUT/points/NAME/` is each point's run directory; `OUT/sweep.png` the figure.
#
# ## Extend it on a Dask cluster
#
# A sweep runs unchanged on Dask: pass a `dask.distributed.Client` (or a scheduler address,
# `bioplaus sweep SWEEP.toml --scheduler tcp://HOST:8786`). Re-running a sweep into the same
# folder **skips finished points**, so adding a second seed to the grid runs only the new
# points. Here the "cluster" is a `LocalCluster` on this machine; on a real one you would
# write `Client("tcp://scheduler:8786")`, or start workers through SLURM with
# dask-jobqueue ([Sweeps](../sweeps.md#slurm-pbs-sge-lsf-with-dask-jobqueue) has a complete
# script). The workers need bioplaus installed and the sweep folder on a shared file system.
# Give each Dask worker one thread (`--nthreads 1`): a run is not meant to share its process
# with another run (matplotlib's pyplot, used for each run's `loss.png`, is not thread-safe).

# %%
from dask.distributed import Client, LocalCluster

cluster = LocalCluster(
    n_workers=1,
    threads_per_worker=1,  # one point at a time per worker
    processes=False,  # the worker is a thread of this process (see the note above)
    dashboard_address=None,
)
client = Client(cluster)
path = sweep_file(seeds=[0, 1])
df = run_sweep(path, out, scheduler=client, progress=False)
client.close()
cluster.close()
print(df.groupby("variant")["status"].value_counts().to_string())

# %% [markdown]
# ## The figure
#
# `run_sweep` already drew `OUT/sweep.png`; `plot_sweep` draws it from any results table,
# and `summarise_sweep` gives the numbers behind it (median, min, max over seeds):

# %%
print(summarise_sweep(df, x="model.sigma", y="metric").to_string())
plot_sweep(
    df,
    IMG / "c_noise_sweep.png",
    x="model.sigma",
    y="metric",
    title="held-out NRMSE against noise σ",
)

# %% [markdown]
# ![noise sweep](img/c_noise_sweep.png)
#
# Lines are the median over seeds, the band their range; BPTT (σ = 0) is the dashed line.
# With these short budgets the differences are small; the 57-run sweep in
# [Sweeps](../sweeps.md#measured-the-scaled-down-noise-sweep) shows ANP and DANP learning
# best at σ ≤ 1e-3 and all rules failing at σ = 1.
