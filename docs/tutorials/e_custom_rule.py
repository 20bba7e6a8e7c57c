# ruff: noqa: E402, E501  (a notebook-style script: imports where they are used, Markdown tables)
# %% [markdown]
# # (e) Write your own learning rule
#
# Every rule in bioplaus returns an **estimate of the gradient** of the loss, with autograd's
# sign and scale, so it can be checked against the exact gradient at the same weights and
# handed to any optimizer. A rule is one object in one file: its options (a pydantic model),
# its math on the paired-pass driver's per-step records, and one `bp.register_rule` call.
# Once registered, a protocol names it like a built-in, and `bioplaus run` / `bp.run`,
# `resume`, sweeps and `compare` treat it exactly like one — on the rate network and on the
# spiking LIF network, with decorrelation.
#
#     python docs/tutorials/e_custom_rule.py            # ≈ 3 min on one core
#     python docs/tutorials/e_custom_rule.py --small    # ≈ 1 min (the tests)

# %%
import argparse
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import bioplaus as bp

ap = argparse.ArgumentParser()
ap.add_argument("--small", action="store_true", help="tiny sizes (what the test suite runs)")
ap.add_argument("--out", help="folder for the figures (default runs/tutorials/img)")
ap.add_argument("--work", help="folder for the run directories (default runs/tutorials)")
args, _ = ap.parse_known_args()
SMALL = args.small or os.environ.get("BIOPLAUS_TUTORIAL_SMALL") == "1"

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next(p for p in (here, *here.parents) if (p / "protocols").is_dir())
WORK = Path(args.work) if args.work else ROOT / "runs" / "tutorials"
IMG = Path(args.out) if args.out else WORK / "img"
IMG.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The rule, in a file of your own
#
# `docs/tutorials/mixed_credit.py` holds a rule that is not in the library: **mixed-credit
# node perturbation**. The readout's gradient is time-local, so it is credited with the step's
# own loss difference δℓ_t; the hidden weights' influence lasts for the rest of the trial, so
# they are credited with the whole trial's δL (unbiased for the full BPTT gradient):
#
# $$ G_{out} = \frac{1}{\Sigma m}\sum_{t,b} \delta\ell_{t,b}\,\frac{\varepsilon^o_{t,b}}{v\sigma^2} z^{o\top}_{t,b},
#    \qquad G_{hid} = \frac{1}{\Sigma m}\sum_b \delta L_b \sum_t \frac{\varepsilon^x_{t,b}}{v\sigma^2} z^{h\top}_{t,b} $$
#
# The file defines three things:
#
# - `MixedCreditOptions(PairedPassOptions)`: the rule's own options (`hidden_credit`), beside
#   the paired-pass driver's `sigma`, `K` and `baseline` it inherits. The protocol's `[rule]`
#   table is validated by this model: an option of another rule, or a typo, is refused.
# - `MixedCreditNP`: the `(init, accumulate, finalize)` contract of
#   `bioplaus.rules.base.PerturbationRule`. The driver runs the clean and noisy passes and
#   hands `accumulate` one `StepRecord` per step (presynaptic z of the clean pass, δx, δo, the
#   injected noise ε, δℓ_t) — pure tensor math, so the rule runs online, in O(1) memory in
#   the sequence length, on the CPU or a GPU, on rate and LIF networks alike.
# - `bp.register_rule("mixed-np", options=..., build=..., mechanism="node")`.
#
# A protocol loads it with `plugins = ["../../docs/tutorials/mixed_credit.py"]` (a path
# relative to the protocol, or a module name); here we import it by the same mechanism.

# %%
from bioplaus.registry import load_plugin

load_plugin(str(ROOT / "docs" / "tutorials" / "mixed_credit.py"))
print(bp.RuleSpec(name="mixed-np", K=4))  # validated by the rule's own options model
try:
    bp.RuleSpec(name="mixed-np", tau_e=0.1)
except ValueError as err:
    print("refused:", err)

# %% [markdown]
# ## Check it against the exact gradient
#
# `bp.estimate` runs any registered rule: the same paired passes, the same random streams.
# A 16-unit network reproduces a 3-step-delayed copy of a smooth random input; we compare
# each estimate with BPTT's gradient (cosine of the angle, per weight matrix) as the number
# of noisy resamples K grows, beside the built-in time-local `np`.

# %%
spec = bp.RateSpec(n_in=1, n_rec=16, n_out=1, tau=0.01, dt=0.01, sigma=1e-3)
params = bp.init_params(spec, seed=0)
rng = np.random.default_rng(1)
T = 20
u = np.tanh(np.cumsum(rng.standard_normal((T, 8, 1)), axis=0) * 0.3)
y = np.concatenate([np.zeros((3, 8, 1)), u[:-3]])
exact = bp.estimate("bptt", spec, params, u, y, dtype="float64")


def cos(a, b):
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


Ks = [1, 16, 128] if SMALL else [1, 4, 16, 64, 256, 1024]
table = {(r, k): [] for r in ("mixed-np", "np") for k in ("W_rec", "W_out")}
for K in Ks:
    for r in ("mixed-np", "np"):
        g = bp.estimate(r, spec, params, u, y, seed=K, K=K, dtype="float64")
        for k in ("W_rec", "W_out"):
            table[r, k].append(cos(g[k], exact[k]))
    print(
        f"K = {K:4d}: "
        + ", ".join(f"{r} {k} {table[r, k][-1]:+.2f}" for r, k in table)
    )

# %% [markdown]
# The readout lines up with the gradient after a few resamples under both rules (its credit
# is local in both). For the hidden weights the whole-trial credit targets the full BPTT
# gradient: its cosine keeps rising with K, while the time-local `np` converges to TBPTT(1)'s
# direction and stays below it on a task whose credit spans steps (at full size, K = 1024:
# cos 0.92 for `mixed-np`'s W_rec against 0.42 for `np`'s).
#
# ## Train it through protocols: rate and LIF, with decorrelation
#
# `protocols/custom/pattern_mixed_np.toml` names the rule (K = 4) on the rate pattern
# generator with learned decorrelation of the hidden rates (`decorrelate_rec`, `lr_decor`);
# `protocols/custom/lif_pattern_mixed_np.toml` runs it on the spiking pattern generator.
# Both are ordinary protocols: `bioplaus run protocols/custom/pattern_mixed_np.toml` works
# from the shell.

# %%
import pandas as pd

steps = {"rate": 40 if SMALL else 300, "lif": 10 if SMALL else 150}
curves = {}
for net, proto in (("rate", "pattern_mixed_np"), ("lif", "lif_pattern_mixed_np")):
    out = WORK / "e_custom_rule" / f"{net}_{steps[net]}"
    done, _ = bp.ensure_run(  # keeps a finished run, resumes an interrupted one
        ROOT / "protocols" / "custom" / f"{proto}.toml",
        out,
        overrides=[f"train.steps={steps[net]}", f"train.eval_every={5 if SMALL else 25}"],
    )
    m = curves[net] = pd.read_csv(out / "metrics.csv")
    print(f"{net} ({done}): held-out loss {m['eval_loss'].iloc[0]:.4f} → {m['eval_loss'].iloc[-1]:.4f}")

# %% [markdown]
# The run directory records the rule's resolved options and the plugin's absolute path in
# `config.json`, so a fresh process — `bioplaus resume`, `compare`, or a sweep's worker —
# finds the rule without any import in its own code:

# %%
rate_dir = WORK / "e_custom_rule" / f"rate_{steps['rate']}"
shown = subprocess.run([sys.executable, "-m", "bioplaus", "resume", str(rate_dir)],
                       capture_output=True, text=True)  # fmt: skip
print(shown.stdout.strip() or shown.stderr.strip().splitlines()[-1])

# %% [markdown]
# ## A two-point sweep
#
# `protocols/sweeps/custom_rule_sigma.toml` sweeps the rule's σ over two values. The sweep's
# workers are separate processes: they load the rule from the plugin path in each point's
# config.

# %%
import tomllib

from bioplaus.tomlwrite import dumps

shipped = ROOT / "protocols" / "sweeps" / "custom_rule_sigma.toml"
sweep = tomllib.loads(shipped.read_text())
sweep["protocol"] = str((shipped.parent / sweep["protocol"]).resolve())
sweep["fixed"]["train.steps"] = 10 if SMALL else 100
sweep_file = WORK / "e_custom_rule" / "custom_rule_sigma.toml"
sweep_file.parent.mkdir(parents=True, exist_ok=True)
sweep_file.write_text(dumps(sweep))
sweep_out = WORK / "e_custom_rule" / f"sweep_{sweep['fixed']['train.steps']}"
cmd = [sys.executable, "-m", "bioplaus", "sweep", str(sweep_file), "--out", str(sweep_out),
       "--workers", "2", "--quiet"]  # fmt: skip
done = subprocess.run(cmd, capture_output=True, text=True)
print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:])
import pandas as pd

sweep_table = pd.read_csv(sweep_out / "results.csv")
print(sweep_table[[c for c in sweep_table.columns if c in ("point", "rule.sigma", "status", "final_metric", "final_eval_loss")]])

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.3))
for (r, k), v in table.items():
    ax1.plot(Ks, v, "-o" if r == "mixed-np" else "--s", ms=4, label=f"{r} {k}")
ax1.set(xscale="log", xlabel="noisy resamples K", ylabel="cos(estimate, BPTT)",
        title="alignment with the exact gradient", ylim=(-0.2, 1.05))  # fmt: skip
ax1.legend(fontsize=7)
for net, m in curves.items():
    ax2.plot(m["step"], m["eval_loss"] / m["eval_loss"].iloc[0], label=f"{net} (mixed-np + decorrelation)")
ax2.set(xlabel="update", ylabel="held-out loss / initial", yscale="log", title="training through protocols")
ax2.legend(fontsize=7)
fig.tight_layout()
fig.savefig(IMG / "e_custom_rule.png", dpi=110)

# %% [markdown]
# ![custom rule](img/e_custom_rule.png)
#
# ## What the library did for the rule
#
# Nothing in bioplaus names `mixed-np`: the paired-pass driver (clean and noisy passes in one
# batch, K resamples, the noise stream, decorrelation statistics), the trainer (optimiser,
# decorrelation update, divergence guard, checkpoints), the run directory and the sweep are
# shared by every rule of the `node` mechanism. See [Contributing](../contributing.md) for
# adding a rule *to the library* (the same file, under `bioplaus/rules/`, with its tests).
