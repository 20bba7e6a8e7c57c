# ruff: noqa: E402, E501  (a notebook-style script: imports where they are used, Markdown tables)
# %% [markdown]
# # (b) Compare a DANP-trained and a BPTT-trained network
#
# Does a network trained with a biologically plausible rule end up computing the way a
# BPTT-trained one does? This tutorial trains the same 64-unit rate RNN on a 5-step-ahead
# Mackey-Glass forecast twice — with **DANP** (ANP plus learned decorrelation: two forward
# passes per update, no backward pass) and with **BPTT** — from the same initial weights,
# then compares them: learning curves, the **alignment** of DANP's update with the exact
# gradient, the representational similarity of their hidden trajectories (**CKA**,
# Procrustes distance), their dimensionality and their **fixed points**. The measures are
# defined in [Analysis](../analysis.md).
#
#     python docs/tutorials/b_compare_danp_bptt.py            # ≈ 2–4 min on one core
#     python docs/tutorials/b_compare_danp_bptt.py --small    # seconds (the tests)

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
from bioplaus.analysis import dynamics as dyn
from bioplaus.analysis.compare import clean_states, compare_runs
from bioplaus.analysis.fixed_points import find_fixed_points

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
# ## Train both networks
#
# `protocols/mackey_glass_danp.toml` and `protocols/mackey_glass_bptt.toml` differ only in
# the rule (and DANP's `model.decorrelate_rec = true`, `train.lr_decor = 1e-3`); both use
# seed 0, so they start from the same weights. Their own budget is 2000 updates; here we
# train 300 (the [Analysis](../analysis.md) page has the 2000-update comparison).

# %%
steps = 8 if SMALL else 300
common = [f"train.steps={steps}", f"train.eval_every={4 if SMALL else 25}"]
if SMALL:
    common += ["task.length=60", "task.washout=5", "model.n_rec=16", "train.eval_batch=8"]
runs = {}
for name in ("danp", "bptt"):
    out = WORK / f"compare_{name}"
    shutil.rmtree(out, ignore_errors=True)
    runs[name] = bp.run(
        ROOT / "protocols" / f"mackey_glass_{name}.toml", out=out, overrides=common, progress=False
    )
    last = runs[name].metrics.iloc[-1]
    print(f"{name}: held-out NRMSE {last['metric']:.3f} after {int(last['step'])} updates")

# %% [markdown]
# ## The comparison report
#
# `compare_runs` (the command `bioplaus compare RUN_A RUN_B --out DIR --alignment`)
# simulates both networks noise-free on the same held-out trials and writes figures,
# `report.md` and `compare.json` into DIR; it also returns the numbers.

# %%
report_dir = WORK / "compare_report"
shutil.rmtree(report_dir, ignore_errors=True)
res = compare_runs(
    runs["danp"].out,
    runs["bptt"].out,
    report_dir,
    alignment=True,
    n_trials=8 if SMALL else 32,
    n_fixed_init=8 if SMALL else 64,
    n_rep=2 if SMALL else 8,
)
sim, al = res["similarity"], res["alignment"]["A"]
print(f"CKA(DANP, BPTT) = {sim['cka_final']:.2f}, Procrustes = {sim['procrustes_final']:.2f} rad")
print(
    f"participation ratio: DANP {res['dimensionality']['pr_A']:.2f}, "
    f"BPTT {res['dimensionality']['pr_B']:.2f}"
)
print(
    f"cos(DANP estimate, BPTT gradient): init {al['init']['cos_of_mean']:.2f}, "
    f"final {al['final']['cos_of_mean']:.2f}; per matrix (final): "
    + ", ".join(f"{k} {v:.2f}" for k, v in al["final"]["per_param_cos_of_mean"].items())
)
for who in ("A", "B"):
    fp = res["fixed_points"][who]
    print(
        f"{res['labels'][who]}: {fp['n_fixed']} fixed point(s), {fp['n_stable']} stable, "
        f"max|λ(J)| {fp['spectral_radius_J']}"
    )
for fig in ("learning_curves", "alignment", "pca", "fixed_points"):
    shutil.copy(report_dir / res["figures"][fig], IMG / f"b_{fig}.png")

# %% [markdown]
# Learning curves of both runs:
#
# ![learning curves](img/b_learning_curves.png)
#
# The alignment of DANP's estimate with the BPTT gradient at the initial and the final
# weights (cosine; 1 = the same direction). The readout `W_out` is well aligned; the
# recurrent and input weights much less — DANP's time-local credit signal targets one-step
# credit, not credit through time:
#
# ![alignment](img/b_alignment.png)
#
# Hidden trajectories of both networks in one principal-component plane (BPTT's rotated onto
# DANP's by orthogonal Procrustes), and the fixed points at the mean input with the
# Jacobian's eigenvalues at the slowest one:
#
# ![PCA](img/b_pca.png)
#
# ![fixed points](img/b_fixed_points.png)
#
# ## The same numbers by hand
#
# Every measure is a library function; on trajectories [T, B, N] of the two networks driven
# by the same inputs (their units need not correspond):

# %%
a, b = bp.load_run(runs["danp"].out), bp.load_run(runs["bptt"].out)
batch = a.task.sample(8, np.random.default_rng(0), split="test")
xa, xb = clean_states(a, batch.inputs), clean_states(b, batch.inputs)
print(
    "linear CKA",
    round(dyn.linear_cka(xa, xb), 3),
    "| Procrustes distance",
    round(dyn.procrustes_distance(xa, xb), 3),
    "| PR",
    round(dyn.participation_ratio(xa), 2),
    round(dyn.participation_ratio(xb), 2),
)
u_star = batch.inputs.reshape(-1, batch.inputs.shape[-1]).mean(0)  # constant input u*
fp = find_fixed_points(a.protocol.model, a.params, u_star, xa)
print("DANP fixed points:", len(fp.q), "| q =", np.round(fp.q, 12), "| stable:", fp.stable)

# %% [markdown]
# And the alignment of any rule with the exact gradient at any weights is one call each:

# %%
y = batch.targets
g_anp = bp.estimate("anp", a.protocol.model, a.params, batch.inputs, y, seed=0, mask=batch.mask)
g_bptt = bp.estimate("bptt", a.protocol.model, a.params, batch.inputs, y, mask=batch.mask)
for k in g_bptt:
    cos = (g_anp[k] * g_bptt[k]).sum() / np.linalg.norm(g_anp[k]) / np.linalg.norm(g_bptt[k])
    print(f"{k}: cos = {cos:.2f}")

# %% [markdown]
# A bar chart of the per-matrix alignment at the final weights:

# %%
per = al["final"]["per_param_cos_of_mean"]
fig, ax = plt.subplots(figsize=(4, 2.8))
ax.bar(list(per), list(per.values()), color="C0")
ax.axhline(0, color="k", lw=0.8)
ax.set(ylabel="cos(DANP, BPTT)", title="alignment per matrix, final weights", ylim=(-0.2, 1))
fig.tight_layout()
fig.savefig(IMG / "b_alignment_per_matrix.png", dpi=110)

# %% [markdown]
# ![alignment per matrix](img/b_alignment_per_matrix.png)
#
# ## Next
#
# The full 2000-update comparison, and what it says about DANP's dynamics (lower
# dimensionality, a stable rather than marginal fixed point), is in
# [Analysis](../analysis.md).
