"""Convergence of the LIF network to continuous time: rate error against dt, grid vs precise
spiking, torch and brian2 (docs/lif.md, issue 21).

Two references no one here wrote:

- deterministic f–I: ν = 1/(t_ref + τ_m ln((I − v_reset)/(I − θ))), for 12 currents
  I ∈ [1.05, 5] (independent neurons in one batch); the panel shows the largest |error|;
- noise-driven rate: the Siegert / Ricciardi rate (Brunel 2000) at (μ, σ_v) = (0.7, 0.5)
  and (1.2, 0.3), populations of independent neurons (error bars: 2 s.e.).

τ_m = 20 ms, t_ref = 4 ms, θ = 1, v_reset = v_rest = 0. Writes a PNG and a CSV of the points.

    python analysis/lif_convergence.py [--out docs/img/lif_convergence.png] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np

import bioplaus as bp
from bioplaus.backends.torch.lif import analytic_rate, siegert_rate
from bioplaus.spec import LIFSpec

CURRENTS = np.linspace(1.05, 5.0, 12)
CASES = [(0.7, 0.5), (1.2, 0.3)]


def _spec(mu: float, sigma_v: float, dt: float, spiking: str) -> LIFSpec:
    # t_ref = 4 ms is a whole number of every dt used here
    return LIFSpec(n_in=1, n_rec=1, n_out=1, bias_current=mu, sigma_v=sigma_v, dt=dt,
                   t_ref=0.004, spiking=spiking)  # fmt: skip


def _simulate(spec: LIFSpec, u: np.ndarray, backend: str, seed: int):
    p = bp.init_params(spec, seed=0)
    p["W_rec"][:] = 0.0
    p["W_in"][:] = 1.0
    kw = {"dtype": "float64"} if backend == "torch" else {}
    _, s, ts = bp.simulate(spec, u, p, backend=backend, seed=seed, spikes=True,
                           spike_times=True, **kw)  # fmt: skip
    return s[:, :, 0], ts[:, :, 0]


def fi_error(dt: float, spiking: str, backend: str, duration: float) -> float:
    """max_I |ν/ν_exact − 1| (mean ISI from first to last spike)."""
    spec = _spec(0.0, 0.0, dt, spiking)
    T = int(round(duration / dt))
    u = np.broadcast_to(CURRENTS[None, :, None], (T, CURRENTS.size, 1)).copy()
    _, ts = _simulate(spec, u, backend, 0)
    err = []
    for b, current in enumerate(CURRENTS):
        t = ts[:, b][~np.isnan(ts[:, b])]
        err.append(abs((t.size - 1) / (t[-1] - t[0]) / analytic_rate(spec, current) - 1))
    return float(max(err))


def noisy_error(mu, sigma_v, dt, spiking, backend, n, duration, burn=0.25):
    """(rate/ν_Siegert − 1, its s.e.) over n independent neurons after ``burn`` seconds."""
    spec = _spec(mu, sigma_v, dt, spiking)
    T = int(round((duration + burn) / dt))
    s, _ = _simulate(spec, np.zeros((T, n, 1)), backend, 1)
    k = int(round(burn / dt))
    per = s[k:].sum(0) / ((T - k) * dt)
    nu = siegert_rate(mu, sigma_v, spec)
    return float(per.mean() / nu - 1), float(per.std(ddof=1) / math.sqrt(n) / nu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img/lif_convergence.png")
    ap.add_argument("--quick", action="store_true", help="fewer neurons, shorter, fewer dt")
    a = ap.parse_args()
    dts = [2e-3, 1e-3, 5e-4, 2e-4] if a.quick else [2e-3, 1e-3, 5e-4, 2e-4, 1e-4]
    dts_b2 = dts[:3] if a.quick else dts[:4]  # brian2 (numpy target) per-step cost
    n_t, n_b, dur = (500, 200, 1.0) if a.quick else (2000, 400, 2.0)
    rows = []
    t0 = time.time()
    for backend, grid_dts, n in (("torch", dts, n_t), ("brian2", dts_b2, n_b)):
        for spiking in ("grid", "precise"):
            for dt in grid_dts:
                e = fi_error(dt, spiking, backend, 1.0)
                rows.append(dict(backend=backend, spiking=spiking, dt=dt, case="f-I",
                                 err=e, se=0.0))  # fmt: skip
                for mu, sig in CASES:
                    e, se = noisy_error(mu, sig, dt, spiking, backend, n, dur)
                    rows.append(dict(backend=backend, spiking=spiking, dt=dt,
                                     case=f"mu={mu},sigma_v={sig}", err=e, se=se))  # fmt: skip
                print(f"{backend:6s} {spiking:7s} dt={dt * 1e3:4.1f} ms  "
                      + "  ".join(f"{r['case']}: {r['err']:+.4f}" for r in rows[-3:])
                      + f"  ({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(rows, out)
    print(f"wrote {out} and {out.with_suffix('.csv')}")


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = ["f-I"] + [f"mu={m},sigma_v={s}" for m, s in CASES]
    titles = [
        "deterministic f–I (max over I ∈ [1.05, 5])",
        "noisy, μ = 0.7, σ_v = 0.5 (Siegert)",
        "noisy, μ = 1.2, σ_v = 0.3 (Siegert)",
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    style = {
        ("torch", "grid"): ("C0", "o", "-"),
        ("torch", "precise"): ("C3", "o", "-"),
        ("brian2", "grid"): ("C0", "s", "--"),
        ("brian2", "precise"): ("C3", "s", "--"),
    }
    for ax, case, title in zip(axes, cases, titles, strict=True):
        for (backend, spiking), (col, mk, ls) in style.items():
            pts = [r for r in rows if r["case"] == case and r["backend"] == backend
                   and r["spiking"] == spiking]  # fmt: skip
            if not pts:
                continue
            dt = np.array([r["dt"] for r in pts]) * 1e3
            err = np.abs([r["err"] for r in pts]) * 100
            se = np.array([r["se"] for r in pts]) * 100
            ax.errorbar(dt, np.maximum(err, 1e-12 if case == "f-I" else 1e-3), yerr=2 * se,
                        color=col, marker=mk, ls=ls, ms=5, capsize=2,
                        label=f"{backend}, {spiking}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("dt (ms)")
        ax.set_title(title, fontsize=10)
        ax.axhline(3.0 if case != "f-I" else 0.5, color="0.6", lw=0.8, ls=":")
    axes[0].set_ylabel("|rate error| (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
