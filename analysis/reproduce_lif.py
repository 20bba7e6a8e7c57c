"""Spiking LIF networks × {DANP, NP, online three-factor, surrogate BPTT} on three tasks.

    python analysis/reproduce_lif.py                     # all 12 protocols in protocols/lif
    python analysis/reproduce_lif.py --tasks pattern --workers 2
    python analysis/reproduce_lif.py --plot-only         # figures/tables from existing runs
    python analysis/reproduce_lif.py --delta-study       # ANP's δ: v or drive (lif_delta.md)

Runs go to runs/lif/<task>_<rule> (a complete run is reused, an interrupted one resumed);
figures to docs/figures/lif_<task>.png (held-out loss and headline metric against trials
seen, the same budget for every rule); tables to docs/figures/lif_summary.md: final
held-out loss and metric, and firing-rate statistics of the network before (initial
weights) and after learning on 64 held-out trials (mean and median rate over neurons,
fraction of silent neurons, CV of the inter-spike intervals, Fano factor of the counts).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ROOT / "protocols" / "lif"
TASKS = ("pattern", "delayed_match", "copy_rate")
RULES = {
    "danp": "DANP",
    "np": "NP",
    "three_factor": "online three-factor",
    "bptt": "surrogate BPTT",
}
COLORS = {"danp": "C0", "np": "C1", "three_factor": "C3", "bptt": "C2"}
METRIC = {"pattern": "eval_r2", "delayed_match": "eval_accuracy", "copy_rate": "eval_accuracy"}


def _train(args: tuple[str, str, list[str]]) -> str:
    import bioplaus as bp

    proto, out, overrides = args
    done, res = bp.ensure_run(proto, out, overrides)
    return f"{out}: {done}" + ("" if res is None else f", {res.status}")


def firing_stats(run: Path, params: dict[str, np.ndarray]) -> dict[str, float]:
    """Rates of the unperturbed network (fixed background noise) on 64 held-out trials."""
    import bioplaus as bp
    from bioplaus.protocol import protocol_from_dict
    from bioplaus.runs import build_task

    cfg = json.loads((run / "config.json").read_text())["protocol"]
    spec = protocol_from_dict(cfg)
    task = build_task(spec)
    b = task.sample(64, np.random.default_rng(0), split="test")
    _, s = bp.simulate(spec.model, b.inputs, params, seed=0, spikes=True)
    T, B, N = s.shape
    dt = spec.model.dt
    rate = s.mean((0, 1)) / dt  # per neuron, Hz
    counts = s.sum(0)  # [B, N]
    cvs = []
    for n in range(N):
        for bb in range(0, B, 8):
            t = np.nonzero(s[:, bb, n])[0]
            if t.size > 3:
                isi = np.diff(t)
                cvs.append(isi.std() / isi.mean())
    m = counts.mean(0)
    fano = np.nanmean(np.where(m > 0, counts.var(0) / np.maximum(m, 1e-12), np.nan))
    return {
        "mean Hz": round(float(rate.mean()), 1),
        "median Hz": round(float(np.median(rate)), 1),
        "max Hz": round(float(rate.max()), 1),
        "silent %": round(100 * float((rate < 0.5).mean()), 1),
        "CV ISI": round(float(np.mean(cvs)), 2) if cvs else float("nan"),
        "Fano": round(float(fano), 2),
    }


def summarise(task: str, runs: Path, figures: Path) -> tuple[list[dict], list[dict]]:
    rows, rate_rows = [], []
    metric = METRIC[task]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    before_done = False
    for rule, label in RULES.items():
        run = runs / f"{task}_{rule}"
        if not (run / "metrics.csv").is_file():
            continue
        df = pd.read_csv(run / "metrics.csv")
        cfg = json.loads((run / "config.json").read_text())["protocol"]
        batch = cfg["train"]["batch_size"]
        status = json.loads((run / "status.json").read_text())["status"]
        x = df["step"] * batch
        axes[0].plot(x, df["eval_loss"], color=COLORS[rule], label=f"{label} ({status})")
        axes[1].plot(x, df[metric], color=COLORS[rule], label=label)
        tail = df["eval_loss"].iloc[-3:]
        rows.append({
            "task": task, "rule": label, "status": status, "trials": int(x.iloc[-1]),
            "initial loss": round(float(df["eval_loss"].iloc[0]), 4),
            "final loss": round(float(df["eval_loss"].iloc[-1]), 4),
            "mean of last 3 evals": round(float(tail.mean()), 4),
            "best loss": round(float(df["eval_loss"].min()), 4),
            metric.removeprefix("eval_"): round(float(df[metric].iloc[-1]), 3),
            "wall s": round(float(df["wall_time"].iloc[-1]), 0),
        })  # fmt: skip
        if (run / "params_final.npz").is_file():
            import bioplaus as bp
            from bioplaus.protocol import protocol_from_dict
            from bioplaus.random import child_seed

            if not before_done:
                spec = protocol_from_dict(cfg)
                p0 = bp.init_params(spec.model, seed=child_seed(spec.seed, "init_params"))
                rate_rows.append({"task": task, "network": "before learning",
                                  **firing_stats(run, p0)})  # fmt: skip
                before_done = True
            with np.load(run / "params_final.npz") as z:
                p1 = {k: z[k] for k in z.files}
            rate_rows.append({"task": task, "network": f"after {label}", **firing_stats(run, p1)})
    axes[0].set_yscale("log")
    axes[0].set_ylabel("held-out loss")
    axes[1].set_ylabel(f"held-out {metric.removeprefix('eval_')}")
    for ax in axes:
        ax.set_xlabel("trials")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"LIF network, {task}: equal trial budget")
    fig.tight_layout()
    figures.mkdir(parents=True, exist_ok=True)
    fig.savefig(figures / f"lif_{task}.png", dpi=110)
    plt.close(fig)
    return rows, rate_rows


def delta_study(figures: Path, K_ref: int = 1024, repeats: int = 16) -> str:
    """Which δ should ANP use on a LIF network? Alignment of single-pass estimates with a
    reference, at the initial weights of the pattern protocol (16 held-out trials).

    Reference: NP with K_ref resamples (time-local credit, unbiased for the same one-step
    objective as every variant here); its reliability is the cosine between two
    independent halves. For each variant, the mean cosine of ``repeats`` single (K = 1)
    estimates with the reference, and the cosine of their average (its bias), per layer.
    """
    import torch

    from bioplaus.backends.torch.lif import consts_of, to_torch
    from bioplaus.backends.torch.lif.bptt import lif_bptt_estimate
    from bioplaus.backends.torch.lif.perturb import lif_perturbation_estimate
    from bioplaus.params import init_params
    from bioplaus.protocol import load_protocol
    from bioplaus.rules import NodePerturbation
    from bioplaus.runs import build_task

    torch.set_num_threads(1)
    spec = load_protocol(PROTOCOLS / "pattern_danp.toml")
    task = build_task(spec)
    b = task.sample(16, np.random.default_rng(0), split="test")
    u, y, m = (torch.as_tensor(x, dtype=torch.float64) for x in b)
    p = to_torch(init_params(spec.model, seed=0), dtype=torch.float64)
    c = consts_of(spec.model)

    def est(kind: str, delta: str, norm: str, K: int, seed: int) -> dict:
        r = lif_perturbation_estimate(
            p, c, NodePerturbation(kind, norm=norm), u, y, m, "mse",
            torch.Generator().manual_seed(seed), K=K, delta=delta,
        )  # fmt: skip
        return r.grads

    def layers(g: dict) -> dict[str, torch.Tensor]:
        return {
            "hidden": torch.cat([g["W_in"].flatten(), g["W_rec"].flatten()]),
            "readout": g["W_out"].flatten(),
        }

    def cos(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a * b).sum() / (a.norm() * b.norm()))

    h1 = layers(est("np", "drive", "joint", K_ref // 2, 1000))
    h2 = layers(est("np", "drive", "joint", K_ref // 2, 2000))
    ref = {k: (h1[k] + h2[k]) / 2 for k in h1}
    rows = [{"estimate": f"reference NP K={K_ref}: split-half cosine",
             **{f"{k} cos(single)": round(cos(h1[k], h2[k]), 3) for k in ref}}]  # fmt: skip
    sg = layers(lif_bptt_estimate(p, c, u, y, m, "mse",
                                  generator=torch.Generator().manual_seed(0)).grads)  # fmt: skip
    rows.append({"estimate": "surrogate BPTT (one noise realisation)",
                 **{f"{k} cos(single)": round(cos(sg[k], ref[k]), 3) for k in ref}})  # fmt: skip
    variants = [("np", "drive", "joint", "NP (η/σ²)"),
                ("anp", "drive", "joint", "ANP δ = drive J, joint norm"),
                ("anp", "drive", "layer", "ANP δ = drive J, per-layer norm"),
                ("anp", "v", "joint", "ANP δ = membrane v, joint norm"),
                ("anp", "v", "layer", "ANP δ = membrane v, per-layer norm"),
                ("anp", "spike", "layer",
                 "ANP δ = spikes s, per-layer norm (DANP default)")]  # fmt: skip
    for kind, delta, norm, label in variants:
        singles = [layers(est(kind, delta, norm, 1, s)) for s in range(repeats)]
        row: dict[str, object] = {"estimate": label}
        for k in ref:
            row[f"{k} cos(single)"] = round(float(np.mean([cos(g[k], ref[k]) for g in singles])), 3)
            mean = torch.stack([g[k] for g in singles]).mean(0)
            row[f"{k} cos(mean of {repeats})"] = round(cos(mean, ref[k]), 3)
            if k == "hidden":
                row["hidden cos(mean) with surrogate BPTT"] = round(cos(mean, sg[k]), 3)
        rows.append(row)
    text = pd.DataFrame(rows).to_markdown(index=False)
    figures.mkdir(parents=True, exist_ok=True)
    (figures / "lif_delta.md").write_text(text + "\n")
    return text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "lif"))
    ap.add_argument("--figures", default=str(ROOT / "docs" / "figures"))
    ap.add_argument("--workers", type=int, default=1, help="parallel runs (1 thread each)")
    ap.add_argument("--set", action="append", default=[], help="override for every protocol")
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--delta-study", action="store_true", help="only the ANP δ comparison")
    a = ap.parse_args(argv)
    runs, figures = Path(a.runs), Path(a.figures)
    if a.delta_study:
        print(delta_study(figures))
        return
    if not a.plot_only:
        jobs = [
            (str(PROTOCOLS / f"{t}_{r}.toml"), str(runs / f"{t}_{r}"), a.set)
            for t in a.tasks
            for r in a.rules
        ]
        if a.workers > 1:
            with ProcessPoolExecutor(a.workers) as ex:
                for msg in ex.map(_train, jobs):
                    print(msg, flush=True)
        else:
            for job in jobs:
                print(_train(job), flush=True)
    rows, rate_rows = [], []
    for t in a.tasks:
        r, rr = summarise(t, runs, figures)
        rows += r
        rate_rows += rr
    text = "## Final held-out losses\n\n" + pd.DataFrame(rows).to_markdown(index=False)
    text += "\n\n## Firing rates (64 held-out trials)\n\n"
    text += pd.DataFrame(rate_rows).to_markdown(index=False) + "\n"
    (figures / "lif_summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
