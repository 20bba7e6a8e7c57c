"""Which training-only difference between bioplaus and the authors' TensorFlow code
(DANP_open_source, ``shared/research/algorithms.md`` §2 R2) moves DBP on digits?

Single updates agree with the authors' code; what differs is only how training is driven:

  init   bioplaus W ~ N(0, 2/fan_in);  the authors' Keras ``HeNormal``: a normal truncated at
         ±2 std, rescaled by 1/0.87962566103423978 so the variance is still 2/fan_in
  redraw a control for init: the same tail entries redrawn, but from the plain normal (a
         different draw of bioplaus's own distribution), to separate shape from re-drawing
  eps    torch Adam ε = 1e-8;  Keras Adam ε = 1e-7 (variant "eps": torch's Adam with ε = 1e-7;
         variant "kadam": Keras' own update, which adds ε to √v before the bias correction,
         θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + ε), i.e. torch's form with ε/√(1−β₂ᵗ))
  perm   bioplaus draws every batch of 100 independently from the 1300 training images;
         the authors' ``tf.data`` pipeline (``shuffle(10000, reshuffle_each_iteration=True)
         .batch(B)``) walks a fresh permutation each epoch (13 batches of 100 here)

Each variant runs ``protocols/multilayer/digits_dbp.toml`` (2000 Adam updates, lr 3e-3,
batch 100) through ``bp.run`` with that difference switched to the authors' choice by a
monkeypatch in this process (nothing in bioplaus is changed), 5 seeds each, one thread.
Seeds are paired: the same seed gives the same initial draws, task split and batches
wherever the variant does not change them.

    python analysis/multilayer_training_differences.py [--seeds 0 1 2 3 4] [--variants ...]
    python analysis/multilayer_training_differences.py --table --seeds 0 1 2 3 4 5 6 7 8 9
    python analysis/multilayer_training_differences.py --saturation --variants bioplaus clip

Runs land in ``runs/multilayer_training_differences/<variant>/seed<s>/``; the table
(peak / final / after-200 held-out accuracy, mean ± sd over seeds, and the paired mean
difference to bioplaus's default) is printed and written to
``runs/multilayer_training_differences/table.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch

import bioplaus as bp
import bioplaus.backends.torch.mlp as bp_torch_mlp
import bioplaus.mlp as bp_mlp
import bioplaus.train.trainer as bp_trainer

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols" / "multilayer" / "digits_dbp.toml"
OUT = ROOT / "runs" / "multilayer_training_differences"
KERAS_TRUNC = 0.87962566103423978  # std of N(0, 1) truncated at ±2 (Keras VarianceScaling)
VARIANTS = {
    "bioplaus": (),
    "init": ("init",),
    "redraw": ("redraw",),
    "eps": ("eps",),
    "perm": ("perm",),
    "all": ("init", "eps", "perm"),
    "kadam": ("kadam",),
    "clip": ("clip",),
    "all+clip": ("init", "eps", "perm", "clip"),
}


def truncated_he_normal(spec, seed: int = 0) -> dict[str, np.ndarray]:
    """Keras ``HeNormal``: W = s/0.8796 · z with z ~ N(0, 1) redrawn until |z| ≤ 2 and
    s = √(2/fan_in), so Var W = 2/fan_in as for bioplaus's plain normal. Draws come from the
    same generator as :func:`bioplaus.mlp.init_mlp_params` (entries with |z| ≤ 2 keep their
    value; only the tails are redrawn)."""
    p = _plain_init(spec, seed)
    rng = np.random.default_rng([seed, 7919])  # the redraws: a separate, seeded stream
    for l in range(spec.n_layers):
        W = p[f"W{l}"]
        s = np.sqrt(2.0 / W.shape[1])
        z = W / s
        bad = np.abs(z) > 2.0
        while bad.any():
            z[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(z) > 2.0
        p[f"W{l}"] = z * (s / KERAS_TRUNC)
    return p


def redrawn_normal(spec, seed: int = 0) -> dict[str, np.ndarray]:
    """Control for ``init``: bioplaus's plain normal, with the entries that
    :func:`truncated_he_normal` redraws (|z| > 2) redrawn from the same stream but *not*
    truncated or rescaled — a different initial draw of the same distribution."""
    p = _plain_init(spec, seed)
    rng = np.random.default_rng([seed, 7919])
    for l in range(spec.n_layers):
        W = p[f"W{l}"]
        s = np.sqrt(2.0 / W.shape[1])
        z = W / s
        bad = np.abs(z) > 2.0
        z[bad] = rng.standard_normal(int(bad.sum()))
        p[f"W{l}"] = z * s
    return p


_plain_init = bp_mlp.init_mlp_params
_plain_trainer_init = bp_trainer.Trainer.__init__
_plain_step_loss = bp_torch_mlp.step_loss


def keras_clipped_loss(kind: str, o: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Keras ``categorical_crossentropy(y, softmax(o), from_logits=False)`` in eager mode:
    p = softmax(o) / Σ softmax(o), clipped to [ε, 1 − ε] with ε = 1e-7, ℓ = −Σ_k y_k log p_k
    (zero gradient where p is clipped). Other losses are bioplaus's."""
    if kind != "ce":
        return _plain_step_loss(kind, o, y)
    p = torch.softmax(o, dim=-1)
    p = p / p.sum(-1, keepdim=True)
    eps = 1e-7
    return -(y * torch.log(p.clamp(eps, 1.0 - eps))).sum(-1)


class EpochPermutation:
    """A task proxy whose training batches walk a fresh permutation of the training split
    each epoch (tf.data ``shuffle(buffer ≥ n).batch(B)``); every other call is the task's."""

    def __init__(self, task, rng: np.random.Generator) -> None:
        self._task, self._rng = task, rng
        self._order: np.ndarray = np.empty(0, dtype=np.int64)
        self._pos = 0

    def __getattr__(self, name):
        return getattr(self._task, name)

    def sample(self, batch_size: int, rng, split: str = "train"):
        if split != "train":
            return self._task.sample(batch_size, rng, split)
        X, lab = self._task.data("train")
        if self._pos + batch_size > len(self._order):  # tf.data keeps the short last batch;
            self._order = self._rng.permutation(len(X))  # 1300 = 13 × 100 has none
            self._pos = 0
        idx = self._order[self._pos : self._pos + batch_size]
        self._pos += batch_size
        from bioplaus.tasks.base import Batch
        from bioplaus.tasks.digits import one_hot

        return Batch(X[idx][None], one_hot(lab[idx], 10)[None], None)


class KerasAdam(torch.optim.Optimizer):
    """Keras' Adam (``keras.optimizers.Adam`` defaults β₁ = 0.9, β₂ = 0.999, ε = 1e-7)::

    m ← m + (1−β₁)(g − m),  v ← v + (1−β₂)(g² − v)
    θ ← θ − η √(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√v + ε)
    """

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-7) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"] = 0
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                st["t"] += 1
                t, m, v, g = st["t"], st["m"], st["v"], p.grad
                m.add_((g - m) * (1 - b1))
                v.add_((g * g - v) * (1 - b2))
                alpha = group["lr"] * (1 - b2**t) ** 0.5 / (1 - b1**t)
                p.sub_(alpha * m / (v.sqrt() + group["eps"]))
        return None


@contextlib.contextmanager
def authors_choices(which: tuple[str, ...]):
    """Switch the named differences to the authors' choice for the runs inside."""

    def trainer_init(self, protocol, task, params):
        _plain_trainer_init(self, protocol, task, params)
        if "eps" in which:
            self.opt = torch.optim.Adam(self.weights.values(), lr=protocol.train.lr, eps=1e-7)
        if "kadam" in which:
            self.opt = KerasAdam(self.weights.values(), lr=protocol.train.lr)
        if "perm" in which:
            self.task = EpochPermutation(task, self.rng_task)

    try:
        if "init" in which:
            bp_mlp.init_mlp_params = truncated_he_normal
        if "redraw" in which:
            bp_mlp.init_mlp_params = redrawn_normal
        if "clip" in which:  # the training estimate only (evaluation keeps bioplaus's loss)
            bp_torch_mlp.step_loss = keras_clipped_loss
        bp_trainer.Trainer.__init__ = trainer_init
        yield
    finally:
        bp_mlp.init_mlp_params = _plain_init
        bp_torch_mlp.step_loss = _plain_step_loss
        bp_trainer.Trainer.__init__ = _plain_trainer_init


def summarise(m) -> dict[str, float]:
    return {
        "peak": 100 * float(m["eval_accuracy"].max()),
        "final": 100 * float(m["eval_accuracy"].iloc[-1]),
        "at200": 100 * float(m.loc[m["step"] == 200, "eval_accuracy"].iloc[0]),
    }


def run_one(variant: str, seed: int) -> dict[str, float]:
    out = OUT / variant / f"seed{seed}"
    cached = out / "summary.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    if out.exists():
        import shutil

        shutil.rmtree(out)
    t0 = time.time()
    with authors_choices(VARIANTS[variant]):
        res = bp.run(PROTOCOL, out=out, overrides=[f"seed={seed}"], progress=False)
    s = {**summarise(res.metrics), "seconds": time.time() - t0, "status": res.status}
    cached.write_text(json.dumps(s))
    print(f"  {variant} seed {seed}: {s}", flush=True)
    return s


def saturation(variant: str, seeds: list[int]) -> None:
    """For finished runs: the fraction of training images whose correct-class probability
    (float32 softmax at the final weights) exceeds 1 − 1e-7, where Keras' clip cuts the
    gradient."""
    from bioplaus.backends.torch.mlp import mlp_consts, mlp_to_torch, predict
    from bioplaus.runs import build_task, read_config, read_params

    for seed in seeds:
        run = OUT / variant / f"seed{seed}"
        _, spec = read_config(run)
        X, lab = build_task(spec).data("train")
        p = mlp_to_torch(read_params(run), spec.model.n_layers, dtype=torch.float32)
        o = predict(p, mlp_consts(spec.model), torch.as_tensor(X, dtype=torch.float32))
        pc = torch.softmax(o, -1)[torch.arange(len(lab)), torch.as_tensor(lab)]
        acc = float((o.argmax(-1).numpy() == lab).mean())
        print(
            f"{variant} seed {seed}: train accuracy {acc:.3f}, p_correct > 1 − 1e-7 on "
            f"{int((pc > 1 - 1e-7).sum())} of {len(lab)} training images, median 1 − p_correct "
            f"{float((1 - pc.double()).median()):.2g}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument(
        "--table", action="store_true", help="no training: tabulate the finished runs only"
    )
    ap.add_argument(
        "--saturation", action="store_true", help="Keras-clip saturation of finished runs"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.saturation:
        for v in args.variants:
            saturation(v, args.seeds)
        return
    res: dict[str, dict[int, dict]] = {}
    for v in args.variants:
        res[v] = {}
        for s in args.seeds:
            cached = OUT / v / f"seed{s}" / "summary.json"
            if args.table and not cached.is_file():
                continue
            res[v][s] = run_one(v, s)
    lines = [
        "DBP, digits, protocols/multilayer/digits_dbp.toml (held-out accuracy %, mean ± sd over "
        "seeds; Δ = mean paired difference to bioplaus on the same seeds ± its standard error)",
        "",
        "| variant | authors' choice switched on | seeds | peak | final | after 200 | Δ peak "
        "| Δ final | Δ after 200 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = res.get("bioplaus", {})
    for v, rows in res.items():
        if not rows:
            continue
        cell = []
        for k in ("peak", "final", "at200"):
            a = np.array([r[k] for r in rows.values()])
            cell.append(f"{a.mean():.2f} ± {a.std(ddof=1):.2f}" if len(a) > 1 else f"{a[0]:.2f}")
        for k in ("peak", "final", "at200"):
            common = [s for s in rows if s in base]
            if v == "bioplaus" or len(common) < 2:
                cell.append("—")
                continue
            d = np.array([rows[s][k] - base[s][k] for s in common])
            cell.append(f"{d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)):.2f}")
        seeds = sorted(rows)
        span = f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else seeds
        lines.append(
            f"| {v} | {', '.join(VARIANTS[v]) or '(none)'} | {span} | " + " | ".join(cell) + " |"
        )
    secs = [r["seconds"] for rows in res.values() for r in rows.values()]
    lines += ["", f"{len(secs)} runs, {np.mean(secs):.0f} s wall each on average (one thread)"]
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
