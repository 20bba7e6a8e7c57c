"""The three-factor rule with intrinsic Gaussian noise ξ (pattern_three_factor_xi.toml).

Two checks (docs/brian2.md, "Three-factor learning with intrinsic noise ξ"):

``seeds`` — run the protocol for each seed on a back-end and print, per seed, the held-out
eval loss at step 0 and at the end, their ratio, and whether it learns. Criterion (fixed
before the runs): a run learns when L_eval(end) ≤ 0.7 · L_eval(0); the protocol passes when
≥ 3 of 4 seeds learn (exit status 1 otherwise)::

    python benchmarks/bench_three_factor_xi.py seeds --backend brian2 --seeds 0 1 2 3

``align`` — why only the readout is plastic: at the protocol's initial weights, the rule's
mean update ΔW/η over K batches of B trials (``plastic = "all"``, torch back-end, the same
rule object the brian2 back-end uses) against the exact gradient ∇L (BPTT), per layer:
cos(ΔW, −∇L) and ‖ΔW‖/‖∇L‖, for each σ. With σ = 0 there is no exploration at all, so the
update left is the deterministic covariation of the fluctuation a − ā and the reward
R − R̄ along the trajectory (the rule's bias). Last line: cos(∇_k=1 L, ∇L) for W_rec, the
one-step-truncated gradient (TBPTT(1)), the most an eligibility without memory and a reward
per step could estimate of the recurrent credit::

    python benchmarks/bench_three_factor_xi.py align --sigma 0 0.1 0.3 --batches 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols" / "brian2" / "pattern_three_factor_xi.toml"
RATIO, NEED = 0.7, 3


def run_seeds(backend: str, seeds: list[int], overrides: list[str]) -> int:
    import bioplaus as bp

    rows = []
    print(f"# {PROTOCOL.name} backend={backend} overrides={overrides}")
    print("seed  eval_loss(0)  eval_loss(end)  end/start  learns(<=0.7)  wall[s]")
    for s in seeds:
        t0 = time.time()
        with tempfile.TemporaryDirectory() as d:
            res = bp.run(PROTOCOL, out=Path(d) / "run", progress=False,
                         overrides=[f'backend="{backend}"', f"seed={s}", *overrides])  # fmt: skip
            el = res.metrics["eval_loss"].dropna().to_numpy()
        ratio = el[-1] / el[0]
        rows.append(ratio)
        print(f"{s:4d}  {el[0]:12.4f}  {el[-1]:14.4f}  {ratio:9.2f}  {str(ratio <= RATIO):>13s}"
              f"  {time.time() - t0:7.0f}", flush=True)  # fmt: skip
    n = sum(r <= RATIO for r in rows)
    print(f"learned on {n}/{len(rows)} seeds (criterion end/start <= {RATIO}; need >= {NEED})")
    return 0 if n >= min(NEED, len(rows)) else 1


def align(sigmas: list[float], batches: int, seed: int) -> None:
    import torch

    import bioplaus as bp
    from bioplaus.backends.torch.rate import consts_of, to_torch
    from bioplaus.backends.torch.rate.bptt import bptt_estimate
    from bioplaus.backends.torch.rate.online import three_factor_pass
    from bioplaus.protocol import load_protocol
    from bioplaus.rules import make_three_factor
    from bioplaus.tasks import make_task

    torch.set_num_threads(1)
    spec = load_protocol(PROTOCOL)
    m, B = spec.model, spec.train.batch_size
    task = make_task(spec.task["name"], **{k: v for k, v in spec.task.items() if k != "name"})
    rule = make_three_factor(bp.RuleSpec(**{**spec.rule.model_dump(), "plastic": "all"}), m.dt)
    p, c = to_torch(bp.init_params(m, seed=seed), "cpu", torch.float64), consts_of(m)
    print(f"# {PROTOCOL.name}, seed {seed}, initial weights, {batches} batches x {B} trials, "
          f"rule plastic='all'")  # fmt: skip
    print("sigma  layer  cos(dW,-grad)  |dW|/|grad|")
    for sigma in sigmas:
        rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
        base = rule.init_baseline(B, p.W_rec)
        est: dict[str, np.ndarray] = {}
        tru: dict[str, np.ndarray] = {}
        for _ in range(batches):
            b = task.sample(B, rng)
            u, y = (torch.as_tensor(a, dtype=torch.float64) for a in (b.inputs, b.targets))
            mk = None if b.mask is None else torch.as_tensor(b.mask, dtype=torch.float64)
            out = three_factor_pass(p, c, rule, base, u, y, mk, "mse", gen, sigma=sigma)
            base = out.baseline
            g = bptt_estimate(p, c, u, y, mk, "mse").grads
            for k in ("W_rec", "W_out"):
                est[k] = est.get(k, 0.0) + out.result.grads[k].numpy()
                tru[k] = tru.get(k, 0.0) + g[k].numpy()
        for k in ("W_rec", "W_out"):
            size = np.linalg.norm(est[k]) / np.linalg.norm(tru[k])
            print(f"{sigma:5.2f}  {k:5s}  {_cos(est[k], tru[k]):13.3f}  {size:11.3f}", flush=True)
    rng = np.random.default_rng(seed)
    k1, full = 0.0, 0.0
    for _ in range(batches):
        b = task.sample(B, rng)
        u, y = (torch.as_tensor(a, dtype=torch.float64) for a in (b.inputs, b.targets))
        mk = None if b.mask is None else torch.as_tensor(b.mask, dtype=torch.float64)
        k1 = k1 + bptt_estimate(p, c, u, y, mk, "mse", k=1).grads["W_rec"].numpy()
        full = full + bptt_estimate(p, c, u, y, mk, "mse").grads["W_rec"].numpy()
    print(f"cos(TBPTT(1), BPTT) for W_rec: {_cos(k1, full):.3f}")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    """cos(a, b) of two flattened arrays (NaN when a = 0)."""
    a, b = np.ravel(a), np.ravel(b)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seeds", help="per-seed end/start of the protocol")
    s.add_argument("--backend", choices=("torch", "brian2"), default="brian2")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    s.add_argument("--set", dest="overrides", action="append", default=[],
                   help="protocol override key=value (repeatable)")  # fmt: skip
    a = sub.add_parser("align", help="cosine of the rule's update to the gradient, per layer")
    a.add_argument("--sigma", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    a.add_argument("--batches", type=int, default=20)
    a.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.cmd == "seeds":
        return run_seeds(args.backend, args.seeds, args.overrides)
    align(args.sigma, args.batches, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
