# ruff: noqa: E402, E501  (a notebook-style script: imports where they are used, Markdown tables)
# %% [markdown]
# # (a) Run a plasticity protocol and read its results
#
# A *protocol* is a TOML file that names a model, a task, a learning rule and a training
# schedule. Here we train a rate RNN on **delayed non-match to sample** (DNMS, Miconi 2017)
# with the **online three-factor rule**: no clean pass and no backward pass — each synapse
# keeps an eligibility trace of (x − x̄)·z, and a global reward signal M = R − R̄ at the end
# of each trial turns it into a weight change (see [Concepts](../concepts.md) and
# [Reward-based plasticity](../plasticity.md)).
#
# You will: run the protocol from Python (and see the one-line command that does the same),
# look inside the run directory, read the metrics table, draw the learning curve, and
# continue the run with `bp.resume`.
#
# Run this page as a script from the repository root:
#
#     python docs/tutorials/a_plasticity_protocol.py           # ≈ 1–2 min on one core
#     python docs/tutorials/a_plasticity_protocol.py --small   # seconds (what the tests run)

# %%
import argparse
import json
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

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

# %% [markdown]
# ## The protocol
#
# `protocols/cognitive/delayed_match_three_factor.toml` holds everything: a 200-unit tanh
# network (τ = 30 ms, dt = 10 ms), the DNMS task, the rule with its options (sparse
# exploratory "kicks", a supralinear eligibility S(y) = y³, a reward baseline per trial
# type) and 600 Adam updates of 16 trials. Every key is listed, with its unit, default and
# range, in the [file reference](../reference/config.md).

# %%
protocol = ROOT / "protocols" / "cognitive" / "delayed_match_three_factor.toml"
print(protocol.read_text())

# %% [markdown]
# ## Train
#
# `bp.run` validates the whole protocol (model, task, rule, schedule) before it writes
# anything, then trains into a run directory. `overrides` are the same dotted keys as the
# command line's `--set`; here they shorten the run for the tutorial (the full protocol is
# 600 updates — drop the overrides to reproduce [plasticity.md](../plasticity.md)).
#
# The same from the shell:
#
#     bioplaus run protocols/cognitive/delayed_match_three_factor.toml \
#         --out runs/tutorials/dnms_three_factor --set train.steps=150 --set train.eval_every=10

# %%
steps = 6 if SMALL else 150
overrides = [f"train.steps={steps}", f"train.eval_every={3 if SMALL else 10}"]
if SMALL:  # a smaller network and evaluation set, so the test suite runs this in seconds
    overrides += ["model.n_rec=32", "train.eval_batch=16", "train.batch_size=8"]
run_dir = WORK / "dnms_three_factor"
shutil.rmtree(run_dir, ignore_errors=True)  # bp.run refuses to overwrite a run
result = bp.run(protocol, out=run_dir, overrides=overrides, progress=False)
print(result.status, result.out)

# %% [markdown]
# ## What a run directory holds
#
# | file | content |
# |---|---|
# | `config.json` | the resolved protocol (every default filled in), the seeds, versions, the command |
# | `status.json` | `running`, `completed`, `diverged` (with the reason) or `interrupted` |
# | `metrics.csv` | one row per evaluation: `step`, `loss`, `eval_loss`, `metric`, `eval_*`, `train_*`, `wall_time` |
# | `checkpoint.pt` | weights, optimizer and generator states: `bp.resume` continues from it |
# | `params_final.npz` | the final weights (numpy) |
# | `loss.png` | the learning curves (`bioplaus plot RUN` redraws it) |

# %%
print(sorted(p.name for p in run_dir.iterdir()))
config = json.loads((run_dir / "config.json").read_text())
print("rule:", config["protocol"]["rule"]["name"], "| seeds:", config["seeds"])

# %% [markdown]
# `result.metrics` is the metrics table as a pandas DataFrame (the same rows as
# `metrics.csv`); `result.params` the final weights. For DNMS the headline `metric` is the
# held-out accuracy (fraction of trials with the right sign of the mean response).

# %%
df = result.metrics
print(df[["step", "loss", "eval_loss", "metric", "wall_time"]].to_string(index=False))
print({k: v.shape for k, v in result.params.items()})

# %% [markdown]
# ## The learning curve
#
# The held-out accuracy against the number of trials seen (updates × batch size):

# %%
batch = config["protocol"]["train"]["batch_size"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
ax1.plot(df["step"] * batch, df["eval_loss"], "-o", ms=3)
ax1.set(xlabel="trials", ylabel="held-out loss", title="loss")
ax2.plot(df["step"] * batch, df["metric"], "-o", ms=3, color="C1")
ax2.axhline(0.5, color="gray", ls=":", label="chance")
ax2.set(xlabel="trials", ylabel="held-out accuracy", title="DNMS, online three-factor")
ax2.set_ylim(0, 1.05)
ax2.legend()
fig.tight_layout()
fig.savefig(IMG / "a_dnms_three_factor.png", dpi=110)

# %% [markdown]
# ![DNMS learning curve](img/a_dnms_three_factor.png)
#
# (The figure on this page is the 150-update run above, seed 0: the network goes from
# chance to 100 % held-out accuracy after about 1800 trials. Other seeds and the full
# 600-update protocol are in [plasticity.md](../plasticity.md).)
#
# ## Continue the run
#
# `bp.resume(run_dir)` (or `bioplaus resume RUN`) continues from the last checkpoint up to
# the protocol's `train.steps`; on CPU the continuation is bit-identical to an
# uninterrupted run, including the rule's own state (the reward baselines R̄). To train
# longer, start a new run with a larger `train.steps`. Reading a finished run back later
# needs nothing but the folder: `bp.load_run` returns its config, metrics table, final
# parameters and status (a folder that is not a run, or a damaged file in it, is one
# `SpecError` line naming the file):

# %%
again = bp.load_run(run_dir)
print(again.status, "at step", int(again.final["step"]), "|", again.summary())
print("metric:", again.metric, "| rule:", again.config["protocol"]["rule"]["name"])
assert again.metrics.equals(pd.read_csv(run_dir / "metrics.csv"))
print({k: v.shape for k, v in again.params.items()})

# %% [markdown]
# ## Next
#
# - Other reward-based protocols: `protocols/cognitive/*_three_factor.toml` (perceptual
#   decision, context-dependent choice, pattern generation) and their DANP and BPTT
#   counterparts, compared in [plasticity.md](../plasticity.md).
# - The rule's options (`tau_e`, `tau_b`, `reward = "step"`, `noise = "gaussian"`, …) are in
#   the [`[rule]` table reference](../reference/config.md#rulespec).
