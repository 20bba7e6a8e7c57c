"""Why ANP/DANP diverge on the full-size copy task at the paper-equivalent rate: the readout.

The RNN seed paper's ANP (``protocols/rnn_paper/full/copy_anp.toml``: ``norm = "layer"``,
``scale = √(n_in + H + n_out) = √520``) normalises each layer by its own ‖δa_l‖²:

    e_l = c δℓ δa_l / ‖δa_l‖²,   E[e_l] ≈ c g_l / n_l  (δa_l ≈ isotropic, ‖δa_l‖² ≈ n_l σ²)

so the step of layer l relative to its gradient is ρ_l ≈ c / n_l: √520/500 = 0.046 for the
hidden layer (W_in, W_rec) and √520/10 = 2.28 for the readout — 50× (H / n_out) larger.
The readout is linear in its input r̂_t, so at fixed hidden states L(W_out) is quadratic,

    L = (1/TB) Σ_{t,b} ½‖W_out r̂_{t,b} − y_{t,b}‖²,   ∇²_{W_out} L = (1/TB) Σ r̂ r̂ᵀ ⊗ I =: H_out

and (stochastic) gradient descent on W_out with the effective rate lr·ρ_out diverges when
lr·ρ_out·λ_max(H_out) > 2, whatever the hidden layer does.

This script measures, at the protocol's initial weights and its one training sequence
(seeds 0, 1, 2):
  * ρ_l = ⟨Ĝ_l, g_l⟩ / ‖g_l‖² with Ĝ_l the ANP estimate averaged over K noise draws and g_l
    the exact gradient (full BPTT; TBPTT(1), which the time-local signal targets, is also
    printed for the hidden weights), for the paper's scale and for ``scale = "n"``;
  * λ_max(H_out) and the stability number s = lr·ρ_out·λ_max (divergence predicted for s > 2).

    python analysis/rnn_readout_step.py [--seeds 0 1 2] [--K 64] [--protocol FILE]

and, with ``--train``, trains the full copy protocol (ANP and DANP) at the paper's scale and
with ``rule.scale = "n"`` (every layer's step in gradient scale, ρ_l ≈ 1 against TBPTT(1)) at
lr = 0.042·√520/500 = 0.0019154 (the paper's hidden-layer step; the readout's step is then
about 50× smaller than the paper's) and at ten times that:

    python analysis/rnn_readout_step.py --train [--seeds 0 1 2] [--steps 500]

``--trace N`` prints, for the first N updates of the protocol as is, the training loss and the
size of each layer's step ‖ΔW‖ / ‖W‖ (which layer runs away first):

    python analysis/rnn_readout_step.py --trace 12 [--seeds 0 1 2]

Runs land in ``runs/rnn_readout_step/<variant>/seed<s>/``. One torch thread; the
measurement takes about 1 minute per seed, a training run 0.5–1 minute.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import bioplaus as bp
from bioplaus.params import init_params
from bioplaus.protocol import load_protocol
from bioplaus.random import child_seed, numpy_rng
from bioplaus.runs import build_task, read_metrics

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "protocols" / "rnn_paper" / "full"
PROTOCOL = FULL / "copy_anp.toml"
OUT = ROOT / "runs" / "rnn_readout_step"
LR_HID = 0.042 * 520**0.5 / 500  # scale "n" at the paper's hidden-layer step: 0.0019154
#: variant → (protocol, overrides)
TRAIN = {
    "anp_paper_lr0.042": ("copy_anp.toml", []),
    "anp_n_lr0.0019": ("copy_anp.toml", ["rule.scale=n", f"train.lr={LR_HID:.5g}"]),
    "anp_n_lr0.019": ("copy_anp.toml", ["rule.scale=n", f"train.lr={10 * LR_HID:.4g}"]),
    "danp_paper_lr0.042": ("copy_danp.toml", []),
    "danp_n_lr0.0019": ("copy_danp.toml", ["rule.scale=n", f"train.lr={LR_HID:.5g}"]),
    "danp_n_lr0.019": ("copy_danp.toml", ["rule.scale=n", f"train.lr={10 * LR_HID:.4g}"]),
}


def project(G: np.ndarray, g: np.ndarray) -> float:
    """ρ = ⟨G, g⟩ / ‖g‖²: the step along the gradient per unit of gradient."""
    return float((G * g).sum() / (g * g).sum())


def cosine(G: np.ndarray, g: np.ndarray) -> float:
    return float((G * g).sum() / np.sqrt((G * G).sum() * (g * g).sum()))


def readout_curvature(spec, params: dict, inputs: np.ndarray) -> tuple[float, float, float]:
    """λ_max of H_out = (1/TB) Σ_{t,b} r̂ r̂ᵀ (the readout inputs of the clean pass), and the
    largest |eigenvalue| of offdiag(H_out), the matrix the decorrelation step multiplies D by
    (D ← (I − η_D offdiag⟨r̂ r̂ᵀ⟩) D, stable while η_D times it stays below 2), and
    max_t ‖r̂_t‖², the curvature of one step's loss along W_out (what an online, per-step
    update faces)."""
    T, B, _ = inputs.shape
    x = bp.simulate(spec, inputs, params, noise=np.zeros((T, B, spec.n_rec)), dtype="float64")
    if spec.nonlinearity != "tanh":
        raise ValueError("this check is written for the paper's tanh network")
    r = np.tanh(np.asarray(x)).reshape(-1, spec.n_rec)  # [T·B, H]
    if "D_rec" in params:
        r = r @ np.asarray(params["D_rec"]).T
    C = r.T @ r / len(r)
    off = C - np.diag(np.diag(C))
    lam_d = float(np.abs(np.linalg.eigvalsh(off)).max())
    return float(np.linalg.eigvalsh(C)[-1]), lam_d, float((r * r).sum(-1).max())


def train(seeds: list[int], steps: int, variants: list[str]) -> None:
    """Train each variant on each seed (bp.run; a finished run is reused) and print the
    final and best training-sequence error bits, or the update at which it diverged."""
    import json

    print("| variant | overrides | seed | status | final error bits | best | updates |")
    print("|---|---|---|---|---|---|---|")
    for v in variants:
        proto, over = TRAIN[v]
        for seed in seeds:
            out = OUT / v / f"seed{seed}"
            status = out / "status.json"
            if not (status.is_file() and json.loads(status.read_text())["status"] in (
                "completed", "diverged",
            )):  # fmt: skip
                if out.exists():
                    import shutil

                    shutil.rmtree(out)
                bp.run(
                    FULL / proto, out=out, progress=False,
                    overrides=[f"seed={seed}", f"train.steps={steps}", *over],
                )  # fmt: skip
            st = json.loads(status.read_text())
            m = read_metrics(out)
            fin = m["train_error_bits"].dropna()  # the training sequence, as the paper scores
            print(
                f"| {v} | `{' '.join(over) or '(protocol)'}` | {seed} | {st['status']} | "
                f"{fin.iloc[-1]:.0f} | {fin.min():.0f} | {int(m['step'].iloc[-1])} |",
                flush=True,
            )


def trace(protocol: Path, seeds: list[int], steps: int) -> None:
    """Loss and relative step size per layer over the first ``steps`` updates."""
    from bioplaus.train.trainer import DivergedError, Trainer

    for seed in seeds:
        proto = load_protocol(protocol, [f"seed={seed}"])
        task = build_task(proto)
        t = Trainer(proto, task, init_params(proto.model, seed=child_seed(seed, "init_params")))
        print(f"seed {seed}: update, loss, ‖ΔW‖/‖W‖ for W_in, W_rec, W_out")
        for _ in range(steps):
            before = {k: v.detach().clone() for k, v in t.weights.items()}
            try:
                info = t.step()
            except DivergedError as exc:
                print(f"  diverged: {exc}")
                break
            rel = {
                k: float((t.weights[k].detach() - w).norm() / w.norm().clamp_min(1e-30))
                for k, w in before.items()
            }
            print(
                f"  {info.step:3d}  loss {info.loss:10.4g}  W_in {rel['W_in']:.3g}  "
                f"W_rec {rel['W_rec']:.3g}  W_out {rel['W_out']:.3g}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--K", type=int, default=64, help="noise draws averaged per estimate")
    ap.add_argument("--protocol", type=Path, default=PROTOCOL)
    ap.add_argument("--train", action="store_true", help="train the variants instead")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--variants", nargs="+", default=list(TRAIN), choices=list(TRAIN))
    ap.add_argument("--trace", type=int, default=0, metavar="N")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.trace:
        trace(args.protocol, args.seeds, args.trace)
        return
    if args.train:
        train(args.seeds, args.steps, args.variants)
        return
    rows = []
    for seed in args.seeds:
        proto = load_protocol(args.protocol, [f"seed={seed}"])
        spec, rule, lr = proto.model, proto.rule, proto.train.lr
        task = build_task(proto)
        params = init_params(spec, seed=child_seed(seed, "init_params"))
        batch = task.sample(proto.train.batch_size, numpy_rng(seed, "task", "train"))
        u, y, m = batch.inputs, batch.targets, batch.mask
        g = bp.estimate("bptt", spec, params, u, y, mask=m, dtype="float64")
        g1 = bp.estimate("tbptt", spec, params, u, y, mask=m, dtype="float64", k=1)
        lam, lam_d, r2max = readout_curvature(spec, params, u)
        T_sc = u.shape[0] if m is None else float(np.asarray(m).sum()) / u.shape[1]
        print(
            f"seed {seed}: λ_max(H_out) {lam:.3g}; max|eig offdiag(H_out)| {lam_d:.3g}, "
            f"times lr_decor {proto.train.lr_decor:g}: {lam_d * proto.train.lr_decor:.3g}",
            flush=True,
        )
        for scale in (rule.scale, "n"):
            G = bp.estimate(
                "anp", spec, params, u, y, mask=m, seed=seed, dtype="float64",
                sigma=rule.sigma, scale=scale, norm=rule.norm, K=args.K,
            )  # fmt: skip
            r = {k: project(G[k], g[k]) for k in ("W_in", "W_rec", "W_out")}
            r1 = {k: project(G[k], g1[k]) for k in ("W_in", "W_rec")}
            cos = {k: cosine(G[k], g[k]) for k in ("W_in", "W_rec", "W_out")}
            s = lr * r["W_out"] * lam
            print(
                f"seed {seed} scale {scale}: online per-step equivalent (lr / T_scored = "
                f"{lr / T_sc:.3g}) · ρ_out · max_t‖r̂_t‖² ({r2max:.3g}) = "
                f"{lr / T_sc * r['W_out'] * r2max:.3g}",
                flush=True,
            )
            rows.append((seed, scale, r, r1, cos, lam, s))
            print(
                f"seed {seed} scale {scale}: ρ W_in {r['W_in']:.4f} W_rec {r['W_rec']:.4f} "
                f"W_out {r['W_out']:.3f} (TBPTT(1): W_in {r1['W_in']:.4f} W_rec "
                f"{r1['W_rec']:.4f}); cos W_in {cos['W_in']:.2f} W_rec {cos['W_rec']:.2f} "
                f"W_out {cos['W_out']:.2f}; ρ_out/ρ_rec {r['W_out'] / r['W_rec']:.0f}; "
                f"λ_max(H_out) {lam:.2f}; lr·ρ_out·λ_max at lr {lr:g}: {s:.2f}",
                flush=True,
            )
    print(
        "\n(ρ against full BPTT; ρ₁ against TBPTT(1), the gradient the time-local signal "
        "targets; the readout's gradient is the same for both)\n"
        "| seed | ANP scale | ρ W_in | ρ W_rec | ρ₁ W_rec | ρ W_out | ρ_out/ρ_rec | ρ_out/ρ₁_rec "
        f"| λ_max(H_out) | lr·ρ_out·λ_max (lr {lr:g}) |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for seed, scale, r, r1, _cos, lam, s in rows:
        sc = f"{scale:.4g}" if not isinstance(scale, str) else scale
        print(
            f"| {seed} | {sc} | {r['W_in']:.4f} | {r['W_rec']:.4f} | {r1['W_rec']:.4f} | "
            f"{r['W_out']:.3f} | {r['W_out'] / r['W_rec']:.0f} | "
            f"{r['W_out'] / r1['W_rec']:.0f} | {lam:.2f} | {s:.2f} |"
        )


if __name__ == "__main__":
    main()
