"""Reproduce the multi-layer node-perturbation paper's findings on offline data.

    python analysis/reproduce_multilayer.py alignment    # synthetic task: angle with BP vs K, σ
    python analysis/reproduce_multilayer.py digits       # 8 rules x 3 seeds, 3 hidden layers
    python analysis/reproduce_multilayer.py sigma        # DNP / DANP on digits, σ = 1e-6 … 1e-1
    python analysis/reproduce_multilayer.py baseline     # DNP / DANP, clean vs noisy baseline
    python analysis/reproduce_multilayer.py resampling   # DANP / DINP (DNP) with K = 1 … 100
    python analysis/reproduce_multilayer.py lr           # the learning-rate search of the protocols
    python analysis/reproduce_multilayer.py report       # tables from the results above
    python analysis/reproduce_multilayer.py all

Everything runs on one CPU thread. Runs go to runs/multilayer/<experiment>/<name> (a complete
run is reused, so a second call only redraws); results (JSON), figures (PNG) and the tables
(summary.md) go to docs/figures/multilayer/. The paper (seeds/003…) used CIFAR-10 and Tiny
ImageNet; scikit-learn's digits and a synthetic teacher-student task stand in for them here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import bioplaus as bp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "protocols" / "multilayer"
RUNS = ROOT / "runs" / "multilayer"
OUT = ROOT / "docs" / "figures" / "multilayer"
RULES = ("bp", "dbp", "np", "dnp", "anp", "danp", "inp", "dinp")
COLORS = {"np": "C3", "anp": "C0", "inp": "C2", "bp": "k"}
SEEDS = (0, 1, 2)
#: K = 100 DINP costs 100 x (L + 1) passes per update; 300 updates keep it to minutes on one
#: CPU thread, and early learning is where the number of noisy passes matters
RESAMPLING_STEPS = 300


def _save(name: str, data) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=1))


def _load(name: str):
    p = OUT / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def train(protocol: str, out: Path, overrides: list[str]) -> pd.DataFrame:
    """bp.run a protocol (reusing a complete run directory) → its metrics table."""
    status = out / "status.json"
    if status.is_file() and json.loads(status.read_text())["status"] in ("completed", "diverged"):
        return pd.read_csv(out / "metrics.csv")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    t0 = time.time()
    res = bp.run(PROTO / protocol, out=out, overrides=overrides, progress=False)
    print(f"  {out.relative_to(ROOT)}: {res.status} in {time.time() - t0:.0f}s", flush=True)
    return res.metrics


def summarise(m: pd.DataFrame) -> dict:
    """Peak / final held-out accuracy, peak train accuracy, accuracy after 200 updates, and
    the mean angle with BP over training (when logged)."""
    out = {
        "peak_test": float(m["eval_accuracy"].max()),
        "final_test": float(m["eval_accuracy"].iloc[-1]),
        "peak_train": float(m["train_accuracy"].max()),
        "test_at_200": float(m.loc[m["step"] == 200, "eval_accuracy"].iloc[0])
        if (m["step"] == 200).any()
        else float("nan"),
        "steps": int(m["step"].iloc[-1]),
    }
    if "align_all" in m:
        out["mean_align_all"] = float(m["align_all"].iloc[1:].mean())
    return out


# -- alignment on the synthetic task -----------------------------------------------------------


def _decorrelate_in_place(spec, params, task, steps: int, lr: float, seed: int) -> dict:
    """Learn every D_l on clean activations while keeping the network's function fixed
    (W_l ← W⁰_l D_l⁻¹, so W_l D_l h = W⁰_l h): decorrelation as a pure reparametrisation."""
    from bioplaus.backends.torch.mlp import forward, mlp_consts, mlp_to_torch
    from bioplaus.rules.decorrelation import decorrelation_update, mean_offdiag_correlation

    L = spec.n_layers
    p = mlp_to_torch(params, L, dtype=torch.float64)
    c = mlp_consts(spec)
    W0 = [w.clone() for w in p.W]
    rng = np.random.default_rng(seed)
    before = after = None
    for it in range(steps + 1):
        x = torch.as_tensor(task.sample(200, rng).inputs[0])
        fp = forward(p, c, x)
        corr = [mean_offdiag_correlation(z) for z in fp.z]
        if it == 0:
            before = corr
        after = corr
        if it == steps:
            break
        D = [decorrelation_update(p.D[l], fp.z[l].T @ fp.z[l], x.shape[0], lr) for l in range(L)]
        W = [W0[l] @ torch.linalg.inv(D[l]) for l in range(L)]
        p = p._replace(W=W, D=D)
    new = dict(params)
    for l in range(L):
        new[f"W{l}"] = p.W[l].numpy()
        new[f"D{l}"] = p.D[l].numpy()
    return {"params": new, "corr_before": before, "corr_after": after}


def run_alignment(n_seeds: int = 10) -> None:
    torch.set_num_threads(1)
    from bioplaus.tasks import make_task

    task = make_task("synthetic", n_in=32, n_out=10, correlation=0.8, seed=0)
    spec = bp.load_model(ROOT / "models" / "mlp_synthetic.toml")
    spec_d = spec.model_copy(update={"decorrelate": True})
    p = bp.init_params(spec, seed=0)
    dec = _decorrelate_in_place(spec_d, bp.init_params(spec_d, seed=0), task, 400, 0.02, 1)
    batch = task.sample(100, np.random.default_rng(0), split="test")
    x, y = batch.inputs[0], batch.targets[0]
    layers = [f"layer{l}" for l in range(spec.n_layers)]
    res = {"K": {}, "sigma": {}, "corr_before": dec["corr_before"], "corr_after": dec["corr_after"]}
    Ks = (1, 3, 10, 30, 100)
    for rule in ("np", "anp", "inp"):
        for decor, (sp, pp) in (("plain", (spec, p)), ("decorrelated", (spec_d, dec["params"]))):
            for K in Ks:
                a = [
                    bp.analysis.alignment(rule, sp, pp, x, y, seed=s, K=K, dtype="float64")
                    for s in range(n_seeds)
                ]
                res["K"][f"{rule}|{decor}|{K}"] = {
                    k: float(np.mean([d[k] for d in a])) for k in [*layers, "all"]
                }
            print(
                f"  alignment {rule} {decor}: "
                + ", ".join(
                    f"K={K}: {np.mean([res['K'][f'{rule}|{decor}|{K}'][k] for k in layers]):.1f}°"
                    for K in Ks
                ),
                flush=True,
            )
    sigmas = [10.0**e for e in range(-7, 0)]
    for rule in ("np", "anp", "inp"):
        for dtype in ("float32", "float64"):
            for s in sigmas:
                a = [
                    bp.analysis.alignment(rule, spec, p, x, y, seed=k, K=10, sigma=s, dtype=dtype)
                    for k in range(5)
                ]
                res["sigma"][f"{rule}|{dtype}|{s:g}"] = float(
                    np.mean([[d[k] for k in layers] for d in a])
                )
    _save("alignment", res)
    plot_alignment()


def plot_alignment() -> None:
    res = _load("alignment")
    if res is None:
        return
    Ks = sorted({int(k.split("|")[2]) for k in res["K"]})
    layers = sorted({k for v in res["K"].values() for k in v if k.startswith("layer")})
    fig, axes = plt.subplots(
        1, len(layers) + 1, figsize=(3.2 * (len(layers) + 1), 3.2), sharey=True
    )
    for ax, key in zip(axes, [*layers, "mean"], strict=True):
        for rule in ("np", "anp", "inp"):
            for decor, ls in (("plain", "-"), ("decorrelated", "--")):
                vals = []
                for K in Ks:
                    d = res["K"][f"{rule}|{decor}|{K}"]
                    vals.append(np.mean([d[k] for k in layers]) if key == "mean" else d[key])
                ax.plot(
                    Ks,
                    vals,
                    ls,
                    color=COLORS[rule],
                    marker="o",
                    ms=3,
                    label=f"{'D' if decor == 'decorrelated' else ''}{rule.upper()}",
                )
        ax.set_xscale("log")
        ax.set_title(key if key != "mean" else "mean over layers")
        ax.set_xlabel("noise samples K")
    axes[0].set_ylabel("angle with BP (degrees)")
    axes[-1].legend(fontsize=7)
    fig.suptitle("Synthetic task, 32-64-64-64-10 leaky-ReLU MLP, batch 100, σ = 1e-3")
    fig.tight_layout()
    fig.savefig(OUT / "alignment_vs_K.png", dpi=120)
    plt.close(fig)
    sig = sorted({float(k.split("|")[2]) for k in res["sigma"]})
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for rule in ("np", "anp", "inp"):
        for dtype, ls in (("float32", "-"), ("float64", "--")):
            ax.plot(
                sig,
                [res["sigma"][f"{rule}|{dtype}|{s:g}"] for s in sig],
                ls,
                color=COLORS[rule],
                marker="o",
                ms=3,
                label=f"{rule.upper()} {dtype}",
            )
    ax.set_xscale("log")
    ax.set_xlabel("σ")
    ax.set_ylabel("mean per-layer angle with BP (°), K = 10")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "alignment_vs_sigma.png", dpi=120)
    plt.close(fig)


# -- digits ------------------------------------------------------------------------------------


def run_digits() -> None:
    res = {}
    curves = {}
    for name in RULES:
        for seed in SEEDS:
            m = train(f"digits_{name}.toml", RUNS / "digits" / f"{name}_s{seed}", [f"seed={seed}"])
            res[f"{name}|{seed}"] = summarise(m)
            curves[f"{name}|{seed}"] = m[["step", "eval_accuracy", "train_accuracy"]].to_dict(
                "list"
            )
    _save("digits", {"summary": res, "curves": curves})
    plot_curves("digits", [(n, n) for n in RULES], "digits: held-out accuracy (mean of 3 seeds)")


def plot_curves(exp: str, series: list[tuple[str, str]], title: str, key="eval_accuracy") -> None:
    data = _load(exp)
    if data is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (label, prefix) in enumerate(series):
        runs = [v for k, v in data["curves"].items() if k.rsplit("|", 1)[0] == prefix]
        if not runs:
            continue
        n = min(len(r["step"]) for r in runs)
        step = runs[0]["step"][:n]
        color = COLORS.get(prefix.split("|")[0].lstrip("d"), f"C{i}")
        ls = ":" if "own" in prefix else "--" if "noisy" in prefix or prefix[0] != "d" else "-"
        for ax, k in zip(axes, ("eval_accuracy", "train_accuracy"), strict=True):
            y = np.mean([r[k][:n] for r in runs], axis=0)
            ax.plot(step, y, ls, color=color, label=label.upper())
    for ax, k in zip(axes, ("held-out accuracy", "training-batch accuracy"), strict=True):
        ax.set_xscale("log")  # step 0 (chance) drops out; early learning is where rules differ
        ax.set_xlabel("updates")
        ax.set_ylabel(k)
        ax.set_ylim(0.5, 1.0)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(OUT / f"{exp}.png", dpi=120)
    plt.close(fig)


def run_sigma() -> None:
    res, curves = {}, {}
    for name, dtype in (("dnp", "float32"), ("danp", "float32"), ("danp", "float64")):
        for e in range(-6, 0):
            s = 10.0**e
            tag = f"{name}_{dtype}_sigma1e{e}"
            m = train(
                f"digits_{name}.toml",
                RUNS / "sigma" / tag,
                [f"rule.sigma={s}", f'train.dtype="{dtype}"', "train.steps=1000"],
            )
            res[f"{name}|{dtype}|{s:g}"] = summarise(m)
    _save("sigma", {"summary": res, "curves": curves})
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, dtype, ls in (
        ("dnp", "float32", "-"),
        ("danp", "float32", "-"),
        ("danp", "float64", "--"),
    ):
        sig = [10.0**e for e in range(-6, 0)]
        ax.plot(
            sig,
            [res[f"{name}|{dtype}|{s:g}"]["peak_test"] for s in sig],
            ls,
            marker="o",
            color=COLORS[name[1:]],
            label=f"{name.upper()} {dtype}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("σ")
    ax.set_ylabel("peak held-out accuracy, 1000 updates")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "sigma.png", dpi=120)
    plt.close(fig)


#: (rule, baseline label, overrides): "noisy-own" is NP that sees only its own pass's noise
BASELINES = (
    ("dnp", "clean", ['rule.baseline="clean"']),
    ("dnp", "noisy", ['rule.baseline="noisy"']),
    ("dnp", "noisy-own", ['rule.baseline="noisy"', 'rule.noise_access="own"']),
    ("danp", "clean", ['rule.baseline="clean"']),
    ("danp", "noisy", ['rule.baseline="noisy"']),
)


def run_baseline() -> None:
    res, curves = {}, {}
    for name, label, overrides in BASELINES:
        for seed in SEEDS:
            m = train(
                f"digits_{name}.toml",
                RUNS / "baseline" / f"{name}_{label}_s{seed}",
                [f"seed={seed}", *overrides],
            )
            res[f"{name}|{label}|{seed}"] = summarise(m)
            curves[f"{name}|{label}|{seed}"] = m[
                ["step", "eval_accuracy", "train_accuracy"]
            ].to_dict("list")
    _save("baseline", {"summary": res, "curves": curves})
    plot_curves(
        "baseline",
        [(f"{n} {b} baseline", f"{n}|{b}") for n, b, _ in BASELINES],
        "digits: clean vs noisy baseline (mean of 3 seeds)",
    )


def run_resampling() -> None:
    res, curves = {}, {}
    jobs = [(n, K) for n in ("danp", "dinp") for K in (1, 10, 30, 100)] + [("dnp", 100), ("dnp", 1)]
    for name, K in jobs:
        m = train(
            f"digits_{name}.toml",
            RUNS / "resampling" / f"{name}_K{K}_steps{RESAMPLING_STEPS}",
            [f"rule.K={K}", f"train.steps={RESAMPLING_STEPS}", "train.eval_every=50"],
        )
        res[f"{name}|{K}"] = summarise(m)
        curves[f"{name}|{K}"] = m[["step", "eval_accuracy", "train_accuracy"]].to_dict("list")
    _save("resampling", {"summary": res, "curves": curves})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name in ("danp", "dinp"):
        Ks = (1, 10, 30, 100)
        axes[0].plot(
            Ks,
            [res[f"{name}|{K}"]["mean_align_all"] for K in Ks],
            marker="o",
            color=COLORS[name[1:]],
            label=name.upper(),
        )
        axes[1].plot(
            Ks,
            [res[f"{name}|{K}"]["test_at_200"] for K in Ks],
            marker="o",
            color=COLORS[name[1:]],
            label=name.upper(),
        )
    axes[0].set_ylabel("angle with BP during training (°)")
    axes[1].set_ylabel("held-out accuracy after 200 updates")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("noisy passes per update K")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "resampling.png", dpi=120)
    plt.close(fig)


LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def run_lr() -> None:
    """The learning-rate search behind the protocols: every rule, Adam lr in LRS, 1000
    updates, seed 0 (the paper picked the highest stable rate per method)."""
    res = {}
    for name in RULES:
        for lr in LRS:
            m = train(
                f"digits_{name}.toml",
                RUNS / "lr" / f"{name}_lr{lr:g}",
                [f"train.lr={lr}", "train.steps=1000", "train.eval_every=250"],
            )
            res[f"{name}|{lr:g}"] = summarise(m) | {
                "diverged": bool(m["step"].iloc[-1] < 1000),
                "test_at_250": float(m.loc[m["step"] == 250, "eval_accuracy"].iloc[0])
                if (m["step"] == 250).any()
                else float("nan"),
            }
    _save("lr", res)


# -- tables ------------------------------------------------------------------------------------

PAPER_CIFAR = {  # peak test accuracy, CIFAR-10, 3 hidden layers x 1024 (paper, Appendix I)
    "bp": 51.5,
    "dbp": 54.3,
    "np": 28.1,
    "dnp": 42.1,
    "anp": 30.6,
    "danp": 44.4,
    "inp": 32.0,
    "dinp": 46.3,
}


def _ms(vals: list[float], scale: float = 100.0) -> str:
    v = np.asarray(vals) * scale
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def report() -> None:
    lines = [
        "# Multi-layer reproduction: measured tables",
        "",
        "Generated by `python analysis/reproduce_multilayer.py report`.",
        "",
    ]
    d = _load("digits")
    if d:
        s = d["summary"]
        lines += [
            "## Digits, 3 hidden layers (mean ± sd over seeds 0, 1, 2; accuracy in %)",
            "",
            "| rule | paper: CIFAR-10 peak test | peak test | final test | test after 200 "
            "updates | peak train | angle with BP (°) |",
            "|---|---|---|---|---|---|---|",
        ]
        for n in RULES:
            rows = [s[f"{n}|{k}"] for k in SEEDS if f"{n}|{k}" in s]
            ang = [r["mean_align_all"] for r in rows if "mean_align_all" in r]
            lines.append(
                f"| {n.upper()} | {PAPER_CIFAR[n]} | {_ms([r['peak_test'] for r in rows])} | "
                f"{_ms([r['final_test'] for r in rows])} | "
                f"{_ms([r['test_at_200'] for r in rows])} | "
                f"{_ms([r['peak_train'] for r in rows])} | {_ms(ang, 1.0) if ang else '—'} |"
            )
        lines.append("")
    a = _load("alignment")
    if a:
        layers = sorted({k for v in a["K"].values() for k in v if k.startswith("layer")})
        Ks = sorted({int(k.split("|")[2]) for k in a["K"]})
        lines += [
            "## Alignment with BP, synthetic task (mean per-layer angle, degrees)",
            "",
            "| rule | " + " | ".join(f"K={K}" for K in Ks) + " |",
            "|---|" + "---|" * len(Ks),
        ]
        for rule in ("np", "anp", "inp"):
            for decor in ("plain", "decorrelated"):
                vals = [np.mean([a["K"][f"{rule}|{decor}|{K}"][k] for k in layers]) for K in Ks]
                name = ("D" if decor == "decorrelated" else "") + rule.upper()
                lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
        lines += [
            "",
            "Mean |correlation| of each layer's input before / after learning D: "
            + ", ".join(
                f"{b:.3f} → {c:.3f}" for b, c in zip(a["corr_before"], a["corr_after"], strict=True)
            ),
            "",
        ]
        sig = sorted({float(k.split("|")[2]) for k in a["sigma"]})
        lines += [
            "## Alignment vs σ (K = 10, mean per-layer angle, degrees)",
            "",
            "| rule, dtype | " + " | ".join(f"{s:g}" for s in sig) + " |",
            "|---|" + "---|" * len(sig),
        ]
        for rule in ("np", "anp", "inp"):
            for dt in ("float32", "float64"):
                lines.append(
                    f"| {rule.upper()} {dt} | "
                    + " | ".join(f"{a['sigma'][f'{rule}|{dt}|{s:g}']:.1f}" for s in sig)
                    + " |"
                )
        lines.append("")
    sg = _load("sigma")
    if sg:
        s = sg["summary"]
        sig = sorted({float(k.split("|")[2]) for k in s})
        lines += [
            "## Digits vs σ (peak held-out accuracy %, 1000 updates, seed 0)",
            "",
            "| rule, dtype | " + " | ".join(f"{v:g}" for v in sig) + " |",
            "|---|" + "---|" * len(sig),
        ]
        for name, dt in (("dnp", "float32"), ("danp", "float32"), ("danp", "float64")):
            lines.append(
                f"| {name.upper()} {dt} | "
                + " | ".join(f"{100 * s[f'{name}|{dt}|{v:g}']['peak_test']:.1f}" for v in sig)
                + " |"
            )
        lines.append("")
    b = _load("baseline")
    if b:
        s = b["summary"]
        lines += [
            "## Clean vs noisy baseline, digits (mean ± sd over 3 seeds, %)",
            "",
            "| rule | baseline | peak test | final test | test after 200 updates | peak train |",
            "|---|---|---|---|---|---|",
        ]
        for n, bl, _ in BASELINES:
            if f"{n}|{bl}|0" in s:
                rows = [s[f"{n}|{bl}|{k}"] for k in SEEDS]
                lines.append(
                    f"| {n.upper()} | {bl} | {_ms([r['peak_test'] for r in rows])} | "
                    f"{_ms([r['final_test'] for r in rows])} | "
                    f"{_ms([r['test_at_200'] for r in rows])}"
                    f" | {_ms([r['peak_train'] for r in rows])} |"
                )
        lines.append("")
    lr = _load("lr")
    if lr:
        lines += [
            "## Learning-rate search, digits (held-out accuracy % after 250 / 1000 updates, "
            "seed 0; * = diverged)",
            "",
            "| rule | " + " | ".join(f"lr {v:g}" for v in LRS) + " |",
            "|---|" + "---|" * len(LRS),
        ]
        for n in RULES:
            cells = []
            for v in LRS:
                r_ = lr.get(f"{n}|{v:g}")
                if r_ is None:
                    cells.append("—")
                elif r_["diverged"]:
                    cells.append("*")
                else:
                    cells.append(f"{100 * r_['test_at_250']:.1f} / {100 * r_['final_test']:.1f}")
            lines.append(f"| {n.upper()} | " + " | ".join(cells) + " |")
        lines.append("")
    r = _load("resampling")
    if r:
        s = r["summary"]
        lines += [
            f"## Resampling K, digits ({RESAMPLING_STEPS} updates, seed 0)",
            "",
            "| rule | K | peak test % | test after 200 updates % | peak train % | "
            "angle with BP during training (°) |",
            "|---|---|---|---|---|---|",
        ]
        for key, v in s.items():
            n, K = key.split("|")
            lines.append(
                f"| {n.upper()} | {K} | {100 * v['peak_test']:.1f} | "
                f"{100 * v['test_at_200']:.1f} | "
                f"{100 * v['peak_train']:.1f} | {v.get('mean_align_all', float('nan')):.1f} |"
            )
        lines.append("")
    (OUT / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "experiment",
        choices=["alignment", "digits", "sigma", "baseline", "resampling", "lr", "report", "all"],
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    todo = {
        "alignment": run_alignment,
        "digits": run_digits,
        "sigma": run_sigma,
        "baseline": run_baseline,
        "resampling": run_resampling,
        "lr": run_lr,
    }
    names = list(todo) if args.experiment == "all" else [args.experiment]
    for n in names:
        if n in todo:
            t0 = time.time()
            print(f"== {n}", flush=True)
            todo[n]()
            print(f"== {n} done in {time.time() - t0:.0f}s", flush=True)
    report()


if __name__ == "__main__":
    main()
