"""Compare two trained networks (run directories) on the same task inputs.

``compare_runs(A, B, out)`` writes into ``out``:

    learning_curves.png   held-out loss and metric of both runs against the update step
    outputs.png           outputs of both (clean) against the targets on held-out trials
    pca.png               both hidden trajectories in their top PCs (B rotated onto A)
    fixed_points.png      fixed/slow points in each network's PC plane + Jacobian eigenvalues
    spectra.png           eigenvalues of W_rec D_rec at initialisation and after training
    alignment.png         (with alignment=True) cosine of each rule's estimate with BPTT
    report.md             the numbers and the figures
    compare.json          the numbers, machine-readable

Both networks are simulated noise-free (``noise = 0``) from x₋₁ = 0 on the same held-out
trials of run A's task; the similarity measures use the scored steps (after the task's
washout). Each run's initial network is rebuilt from its recorded seed
(``init_params(model, child_seed(seed, "init_params"))``), so "before training" references
cost nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .. import io  # noqa: E402
from ..registry import network_type  # noqa: E402
from ..results import Run, load_run  # noqa: E402  (re-exported: bp.load_run)
from ..spec import SpecError  # noqa: E402
from ..tasks.base import Batch  # noqa: E402
from . import dynamics as dyn  # noqa: E402
from .fixed_points import FixedPoints, find_fixed_points  # noqa: E402
from .plots import _save, plot_comparison, plot_rasters  # noqa: E402

#: a run read back (bioplaus.results.Run); compare needs its final parameters
LoadedRun = Run


def _finished(run_dir: str | Path) -> Run:
    """:func:`load_run` of a run that has final parameters (SpecError naming the file)."""
    r = load_run(run_dir)
    if r.params is None:
        raise SpecError(
            f"{r.path / 'params_final.npz'}: missing (run status: {r.status}; "
            "only finished runs compare)"
        )
    return r


def _check_same_task(a: LoadedRun, b: LoadedRun) -> None:
    ta = {k: v for k, v in a.protocol.task.items() if k != "seed"}
    tb = {k: v for k, v in b.protocol.task.items() if k != "seed"}
    for k in sorted(set(ta) | set(tb)):
        if ta.get(k) != tb.get(k):
            raise SpecError(
                f"compare: runs are on different tasks: task.{k} = {ta.get(k)!r} in {a.path} "
                f"but {tb.get(k)!r} in {b.path}"
            )


def clean_states(run: LoadedRun, inputs: np.ndarray, params: dict | None = None) -> np.ndarray:
    """Noise-free hidden states x [T, B, N] of a run's network (final params by default)."""
    from ..simulate import simulate

    T, B, _ = inputs.shape
    return simulate(
        run.protocol.model,
        inputs,
        params=run.params if params is None else params,
        noise=np.zeros((T, B, run.protocol.model.n_rec)),
        dtype="float64",
    )


def readout(run: LoadedRun, x: np.ndarray, params: dict | None = None) -> np.ndarray:
    """o = W_out D_rec φ(x) + b_out, numpy [T, B, n_out]."""
    import torch

    from ..nonlinearities import PHI

    p = run.params if params is None else params
    r = PHI[run.protocol.model.nonlinearity](torch.as_tensor(x)).numpy()
    if "D_rec" in p:
        r = r @ p["D_rec"].T
    o = r @ p["W_out"].T
    return o + p["b_out"] if "b_out" in p else o


def _scored(x: np.ndarray, batch: Batch) -> np.ndarray:
    """[P, N] samples at the scored steps (mask > 0), all steps without a mask."""
    if batch.mask is None:
        return dyn.as_samples(x)
    return x[np.asarray(batch.mask) > 0]


def gradient_alignment(
    run: LoadedRun, params: dict, batch: Batch, n_rep: int = 8, seed: int = 0
) -> dict[str, Any]:
    """Cosine between the run's rule estimate and the exact BPTT gradient at ``params``.

    cos(g, ĝ) = ⟨g, ĝ⟩ / (‖g‖ ‖ĝ‖) over all learnable weights concatenated (and per
    matrix); reported for single estimates (mean, std over ``n_rep`` noise seeds) and for
    their mean ĝ̄ (variance averaged away, bias left).
    """
    from ..estimate import estimate

    spec, task = run.protocol.model, run.task
    kw = dict(mask=batch.mask, loss=task.loss, dtype="float64")
    g = estimate("bptt", spec, params, batch.inputs, batch.targets, seed=seed, **kw)
    keys = [k for k in g if np.any(g[k] != 0) or k.startswith("W")]
    flat = np.concatenate([g[k].ravel() for k in keys])

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")

    ests = [
        estimate(run.protocol.rule, spec, params, batch.inputs, batch.targets, seed=seed + i, **kw)
        for i in range(n_rep)
    ]
    singles = [cos(np.concatenate([e[k].ravel() for k in keys]), flat) for e in ests]
    mean_est = {k: np.mean([e[k] for e in ests], axis=0) for k in keys}
    return {
        "cos_single_mean": float(np.mean(singles)),
        "cos_single_std": float(np.std(singles)),
        "cos_of_mean": cos(np.concatenate([mean_est[k].ravel() for k in keys]), flat),
        "per_param_cos_of_mean": {k: cos(mean_est[k].ravel(), g[k].ravel()) for k in keys},
        "n_rep": n_rep,
        "norm_ratio": float(
            np.linalg.norm(np.concatenate([mean_est[k].ravel() for k in keys]))
            / max(np.linalg.norm(flat), 1e-300)
        ),
    }


def _fp_summary(fp: FixedPoints) -> dict[str, Any]:
    rad = np.abs(fp.eigvals).max(1) if len(fp.x) else np.zeros(0)
    return {
        "n_found": len(fp.x),
        "n_fixed": int(fp.is_fixed.sum()),
        "n_slow": int((~fp.is_fixed).sum()),
        "n_stable": int(fp.stable.sum()),
        "min_q": float(fp.q.min()) if len(fp.q) else float("nan"),
        "spectral_radius_J": [float(r) for r in rad],
        "norm_x": [float(np.linalg.norm(x)) for x in fp.x],
        "counts": [int(c) for c in fp.counts],
    }


def _final(r: Run, o: np.ndarray, batch: Batch) -> dict[str, Any]:
    """A run's row of the report: its last evaluation (update step, held-out loss, wall
    time), its task metric on these trials' outputs ``o`` [T, B, n_out], status and size."""
    last = r.metrics.iloc[-1]
    return {
        "step": int(last["step"]),
        "eval_loss": float(last["eval_loss"]),
        r.task.metric: r.task.metrics(o, batch)[r.task.metric],
        "status": r.status,
        "wall_time_s": float(last["wall_time"]),
        "n_rec": r.protocol.model.n_rec,
    }


def _head(a: Run, b: Run, n_trials: int, seed: int, final: dict, **extra: Any) -> dict[str, Any]:
    """The numbers a report starts with: the runs, their labels (then ``extra``, e.g. the
    kind), the task, the analysis settings and each run's :func:`_final` row."""
    return {
        "runs": {"A": str(a.path), "B": str(b.path)},
        "labels": {"A": a.label, "B": b.label},
        **extra,
        "task": a.protocol.task,
        "n_trials": n_trials,
        "seed": seed,
        "final": final,
    }


def _similarity(sa: np.ndarray, sb: np.ndarray, sa0: np.ndarray, sb0: np.ndarray) -> dict:
    """Linear CKA and angular Procrustes distance of the [P, N] samples of the trained (sa,
    sb) and initial (sa0, sb0) networks A and B: A vs B trained, A vs B initial, and each
    network's initial vs trained states (CKA)."""
    return {
        "cka_final": dyn.linear_cka(sa, sb),
        "procrustes_final": dyn.procrustes_distance(sa, sb),
        "cka_init": dyn.linear_cka(sa0, sb0),
        "procrustes_init": dyn.procrustes_distance(sa0, sb0),
        "cka_A_init_vs_final": dyn.linear_cka(sa0, sa),
        "cka_B_init_vs_final": dyn.linear_cka(sb0, sb),
    }


def _dimensionality(sa: np.ndarray, sb: np.ndarray, sa0: np.ndarray, sb0: np.ndarray) -> dict:
    """Participation ratio PR = (Σλ)² / Σλ² of each set of samples (as :func:`_similarity`)."""
    return {
        "pr_A": dyn.participation_ratio(sa),
        "pr_B": dyn.participation_ratio(sb),
        "pr_A_init": dyn.participation_ratio(sa0),
        "pr_B_init": dyn.participation_ratio(sb0),
    }


def _plot_learning_curves(a: Run, b: Run, out: Path, x: str) -> str:
    """learning_curves.png in ``out`` (held-out loss and metric against ``x``); its name."""
    return plot_comparison(
        [a.path, b.path],
        out / "learning_curves.png",
        labels=[a.label, b.label],
        x=x,
        title="Learning curves",
    ).name


def _write(out: Path, res: dict, markdown: str) -> dict[str, Any]:
    """Write ``res`` to ``out``/compare.json and the report ``markdown`` to ``out``/report.md;
    return ``res`` with the report's path."""
    io.write_json(out / "compare.json", res)
    report = out / "report.md"
    io.write_text(report, markdown)
    res["report"] = str(report)
    return res


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    out: str | Path,
    alignment: bool = False,
    n_trials: int = 32,
    seed: int = 0,
    n_fixed_init: int = 64,
    x: str = "step",
    n_rep: int = 8,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Write the comparison report of two runs into ``out``; return its numbers.

    Everything is validated before anything is written (SpecError on bad input).
    ``threads``: torch CPU threads while comparing (1: fastest for these small networks,
    and multi-threaded torch stalls on a loaded machine; None: torch's default).
    """
    import torch

    if threads is None:
        return _compare(run_a, run_b, out, alignment, n_trials, seed, n_fixed_init, x, n_rep)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _compare(run_a, run_b, out, alignment, n_trials, seed, n_fixed_init, x, n_rep)
    finally:
        torch.set_num_threads(old)


def _compare(
    run_a: str | Path,
    run_b: str | Path,
    out: str | Path,
    alignment: bool,
    n_trials: int,
    seed: int,
    n_fixed_init: int,
    x: str,
    n_rep: int,
) -> dict[str, Any]:
    from ..random import numpy_rng

    a, b = _finished(run_a), _finished(run_b)
    kinds = {a.protocol.model.kind, b.protocol.model.kind}
    if "lif" in kinds and kinds != {"lif"}:
        raise SpecError(
            f"compare: a spiking (LIF) and a rate run ({a.path}, {b.path}): compare two "
            "of a kind, or draw their learning curves with --out FILE.png"
        )
    _check_same_task(a, b)
    out = Path(out)
    if out.suffix == ".png" or (out.exists() and not out.is_dir()):
        raise SpecError(f"--out: {out} must be a folder for the report")
    if "lif" in kinds:
        if alignment:
            raise SpecError("--alignment: not available for LIF runs (rate and MLP models only)")
        return _compare_lif(a, b, out, n_trials, seed, x)
    batch = a.task.sample(n_trials, numpy_rng(seed, "compare", "trials"), split="test")
    xa, xb = clean_states(a, batch.inputs), clean_states(b, batch.inputs)
    xa0, xb0 = clean_states(a, batch.inputs, a.init), clean_states(b, batch.inputs, b.init)
    sa, sb, sa0, sb0 = (_scored(z, batch) for z in (xa, xb, xa0, xb0))
    final = {name: _final(r, readout(r, z), batch) for name, r, z in (("A", a, xa), ("B", b, xb))}
    res = _head(a, b, n_trials, seed, final)
    res["similarity"] = _similarity(sa, sb, sa0, sb0)
    res["dimensionality"] = _dimensionality(sa, sb, sa0, sb0)
    specs = {
        name: {
            "final": dyn.spectrum(r.params),
            "init": dyn.spectrum(r.init),
        }
        for name, r in (("A", a), ("B", b))
    }
    res["spectra"] = {
        name: {
            "radius_final": float(np.abs(s["final"]).max()),
            "radius_init": float(np.abs(s["init"]).max()),
            "max_real_final": float(s["final"].real.max()),
            "max_real_init": float(s["init"].real.max()),
        }
        for name, s in specs.items()
    }
    m = batch.mask if batch.mask is not None else np.ones(batch.inputs.shape[:2])
    u_star = (batch.inputs * m[..., None]).sum((0, 1)) / m.sum()
    fps = {
        name: find_fixed_points(
            r.protocol.model, r.params, u_star, z, n_init=n_fixed_init, seed=seed
        )
        for name, r, z in (("A", a, sa), ("B", b, sb))
    }
    res["fixed_points"] = {"u_star": u_star.tolist()} | {
        name: _fp_summary(fp) for name, fp in fps.items()
    }
    if alignment:
        tb = a.task.sample(a.protocol.train.batch_size, numpy_rng(seed, "compare", "align"))
        res["alignment"] = {}
        for name, r in (("A", a), ("B", b)):
            if r.protocol.rule.name == network_type(r.protocol.model.kind).reference:
                continue  # the exact gradient itself: nothing to align
            res["alignment"][name] = {
                "rule": r.protocol.rule.name,
                "init": gradient_alignment(r, r.init, tb, n_rep=n_rep, seed=seed),
                "final": gradient_alignment(r, r.params, tb, n_rep=n_rep, seed=seed),
            }

    # -- figures (only now is anything written) ---------------------------------------------
    out.mkdir(parents=True, exist_ok=True)
    figs = {"learning_curves": _plot_learning_curves(a, b, out, x)}
    figs["outputs"] = _plot_outputs(a, b, xa, xb, batch, out / "outputs.png").name
    figs["pca"] = _plot_pca(a, b, xa, xb, batch, out / "pca.png").name
    figs["fixed_points"] = _plot_fixed_points(a, b, sa, sb, fps, out / "fixed_points.png").name
    figs["spectra"] = _plot_spectra(a, b, specs, out / "spectra.png").name
    if alignment and res["alignment"]:
        figs["alignment"] = _plot_alignment(
            res["alignment"], res["labels"], out / "alignment.png"
        ).name
    res["figures"] = figs
    return _write(out, res, _markdown(res, a, b))


# -- spiking (LIF) runs -------------------------------------------------------------------------
def lif_activity(
    run: Run, inputs: np.ndarray, noise: np.ndarray, params: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Spikes s and filtered spike trains r (τ_r dr/dt = −r, r_j += 1 per spike), both
    [T, B, N], of a LIF run's network on ``inputs`` with the background-noise realisation
    ``noise`` (a LIF network needs σ_v > 0, so "clean" means unperturbed, not noise-free)."""
    from ..simulate import simulate

    spec = run.protocol.model
    p = run.params if params is None else params
    _, s = simulate(spec, inputs, params=p, noise=noise, spikes=True, dtype="float64")
    beta = math.exp(-spec.dt / spec.tau_r)
    r = np.empty_like(s)
    acc = np.zeros(s.shape[1:])
    for t in range(len(s)):
        acc = beta * acc + s[t]
        r[t] = acc
    return s, r


def lif_readout(run: Run, r: np.ndarray, params: dict | None = None) -> np.ndarray:
    """o = W_out D_rec r + b_out, numpy [T, B, n_out]."""
    p = run.params if params is None else params
    z = r @ p["D_rec"].T if "D_rec" in p else r
    o = z @ p["W_out"].T
    return o + p["b_out"] if "b_out" in p else o


def _compare_lif(a: Run, b: Run, out: Path, n_trials: int, seed: int, x: str) -> dict[str, Any]:
    """The report for two spiking runs: learning curves, outputs, spike rasters, the
    similarity of their filtered spike trains, firing rates and W_rec spectra (no fixed
    points: a spiking network has none to find)."""
    from ..random import numpy_rng

    batch = a.task.sample(n_trials, numpy_rng(seed, "compare", "trials"), split="test")
    T, B, _ = batch.inputs.shape
    rng = numpy_rng(seed, "compare", "lif_noise")
    # one background-noise realisation, shared when both networks have the same size
    xi_a = rng.standard_normal((T, B, a.protocol.model.n_rec))
    n_b = b.protocol.model.n_rec
    xi_b = xi_a if n_b == xi_a.shape[2] else rng.standard_normal((T, B, n_b))
    act = {
        ("A", "final"): lif_activity(a, batch.inputs, xi_a),
        ("B", "final"): lif_activity(b, batch.inputs, xi_b),
        ("A", "init"): lif_activity(a, batch.inputs, xi_a, a.init),
        ("B", "init"): lif_activity(b, batch.inputs, xi_b, b.init),
    }
    scored = [_scored(act[(n, w)][1], batch) for w in ("final", "init") for n in ("A", "B")]
    outputs, final = {}, {}
    for name, r in (("A", a), ("B", b)):
        s_, rr = act[(name, "final")]
        outputs[name] = lif_readout(r, rr)
        dt = r.protocol.model.dt
        final[name] = _final(r, outputs[name], batch) | {
            "rate_hz_final": float(s_.mean() / dt),
            "rate_hz_init": float(act[(name, "init")][0].mean() / dt),
            "silent_fraction": float((s_.sum((0, 1)) == 0).mean()),
        }
    res = _head(a, b, n_trials, seed, final, kind="lif")
    res["similarity"] = _similarity(*scored)
    res["dimensionality"] = _dimensionality(*scored)
    specs = {
        name: {
            "final": np.linalg.eigvals(r.params["W_rec"]),
            "init": np.linalg.eigvals(r.init["W_rec"]),
        }
        for name, r in (("A", a), ("B", b))
    }
    res["spectra"] = {
        name: {
            "radius_final": float(np.abs(sp["final"]).max()),
            "radius_init": float(np.abs(sp["init"]).max()),
        }
        for name, sp in specs.items()
    }

    out.mkdir(parents=True, exist_ok=True)
    figs = {"learning_curves": _plot_learning_curves(a, b, out, x)}
    figs["outputs"] = _plot_outputs_of(a, b, outputs["A"], outputs["B"], batch, out / "outputs.png")
    dt = a.protocol.model.dt if a.protocol.model.dt == b.protocol.model.dt else None
    figs["rasters"] = plot_rasters(
        [act[("A", "final")][0], act[("B", "final")][0]],
        out / "rasters.png",
        labels=[f"A: {a.label}", f"B: {b.label}"],
        dt=dt,
        title="Spikes on held-out trial 0 (trained networks, same background noise)",
    ).name
    figs["spectra"] = _plot_spectra(a, b, specs, out / "spectra.png", "W_rec").name
    res["figures"] = figs
    return _write(out, res, _markdown_lif(res, a, b))


def _markdown_lif(res: dict, a: Run, b: Run) -> str:
    L, fa, fb = res["labels"], res["final"]["A"], res["final"]["B"]
    s, d, sp = res["similarity"], res["dimensionality"], res["spectra"]
    lines = [
        f"# Comparison (spiking networks): {L['A']} vs {L['B']}",
        "",
        *_about(res, "one background-noise realisation, no perturbation"),
        "",
        "## Performance and activity",
        "",
        *_performance_rows(res, a, b),
        f"| mean firing rate (Hz), initial → trained | {_f(fa['rate_hz_init'])} → "
        f"{_f(fa['rate_hz_final'])} | {_f(fb['rate_hz_init'])} → {_f(fb['rate_hz_final'])} |",
        f"| silent neurons (fraction) | {_f(fa['silent_fraction'])} | "
        f"{_f(fb['silent_fraction'])} |",
        f"| training time (s) | {_f(fa['wall_time_s'])} | {_f(fb['wall_time_s'])} |",
        "",
        f"![learning curves]({res['figures']['learning_curves']})",
        f"![outputs]({res['figures']['outputs']})",
        f"![spike rasters]({res['figures']['rasters']})",
        "",
        "## Similarity of the filtered spike trains r",
        "",
        "Linear CKA and angular Procrustes distance on the scored steps, as for rate networks.",
        "",
        *_similarity_rows(s, d),
        "",
        "## Recurrent weight spectra",
        "",
        f"| spectral radius of W_rec, initial → trained | {_f(sp['A']['radius_init'])} → "
        f"{_f(sp['A']['radius_final'])} | {_f(sp['B']['radius_init'])} → "
        f"{_f(sp['B']['radius_final'])} |",
        "|---|---|---|",
        "",
        f"![spectra]({res['figures']['spectra']})",
        "",
        "Numbers: `compare.json`.",
    ]
    return "\n".join(lines) + "\n"


# -- figures -----------------------------------------------------------------------------------
def _plot_outputs(a, b, xa, xb, batch, path: Path) -> Path:
    return _save_outputs(a, b, readout(a, xa), readout(b, xb), batch, path, "noise-free")


def _plot_outputs_of(a, b, oa, ob, batch, path: Path) -> str:
    return _save_outputs(a, b, oa, ob, batch, path, "unperturbed").name


def _save_outputs(a, b, oa, ob, batch, path: Path, how: str) -> Path:
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True)
    for i, ax in enumerate(axes):
        ax.plot(batch.targets[:, i, 0], color="k", lw=1.5, label="target")
        ax.plot(oa[:, i, 0], color="C0", lw=1, label=a.label)
        ax.plot(ob[:, i, 0], color="C1", lw=1, ls="--", label=b.label)
        if batch.mask is not None:
            w = int((np.asarray(batch.mask)[:, i] == 0).sum())
            if w:
                ax.axvspan(0, w, color="0.9", lw=0)
        ax.set_ylabel(f"trial {i}: o, y")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("time step")
    fig.suptitle(f"Held-out trials: outputs ({how}) and targets (grey: washout)")
    fig.tight_layout()
    return _save(fig, path)


def _plot_pca(a, b, xa, xb, batch, path: Path) -> Path:
    pa, pb, yb = dyn.aligned_pca(xa, xb, k=3)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4.2))
    for i in range(min(3, xa.shape[1])):
        ax1.plot(
            pa.scores[:, i, 0],
            pa.scores[:, i, 1],
            color="C0",
            lw=1,
            alpha=0.8,
            label=a.label if i == 0 else None,
        )
        ax1.plot(
            yb[:, i, 0],
            yb[:, i, 1],
            color="C1",
            lw=1,
            ls="--",
            alpha=0.8,
            label=b.label + " (rotated onto A)" if i == 0 else None,
        )
        ax1.plot(*pa.scores[0, i, :2], "o", color="C0", ms=4)
        ax1.plot(*yb[0, i, :2], "o", color="C1", ms=4)
    ax1.set_xlabel("PC1 of A")
    ax1.set_ylabel("PC2 of A")
    ax1.set_title("Hidden trajectories, 3 trials (dot: start)")
    ax1.legend(fontsize=7)
    t = np.arange(xa.shape[0])
    ax2.plot(t, pa.scores[:, 0, 0], color="C0", label="A PC1")
    ax2.plot(t, yb[:, 0, 0], color="C1", ls="--", label="B (aligned) PC1")
    ax2.plot(t, pa.scores[:, 0, 1], color="C2", label="A PC2")
    ax2.plot(t, yb[:, 0, 1], color="C3", ls="--", label="B (aligned) PC2")
    ax2.set_xlabel("time step")
    ax2.set_title("Trial 0 in the aligned PC space")
    ax2.legend(fontsize=7)
    ka = dyn.covariance_spectrum(xa)
    kb = dyn.covariance_spectrum(xb)
    k = np.arange(1, min(len(ka), len(kb), 20) + 1)
    ax3.plot(k, np.cumsum(ka / ka.sum())[: len(k)], "-o", ms=3, color="C0", label=a.label)
    ax3.plot(k, np.cumsum(kb / kb.sum())[: len(k)], "-s", ms=3, color="C1", label=b.label)
    ax3.set_xlabel("number of PCs")
    ax3.set_ylabel("cumulative variance explained")
    ax3.set_ylim(0, 1.02)
    ax3.set_title("Dimensionality")
    ax3.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _plot_fixed_points(a, b, sa, sb, fps, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    theta = np.linspace(0, 2 * np.pi, 200)
    for ax, (name, r, s) in zip(axes[:2], (("A", a, sa), ("B", b, sb)), strict=True):
        p = dyn.pca(s, 2)
        ax.plot(p.scores[:, 0], p.scores[:, 1], ".", color="0.75", ms=1.5, label="states")
        fp = fps[name]
        if len(fp.x):
            z = (fp.x - p.mean) @ p.components.T
            for j in range(len(fp.x)):
                if fp.stable[j]:
                    face = "k" if fp.is_fixed[j] else "none"
                    ax.scatter(
                        z[j, 0],
                        z[j, 1],
                        marker="o",
                        s=60,
                        facecolors=face,
                        edgecolors="r",
                        zorder=3,
                    )
                else:
                    ax.scatter(z[j, 0], z[j, 1], marker="x", s=60, color="r", zorder=3)
        ax.set_title(
            f"{name}: {r.label}\n{int(fp.is_fixed.sum())} fixed, "
            f"{int((~fp.is_fixed).sum())} slow, {int(fp.stable.sum())} stable"
        )
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
    ax = axes[2]
    ax.plot(np.cos(theta), np.sin(theta), color="0.6", lw=0.8)
    for i, name in enumerate(("A", "B")):
        fp = fps[name]
        if len(fp.x):
            ev = fp.eigvals[0]
            ax.scatter(
                ev.real,
                ev.imag,
                s=12,
                color=f"C{i}",
                alpha=0.8,
                label=f"{name}: slowest point (q={fp.q[0]:.1e})",
            )
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title("Jacobian eigenvalues at the lowest-q point")
    ax.legend(fontsize=7)
    fig.suptitle("Fixed (●) / slow (○) points at the mean input; × unstable")
    fig.tight_layout()
    return _save(fig, path)


def _plot_spectra(a, b, specs, path: Path, matrix: str = "W_rec D_rec") -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    theta = np.linspace(0, 2 * np.pi, 200)
    for ax, (name, r) in zip(axes, (("A", a), ("B", b)), strict=True):
        s = specs[name]
        ax.plot(np.cos(theta), np.sin(theta), color="0.6", lw=0.8)
        ax.axvline(1.0, color="0.6", lw=0.8, ls=":")
        ax.scatter(s["init"].real, s["init"].imag, s=10, color="0.6", label="initial")
        ax.scatter(
            s["final"].real, s["final"].imag, s=14, color=f"C{'AB'.index(name)}", label="trained"
        )
        ax.set_aspect("equal")
        ax.set_title(f"{name}: {r.label}")
        ax.set_xlabel(f"Re λ({matrix})")
        ax.set_ylabel("Im λ")
        ax.legend(fontsize=7)
    fig.suptitle("Eigen-spectra of the recurrent weights (circle: |λ| = 1; dotted: Re λ = 1)")
    fig.tight_layout()
    return _save(fig, path)


def _plot_alignment(al: dict, labels: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    names = list(al)
    xs = np.arange(len(names))
    for j, when in enumerate(("init", "final")):
        mean = [al[n][when]["cos_single_mean"] for n in names]
        sd = [al[n][when]["cos_single_std"] for n in names]
        avg = [al[n][when]["cos_of_mean"] for n in names]
        ax.bar(
            xs + (j - 0.5) * 0.35,
            mean,
            0.35,
            yerr=sd,
            color=f"C{j}",
            alpha=0.7,
            label=f"{when}: single estimate (mean ± sd)",
        )
        ax.plot(
            xs + (j - 0.5) * 0.35, avg, "k^", ms=7, label="mean of estimates" if j == 0 else None
        )
    ax.set_xticks(xs, [labels[n] for n in names], fontsize=8)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("cos(estimate, BPTT gradient)")
    ax.set_title("Alignment with BPTT")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


# -- report --------------------------------------------------------------------------------------
def _f(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def _about(res: dict, how: str) -> list[str]:
    """The report's list of the two run folders and of the task, trials, simulation
    (``how``) and analysis seed."""
    return [
        f"- A: `{res['runs']['A']}`  ",
        f"- B: `{res['runs']['B']}`  ",
        f"- task: `{json.dumps(res['task'])}`; {res['n_trials']} held-out trials, {how}, "
        f"analysis seed {res['seed']}.",
    ]


def _performance_rows(res: dict, a: Run, b: Run) -> list[str]:
    """The head of a report's performance table: rule, updates, held-out loss and metric."""
    fa, fb, metric = res["final"]["A"], res["final"]["B"], a.task.metric
    return [
        "| | A | B |",
        "|---|---|---|",
        f"| rule | {a.protocol.rule.name} | {b.protocol.rule.name} |",
        f"| updates | {fa['step']} | {fb['step']} |",
        f"| held-out loss (last eval) | {_f(fa['eval_loss'])} | {_f(fb['eval_loss'])} |",
        f"| held-out {metric} (these trials) | {_f(fa[metric])} | {_f(fb[metric])} |",
    ]


def _similarity_rows(s: dict, d: dict) -> list[str]:
    """The CKA / Procrustes and participation-ratio tables of a report (rate and LIF)."""
    return [
        "| | trained A vs B | initial A vs B | A: initial vs trained | B: initial vs trained |",
        "|---|---|---|---|---|",
        f"| CKA | {_f(s['cka_final'])} | {_f(s['cka_init'])} | {_f(s['cka_A_init_vs_final'])} "
        f"| {_f(s['cka_B_init_vs_final'])} |",
        f"| Procrustes (rad) | {_f(s['procrustes_final'])} | {_f(s['procrustes_init'])} | | |",
        "",
        "| participation ratio | A | B |",
        "|---|---|---|",
        f"| trained | {_f(d['pr_A'])} | {_f(d['pr_B'])} |",
        f"| initial | {_f(d['pr_A_init'])} | {_f(d['pr_B_init'])} |",
    ]


def _markdown(res: dict, a: LoadedRun, b: LoadedRun) -> str:
    L = res["labels"]
    fa, fb = res["final"]["A"], res["final"]["B"]
    s, d, sp, fp = res["similarity"], res["dimensionality"], res["spectra"], res["fixed_points"]
    lines = [
        f"# Comparison: {L['A']} vs {L['B']}",
        "",
        *_about(res, "noise-free simulation"),
        "",
        "## Performance",
        "",
        *_performance_rows(res, a, b),
        f"| training time (s) | {_f(fa['wall_time_s'])} | {_f(fb['wall_time_s'])} |",
        "",
        f"![learning curves]({res['figures']['learning_curves']})",
        f"![outputs]({res['figures']['outputs']})",
        "",
        "## Similarity of hidden dynamics",
        "",
        "Linear CKA (1 = same up to rotation and scale) and angular Procrustes distance "
        "(0 = same up to rotation and scale, π/2 ≈ 1.571 = orthogonal), on the scored steps.",
        "",
        *_similarity_rows(s, d),
        "",
        f"![PCA]({res['figures']['pca']})",
        "",
        "## Fixed and slow points",
        "",
        f"At the mean input u* = {[round(v, 4) for v in fp['u_star']]}, minimising "
        "q(x) = ½‖F(x) − x‖² from sampled states (fixed: q < 1e-12; slow: q < 1e-4).",
        "",
        "| | A | B |",
        "|---|---|---|",
    ]
    for key, title in (
        ("n_fixed", "fixed points"),
        ("n_slow", "slow points"),
        ("n_stable", "stable (max \\|λ(J)\\| < 1)"),
    ):
        lines.append(f"| {title} | {fp['A'][key]} | {fp['B'][key]} |")
    lines.append(
        "| max \\|λ(J)\\| at each point | "
        + " | ".join(
            ", ".join(f"{r:.3f}" for r in fp[n]["spectral_radius_J"]) or "—" for n in ("A", "B")
        )
        + " |"
    )
    lines.append(
        "| ‖x*‖ of each point | "
        + " | ".join(", ".join(f"{r:.3g}" for r in fp[n]["norm_x"]) or "—" for n in ("A", "B"))
        + " |"
    )
    lines += [
        "",
        f"![fixed points]({res['figures']['fixed_points']})",
        "",
        "## Recurrent weight spectra",
        "",
        "| | A | B |",
        "|---|---|---|",
        f"| spectral radius, initial → trained | {_f(sp['A']['radius_init'])} → "
        f"{_f(sp['A']['radius_final'])} | {_f(sp['B']['radius_init'])} → "
        f"{_f(sp['B']['radius_final'])} |",
        f"| max Re λ, initial → trained | {_f(sp['A']['max_real_init'])} → "
        f"{_f(sp['A']['max_real_final'])} | {_f(sp['B']['max_real_init'])} → "
        f"{_f(sp['B']['max_real_final'])} |",
        "",
        f"![spectra]({res['figures']['spectra']})",
        "",
    ]
    if res.get("alignment"):
        lines += [
            "## Alignment with BPTT",
            "",
            "Cosine between the run's rule estimate and the exact BPTT gradient on one training "
            "batch, over all learnable weights: single estimates (mean ± sd over seeds) and the "
            "mean of the estimates.",
            "",
            "| run | at | single estimate | mean of estimates | ‖mean‖/‖BPTT‖ |",
            "|---|---|---|---|---|",
        ]
        for n, al in res["alignment"].items():
            for when in ("init", "final"):
                r = al[when]
                lines.append(
                    f"| {n} ({al['rule']}) | {when} | {r['cos_single_mean']:.3f} ± "
                    f"{r['cos_single_std']:.3f} (n={r['n_rep']}) | {r['cos_of_mean']:.3f} | "
                    f"{r['norm_ratio']:.3g} |"
                )
        lines += ["", f"![alignment]({res['figures']['alignment']})", ""]
    lines.append("Numbers: `compare.json`.")
    return "\n".join(lines) + "\n"
