# ruff: noqa: E402, E501  (a notebook-style script: imports where they are used, Markdown tables)
# %% [markdown]
# # (d) Write your own task
#
# A task is a small class (NeuroGym style) that makes batches of trials as numpy arrays and
# scores a network's outputs. Once registered under a name, protocols use it like any
# built-in task, with every rule, `bp.run`, `bp.resume`, sweeps and `bioplaus compare`.
#
# Here: an **evidence integrator**. The input is a train of random ±1 pulses; the target is
# their running sum (scaled), and only the second half of each trial is scored.
#
#     python docs/tutorials/d_custom_task.py            # ≈ 1 min on one core
#     python docs/tutorials/d_custom_task.py --small    # seconds (the tests)

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
from bioplaus.tasks import TASKS
from bioplaus.tasks.base import Batch, Task

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
# ## The class
#
# A task sets `name`, `n_in`, `n_out`, `loss` (`"mse"` or `"ce"`), the name of its headline
# `metric` (and whether lower is better), and implements two methods:
#
# - `sample(batch_size, rng, split)` → `Batch(inputs [T, B, n_in], targets [T, B, n_out],
#   mask [T, B] or None)`, time-major. All randomness comes from the generator passed in
#   (the trainer seeds it from the run's seed), so runs are reproducible and resumable.
# - `metrics(outputs, batch)` → a dict of floats that contains `self.metric`.
#
# Constructor arguments are the task's options: the keys of a protocol's `[task]` table.


# %%
class Integrator(Task):
    """Integrate ±1 pulses: target y_t = gain · Σ_{s≤t} u_s, scored in the trial's 2nd half."""

    name = "integrator"
    loss = "mse"
    metric = "nrmse"
    lower_is_better = True

    def __init__(self, length: int = 50, p_pulse: float = 0.2, gain: float = 0.2) -> None:
        if length < 2:
            raise ValueError(f"length must be >= 2 (got {length})")  # one line, names the key
        if not 0 < p_pulse <= 1:
            raise ValueError(f"p_pulse must be in (0, 1] (got {p_pulse})")
        self.length, self.p_pulse, self.gain = length, p_pulse, gain
        self.n_in, self.n_out = 1, 1

    def sample(self, batch_size: int, rng: np.random.Generator, split: str = "train") -> Batch:
        T, B = self.length, batch_size
        on = rng.random((T, B, 1)) < self.p_pulse
        u = np.where(on, rng.choice([-1.0, 1.0], size=(T, B, 1)), 0.0)
        y = self.gain * np.cumsum(u, axis=0)
        mask = np.zeros((T, B))
        mask[T // 2 :] = 1.0
        return Batch(u, y, mask)

    def metrics(self, outputs: np.ndarray, batch: Batch) -> dict[str, float]:
        m = batch.mask > 0
        err, y = (outputs - batch.targets)[m], batch.targets[m]
        return {"nrmse": float(np.sqrt(np.mean(err**2)) / y.std())}


# %% [markdown]
# Check it by hand before training anything: shapes, the mask, and that the targets score
# perfectly while predicting zero does not.

# %%
task = Integrator(length=50)
b = task.sample(4, np.random.default_rng(0))
print(b.inputs.shape, b.targets.shape, b.mask.shape)
print("targets:", task.metrics(b.targets, b), "| zeros:", task.metrics(0 * b.targets, b))

# %% [markdown]
# ## Register it and train
#
# `TASKS` maps names to task classes; adding one makes `name = "integrator"` valid in any
# protocol run in this process. (Sweeps with `workers > 1` and Dask workers start fresh
# processes: put the class in an importable module that registers it, or add it to
# `bioplaus/tasks/` as described in [Contributing](../contributing.md).)
#
# A protocol can be a dict as well as a file: the same keys as the TOML. We train the same
# network with BPTT and with DANP.

# %%
TASKS["integrator"] = Integrator


def protocol(rule: str) -> dict:
    return {
        "name": f"integrator_{rule}",
        "seed": 0,
        "model": {
            "kind": "rate",
            "n_in": 1,
            "n_rec": 16 if SMALL else 32,
            "n_out": 1,
            "tau": 0.05,
            "dt": 0.01,
            "sigma": 1e-3,
            "decorrelate_rec": rule == "danp",
        },
        "task": {"name": "integrator", "length": 30 if SMALL else 50},
        "rule": {"name": "anp" if rule == "danp" else rule},
        "train": {
            "steps": 6 if SMALL else 400,
            "batch_size": 16,
            "optimizer": "adam",
            "lr": 3e-3,
            "lr_decor": 1e-3 if rule == "danp" else 0.0,
            "eval_every": 3 if SMALL else 20,
            "threads": 1,
        },
    }


results = {}
for rule in ("bptt", "danp"):
    out = WORK / f"integrator_{rule}"
    shutil.rmtree(out, ignore_errors=True)
    results[rule] = bp.run(protocol(rule), out=out, progress=False)
    print(rule, "held-out NRMSE", round(float(results[rule].metrics["metric"].iloc[-1]), 3))

# %% [markdown]
# A task's option errors surface like any other bad key — one line, naming it:

# %%
try:
    bp.run(
        {**protocol("bptt"), "task": {"name": "integrator", "p_pulse": 2.0}},
        out=WORK / "never_written",
    )
except bp.SpecError as err:
    print("SpecError:", err)

# %% [markdown]
# ## Look at what the networks do
#
# `bp.simulate` gives the noise-free hidden states of the trained weights; the readout is
# o = W_out φ(x).

# %%
test = Integrator(length=30 if SMALL else 50).sample(1, np.random.default_rng(123))
fig, ax = plt.subplots(figsize=(7, 3))
t = np.arange(test.inputs.shape[0])
ax.bar(t, test.inputs[:, 0, 0] * 0.1, color="0.8", label="input pulses (×0.1)")
ax.plot(t, test.targets[:, 0, 0], "k", lw=2, label="target")
for rule, res in results.items():
    spec = bp.RateSpec(**{k: v for k, v in protocol(rule)["model"].items()})
    x = bp.simulate(spec, test.inputs, params=res.params, noise=np.zeros((len(t), 1, spec.n_rec)))
    o = np.tanh(x) @ res.params["W_out"].T
    if "D_rec" in res.params:
        o = np.tanh(x) @ res.params["D_rec"].T @ res.params["W_out"].T
    ax.plot(t, o[:, 0, 0], label=rule.upper())
ax.axvspan(len(t) // 2, len(t) - 1, color="C2", alpha=0.08, label="scored")
ax.set(xlabel="step", ylabel="output", title="integrator: trained networks on a held-out trial")
ax.legend(fontsize=8, ncol=2)
fig.tight_layout()
fig.savefig(IMG / "d_integrator.png", dpi=110)

# %% [markdown]
# ![integrator](img/d_integrator.png)
#
# ## Checklist for a task of your own
#
# - all randomness from the `rng` argument (never `np.random.*` globals);
# - `split="test"` may return held-out data (the trainer always evaluates on a fixed
#   batch drawn with `split="test"`);
# - a mask where only part of a trial is scored, `None` otherwise;
# - option errors as `ValueError` with the option's name in the message;
# - for reward-based rules with a per-type baseline, `trial_type(batch)` and
#   `n_trial_types` (see `bioplaus/tasks/delayed_match.py`).
