# ruff: noqa: E402, E501  (a notebook-style script: imports where they are used, Markdown tables)
# %% [markdown]
# # (g) Run the same model on brian2
#
# The rate network is one set of equations (DESIGN §1). The torch back-end integrates them
# discretised and batched; the brian2 back-end builds the same equations as a brian2
# `NeuronGroup` and integrates them in continuous-time form, with brian2's `xi` as the
# noise. Both read the same spec and the same weights, and when they are given the same
# noise realisation they produce the same trajectories. This tutorial trains a network with
# torch, then runs the trained network on brian2 and overlays the two; the same for a
# leaky integrate-and-fire network.
#
#     python docs/tutorials/g_brian2.py            # ≈ 1 min
#     python docs/tutorials/g_brian2.py --small    # seconds (the tests)
#
# At the end, a protocol is trained *on* brian2 (`backend = "brian2"`); the
# [brian2 page](../brian2.md) has the details.

# %%
import argparse
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import bioplaus as bp
from bioplaus.spec import LIFSpec

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

# %% [markdown]
# ## Train a rate network (torch)
#
# A short DANP run of the Mackey-Glass forecast protocol; its final weights are in
# `result.params` (and in `RUN/params_final.npz`).

# %%
out = WORK / "brian2_source"
shutil.rmtree(out, ignore_errors=True)
overrides = [f"train.steps={4 if SMALL else 200}", f"train.eval_every={4 if SMALL else 50}"]
if SMALL:
    overrides += ["task.length=60", "task.washout=5", "model.n_rec=16", "train.eval_batch=8"]
result = bp.run(
    ROOT / "protocols" / "mackey_glass_danp.toml", out=out, overrides=overrides, progress=False
)
spec = bp.load_model(ROOT / "models" / "mackey_glass_small.toml")
spec = bp.RateSpec(
    **{**spec.model_dump(), "n_rec": result.params["W_rec"].shape[0], "decorrelate_rec": True}
)
print(spec)

# %% [markdown]
# ## Same weights, same noise, two back-ends
#
# `noise` is a standard-normal realisation ξ [T, B, N]; both back-ends add σ√α ξ_t at step
# t, so their trajectories agree up to floating-point rounding (float64 here). Without
# `noise`, each draws its own from `seed` (brian2 through its `xi`), and they agree in
# distribution only.

# %%
from bioplaus.tasks import make_task

task = make_task(
    "mackey_glass",
    mode="forecast",
    horizon=5,
    length=60 if SMALL else 200,
    washout=20 if not SMALL else 5,
    seed=1,
)
batch = task.sample(2, np.random.default_rng(0), split="test")
T, B = batch.inputs.shape[:2]
xi = np.random.default_rng(1).standard_normal((T, B, spec.n_rec))
x_torch = bp.simulate(spec, batch.inputs, params=result.params, noise=xi, dtype="float64")
x_brian = bp.simulate(spec, batch.inputs, params=result.params, noise=xi, backend="brian2")
print("max |x_torch − x_brian2| =", float(np.abs(x_torch - x_brian).max()))


def output(x):
    p = result.params
    return np.tanh(x) @ p["D_rec"].T @ p["W_out"].T


fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
t = np.arange(T) * spec.dt
for i, c in zip(range(3), ("C0", "C1", "C2"), strict=True):
    axes[0].plot(t, x_torch[:, 0, i], color=c, lw=2.5, alpha=0.5)
    axes[0].plot(t, x_brian[:, 0, i], "--", color=c, lw=1)
axes[0].set(xlabel="time (s)", ylabel="x", title="3 hidden units: torch (thick), brian2 (dashed)")
axes[1].plot(t, batch.targets[:, 0, 0], "k", lw=1.5, label="target")
axes[1].plot(t, output(x_torch)[:, 0, 0], lw=2.5, alpha=0.5, label="torch")
axes[1].plot(t, output(x_brian)[:, 0, 0], "--", label="brian2")
axes[1].set(xlabel="time (s)", ylabel="output", title="readout")
axes[1].legend(fontsize=8)
fig.tight_layout()
fig.savefig(IMG / "g_brian2_rate.png", dpi=110)

# %% [markdown]
# ![rate network on both back-ends](img/g_brian2_rate.png)
#
# brian2's options pass through `bp.simulate`: `target="numpy"` (default), `"cython"` or
# `"cpp_standalone"`, and `recurrence="matmul"` or `"synapses"`
# (see [Design decisions](../design-decisions.md#brian2-back-end) for their costs).
#
# ## A spiking (LIF) network
#
# `LIFSpec` is the leaky integrate-and-fire model of DESIGN §1; `bp.simulate` returns the
# membrane potentials v [T, B, N] on either back-end, from the same weights and noise.

# %%
lif = LIFSpec(n_in=2, n_rec=10 if SMALL else 40, n_out=1, dt=0.001, t_ref=0.002)
lp = bp.init_params(lif, seed=0)
T_lif = 100 if SMALL else 400
u = np.full((T_lif, 1, 2), 0.5)
xi = np.random.default_rng(2).standard_normal((T_lif, 1, lif.n_rec))
v_torch = bp.simulate(lif, u, params=lp, noise=xi, dtype="float64")
v_brian = bp.simulate(lif, u, params=lp, noise=xi, backend="brian2")
print("LIF: max |v_torch − v_brian2| =", float(np.abs(v_torch - v_brian).max()))

fig, ax = plt.subplots(figsize=(7, 3))
tl = np.arange(T_lif) * lif.dt
for i in range(3):
    ax.plot(tl, v_torch[:, 0, i] + 1.5 * i, color=f"C{i}", lw=2.5, alpha=0.5)
    ax.plot(tl, v_brian[:, 0, i] + 1.5 * i, "--", color=f"C{i}", lw=1)
ax.set(
    xlabel="time (s)",
    ylabel="v (offset per neuron)",
    title="LIF membrane potentials: torch (thick), brian2 (dashed)",
)
fig.tight_layout()
fig.savefig(IMG / "g_brian2_lif.png", dpi=110)

# %% [markdown]
# ![LIF network on both back-ends](img/g_brian2_lif.png)
#
# A spike flips v from threshold to reset within one step, so where rounding differs by a
# hair at threshold the two back-ends can spike one step apart; the figure shows how close
# they stay.
#
# ### Spikes
#
# `spikes=True` makes `bp.simulate` return the spikes as well, on either back-end:
# `v, s = bp.simulate(lif, u, spikes=True)`, with `s` [T, B, N] of 0/1 (1 where a neuron
# fired at that step). `bioplaus.analysis.plots.raster` draws one trial of them;
# `bioplaus compare` draws the same rasters for two trained LIF runs (`rasters.png`).

# %%
from bioplaus.analysis.plots import raster

v_t, s_torch = bp.simulate(lif, u, params=lp, noise=xi, dtype="float64", spikes=True)
v_b, s_brian = bp.simulate(lif, u, params=lp, noise=xi, backend="brian2", spikes=True)
assert np.array_equal(v_t, v_torch)  # the same potentials as without spikes=True
for name, s in (("torch", s_torch), ("brian2", s_brian)):
    print(f"{name}: {int(s.sum())} spikes, mean rate {s.mean() / lif.dt:.1f} Hz")
print("spikes in the same step on both:", int((s_torch * s_brian).sum()))

fig, axes = plt.subplots(2, 1, figsize=(7, 3.6), sharex=True)
raster(axes[0], s_torch, dt=lif.dt, color="C0")
raster(axes[1], s_brian, dt=lif.dt, color="C1")
axes[0].set(title="spikes: torch (top), brian2 (bottom)", xlabel="")
fig.tight_layout()
fig.savefig(IMG / "g_brian2_raster.png", dpi=110)

# %% [markdown]
# ![spike rasters on both back-ends](img/g_brian2_raster.png)
#
# At the size shown (40 neurons, 0.4 s, the same noise realisation) both back-ends fire
# 248 spikes (15.5 Hz), every one of them in the same step.

# %% [markdown]
# ## Training on brian2
#
# `backend = "brian2"` at the top level of a protocol trains on brian2: each update
# simulates the batch of trials as brian2 equations (the online three-factor rule, or ANP's
# paired passes, plus decorrelation), and everything else — optimizer, checkpoints,
# `bp.resume` — is shared with torch. Only some protocols can run there (rate models,
# rules `three-factor` or `anp`; see [brian2](../brian2.md)); the others are refused with
# one line naming `backend`. brian2 has a fixed cost per run, so this is ≈ 1 s per update.
#
#     bioplaus run protocols/brian2/pattern_three_factor.toml --out runs/b2_tf
#     bioplaus run protocols/brian2/pattern_three_factor.toml --set 'backend="torch"'   # same on torch

# %%
b2 = {}
for backend in ("brian2", "torch"):
    out = WORK / f"b2_pattern_{backend}"
    shutil.rmtree(out, ignore_errors=True)
    b2[backend] = bp.run(
        ROOT / "protocols" / "brian2" / "pattern_three_factor.toml",
        out=out,
        overrides=[
            f'backend="{backend}"',
            f"train.steps={2 if SMALL else 20}",
            f"train.eval_every={1 if SMALL else 5}",
        ],
        progress=False,
    )
    m = b2[backend].metrics
    print(
        f"{backend}: {len(m)} evaluations, final held-out {m['metric'].iloc[-1]:.3f}, "
        f"{m['wall_time'].iloc[-1]:.1f} s"
    )

fig, ax = plt.subplots(figsize=(5, 3))
for backend, res in b2.items():
    ax.plot(res.metrics["step"], res.metrics["metric"], "-o", ms=3, label=backend)
ax.set(xlabel="update", ylabel="held-out metric", title="pattern, three-factor: both back-ends")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(IMG / "g_brian2_training.png", dpi=110)

# %% [markdown]
# ![training on both back-ends](img/g_brian2_training.png)
#
# The two back-ends draw different noise (brian2's `xi` against torch's generator), so the
# curves differ in detail, not in kind.
