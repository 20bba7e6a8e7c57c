# ruff: noqa: E402, E501  (a notebook-style script: imports where they are used, Markdown tables)
# %% [markdown]
# # (e) Write your own learning rule
#
# Every rule in bioplaus returns an **estimate of the gradient** of the loss, with autograd's
# sign and scale, so it can be checked against the exact gradient at the same weights and
# handed to any optimizer. This tutorial writes a rule from scratch with the public API
# only — a **whole-trial node perturbation** for the hidden weights plus the local delta
# rule for the readout — checks it against `bp.estimate("bptt", ...)`, and trains with it.
#
#     python docs/tutorials/e_custom_rule.py            # ≈ 1 min on one core
#     python docs/tutorials/e_custom_rule.py --small    # seconds (the tests)
#
# (To add a rule *to the library*, so protocols can name it, see
# [Contributing](../contributing.md#add-a-learning-rule).)

# %%
import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import bioplaus as bp

ap = argparse.ArgumentParser()
ap.add_argument("--small", action="store_true", help="tiny sizes (what the test suite runs)")
ap.add_argument("--out", help="folder for the figures (default docs/tutorials/img)")
args, _ = ap.parse_known_args()
SMALL = args.small or os.environ.get("BIOPLAUS_TUTORIAL_SMALL") == "1"

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next(p for p in (here, *here.parents) if (p / "protocols").is_dir())
IMG = Path(args.out) if args.out else ROOT / "docs" / "tutorials" / "img"
IMG.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The rule
#
# One Euler step of the rate network is x_t = (1 − α) x_{t−1} + α (W_rec r_{t−1} + W_in u_t)
# + σ√α ξ_t with r = φ(x). Run the network twice on the same inputs: clean (ξ = 0) and
# noisy. With ε_t = σ√α ξ_t the injected noise and δL_b the difference in trial b's summed
# loss between the two passes, the estimate
#
# $$ \hat g_W = \frac{1}{T B}\sum_b \delta L_b \sum_t \frac{\varepsilon_{t,b}}{\sigma^2}\,
#    z_{t,b}^\top, \qquad z = u_t \text{ for } W_{in},\; r_{t-1} \text{ for } W_{rec} $$
#
# has, for small σ, the exact gradient of L = mean_{t,b} ½‖o − y‖² as its expectation
# (Fiete & Seung 2006; the `signal = "trial"` form of bioplaus's NP). Averaging K noisy
# passes lowers its variance; we stack them in the batch. The readout's gradient
# (o − y) r_tᵀ is local already.
#
# `bp.simulate` takes the noise realisation ξ as an argument, which is all a rule needs.


# %%
def readout(params, x):
    return np.tanh(x) @ params["W_out"].T


def my_rule(spec, params, u, y, sigma, K=16, seed=0):
    """Whole-trial node perturbation (hidden weights) + delta rule (readout)."""
    T, B, _ = u.shape
    N, alpha = spec.n_rec, spec.dt / spec.tau
    uK, yK = np.tile(u, (1, K, 1)), np.tile(y, (1, K, 1))  # K noisy copies per trial
    xi = np.random.default_rng(seed).standard_normal((T, K * B, N))
    noisy = bp.RateSpec(**{**spec.model_dump(), "sigma": sigma})
    x_clean = bp.simulate(spec, u, params=params, noise=np.zeros((T, B, N)))
    x_noisy = bp.simulate(noisy, uK, params=params, noise=xi)

    def loss(x, yy):  # ℓ [T, batch]
        return 0.5 * ((readout(params, x) - yy) ** 2).sum(-1)

    dL = loss(x_noisy, yK).sum(0) - np.tile(loss(x_clean, y).sum(0), K)  # [K·B]
    eps = sigma * np.sqrt(alpha) * xi  # injected noise
    r_prev = np.tanh(np.concatenate([np.zeros((1, B, N)), x_clean[:-1]]))  # r_{t−1}, r_{−1}=φ(0)
    e = dL[None, :, None] * eps / sigma**2  # [T, K·B, N]
    g = {
        "W_in": np.einsum("tpn,tpi->ni", e, uK) / (T * B * K),
        "W_rec": np.einsum("tpn,tpm->nm", e, np.tile(r_prev, (1, K, 1))) / (T * B * K),
        "W_out": np.einsum("tbo,tbn->on", readout(params, x_clean) - y, np.tanh(x_clean)) / (T * B),
    }
    return g


# %% [markdown]
# ## Check it against the exact gradient
#
# A task for the check: a 16-unit network with α = 1 reproducing a 3-step-delayed copy of
# a smooth random input. We compare the estimate with BPTT's gradient by the cosine of the
# angle, per weight matrix, as K grows (more noisy passes, less variance).

# %%
spec = bp.RateSpec(n_in=1, n_rec=16, n_out=1, tau=0.01, dt=0.01, sigma=0.0)
params = bp.init_params(spec, seed=0)
rng = np.random.default_rng(1)


def batch(B, T=20):
    u = np.cumsum(rng.standard_normal((T, B, 1)), axis=0) * 0.3
    u = np.tanh(u)
    y = np.concatenate([np.zeros((3, B, 1)), u[:-3]])
    return u, y


u, y = batch(8)
exact = bp.estimate("bptt", spec, params, u, y)


def cos(a, b):
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


Ks = [1, 16, 128] if SMALL else [1, 4, 16, 64, 256, 1024]
table = {k: [] for k in ("W_in", "W_rec", "W_out")}
for K in Ks:
    g = my_rule(spec, params, u, y, sigma=1e-3, K=K, seed=K)
    for k in table:
        table[k].append(cos(g[k], exact[k]))
    print(f"K = {K:4d}: " + ", ".join(f"{k} {table[k][-1]:+.2f}" for k in table))
builtin = bp.estimate("np", spec, params, u, y, seed=0, sigma=1e-3, signal="trial", K=Ks[-1])
print(
    "built-in np (signal='trial'), K =",
    Ks[-1],
    ":",
    ", ".join(f"{k} {cos(builtin[k], exact[k]):+.2f}" for k in table),
)

# %% [markdown]
# ## Train with it
#
# The estimate is a gradient, so plain gradient descent (or any torch optimizer) applies it.
# We compare it with training by the exact gradient at the same learning rate.


# %%
def loss_of(params, u, y):
    x = bp.simulate(spec, u, params=params, noise=np.zeros(u.shape[:2] + (spec.n_rec,)))
    return float(np.mean(0.5 * ((readout(params, x) - y) ** 2).sum(-1)))


steps, lr = (5, 0.2) if SMALL else (150, 0.2)
u_test, y_test = batch(32)
curves = {}
for name in ("my rule (K = 16)", "BPTT"):
    p = {k: v.copy() for k, v in params.items()}
    curves[name] = [loss_of(p, u_test, y_test)]
    for step in range(steps):
        ub, yb = batch(8)
        if name == "BPTT":
            g = bp.estimate("bptt", spec, p, ub, yb)
        else:
            g = my_rule(spec, p, ub, yb, sigma=1e-3, K=16, seed=step)
        for k in g:
            p[k] -= lr * g[k]
        curves[name].append(loss_of(p, u_test, y_test))
    print(f"{name}: held-out loss {curves[name][0]:.4f} → {curves[name][-1]:.4f}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.5, 3.2))
for k, v in table.items():
    ax1.plot(Ks, v, "-o", ms=4, label=k)
ax1.set(
    xscale="log",
    xlabel="noisy passes K",
    ylabel="cos(estimate, exact gradient)",
    title="alignment with BPTT",
    ylim=(-0.1, 1.05),
)
ax1.legend(fontsize=8)
for name, c in curves.items():
    ax2.plot(c, label=name)
ax2.set(xlabel="update", ylabel="held-out loss", yscale="log", title="training")
ax2.legend(fontsize=8)
fig.tight_layout()
fig.savefig(IMG / "e_custom_rule.png", dpi=110)

# %% [markdown]
# ![custom rule](img/e_custom_rule.png)
#
# The readout's delta rule is exact (cosine 1); the hidden weights' node-perturbation
# estimate is noisy for one pass and lines up with the gradient as K grows — the variance
# that ANP's normalisation and decorrelation are designed to reduce
# ([Concepts](../concepts.md)).
#
# ## From here to a built-in rule
#
# Inside the library, a perturbation rule is pure tensor math with an `(init, accumulate,
# finalize)` contract (`bioplaus.rules.base.PerturbationRule`): the torch back-end runs the
# paired clean/noisy passes in one batch, and hands the rule one `StepRecord` per step
# (presynaptic activity, δx, the injected noise, δℓ_t). That keeps memory O(1) in the
# sequence length and lets every rule run on the GPU. The steps are in
# [Contributing](../contributing.md#add-a-learning-rule).
