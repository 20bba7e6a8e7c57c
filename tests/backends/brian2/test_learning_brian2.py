"""Learning on brian2 (backends/brian2/learning.py, trainer.py) against the torch back-end.

Shared noise realisation (tests 1, 2). The brian2 equations are the continuous-time rule
integrated with the same discretisation as rules/three_factor.py: x by Euler–Maruyama
(brian2 ``method='euler'``, the torch step term for term, see test_rate_brian2.py), the
leaky integrators τ_b dā/dt = a − ā and τ_e de/dt = −e + h exactly over a step with their
input held (brian2 ``method='exact'`` gives e·e^{−dt/τ_e} + h(1 − e^{−dt/τ_e}), the torch
``lerp`` with λ = e^{−dt/τ}). Both sides therefore compute the same numbers up to
floating-point association (sympy's arrangement of the Euler and exact expressions, BLAS
summation order, bincount vs matmul for the summed variables): ~1e-16 relative per step,
not amplified over T = 25 steps (measured ≤ 3e-15 relative). RTOL = 1e-9 leaves six
orders of margin and is far below a modelling error (a one-step lag of x̄ or of r̂_{t−1},
a wrong λ, or the trace read before/after the update change the estimate by ≳ 1e-2).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bioplaus as bp

pytest.importorskip("brian2")

from bioplaus.backends.brian2.learning import run_trials  # noqa: E402
from bioplaus.backends.torch.rate import consts_of, to_torch  # noqa: E402
from bioplaus.backends.torch.rate.online import three_factor_pass  # noqa: E402
from bioplaus.backends.torch.rate.perturb import perturbation_estimate  # noqa: E402
from bioplaus.loss import normaliser  # noqa: E402
from bioplaus.rules.decorrelation import (  # noqa: E402
    decorrelation_update,
    mean_offdiag_correlation,
)
from bioplaus.rules.node_perturbation import NodePerturbation  # noqa: E402
from bioplaus.rules.three_factor import Baseline, ThreeFactor, TrialState  # noqa: E402

RTOL = 1e-9  # see the module docstring
T, B, N, N_IN, N_OUT = 25, 3, 6, 3, 2


def _setup(seed: int = 0, decor: bool = True):
    spec = bp.RateSpec(n_in=N_IN, n_rec=N, n_out=N_OUT, tau=0.02, dt=0.005, sigma=0.1,
                       nonlinearity="tanh", decorrelate_input=decor,
                       decorrelate_rec=decor)  # fmt: skip
    p = bp.init_params(spec, seed=seed)
    rng = np.random.default_rng(seed + 1)
    if decor:
        p["D_rec"] = np.eye(N) + 0.1 * rng.standard_normal((N, N))
        p["D_in"] = np.eye(N_IN) + 0.1 * rng.standard_normal((N_IN, N_IN))
    u = rng.standard_normal((T, B, N_IN))
    y = rng.standard_normal((T, B, N_OUT))
    m = (rng.random((T, B)) > 0.3).astype(float)
    return spec, p, u, y, m


def _torch_draws(rule_noise: str, kick_p: float, amp: float, seed: int):
    """The standard-normal/kick draws a torch generator seeded ``seed`` makes in
    three_factor_pass and perturbation_estimate (hidden [B, N], then readout [B, n_out])."""
    g = torch.Generator().manual_seed(seed)
    xi, xo = np.zeros((T, B, N)), np.zeros((T, B, N_OUT))
    for t in range(T):
        if rule_noise == "gaussian":
            xi[t] = torch.randn((B, N), generator=g, dtype=torch.float64).numpy()
        else:
            hit = torch.rand((B, N), generator=g, dtype=torch.float64) < kick_p
            a = torch.rand((B, N), generator=g, dtype=torch.float64)
            xi[t] = (hit.double() * ((2 * a - 1) * amp)).numpy()
        xo[t] = torch.randn(B, N_OUT, generator=g, dtype=torch.float64).numpy()
    return xi, xo


def _close(a, b) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize(
    "opts",
    [
        dict(noise="gaussian", reward="trial", tau_e=0.02, supralinear=None, normalise=False),
        dict(noise="kicks", reward="step", tau_e=0.02, supralinear=3.0, normalise=True),
        dict(noise="gaussian", reward="step", tau_e=None, supralinear=2.0, normalise=False),
        dict(
            noise="gaussian",
            reward="step",
            tau_e=0.02,
            supralinear=None,
            normalise=False,
            modulator="binary",
        ),
    ],
    ids=["gauss-trial", "kicks-step-supra3-norm", "gauss-step-accumulate-p2", "gauss-step-binary"],
)
def test_three_factor_traces_match_torch_on_shared_noise(opts):
    """Eligibility traces, activity/reward baselines and the update agree with the torch rule."""
    spec, p, u, y, m = _setup()
    rule = ThreeFactor(spec.dt, tau_b=0.01, tau_r=0.05, kick_rate=50.0, **opts)
    xi, xo = _torch_draws(rule.noise, rule.kick_rate * rule.dt, rule.kick_amplitude, 5)
    P, c = to_torch(p, dtype=torch.float64), consts_of(spec)
    step = rule.reward == "step"
    base = rule.init_baseline(B if step else 1, P.W_rec)
    tt = torch.as_tensor
    ref = three_factor_pass(P, c, rule, base, tt(u), tt(y), tt(m), "mse",
                            torch.Generator().manual_seed(5), decor=("D_in", "D_rec"))  # fmt: skip
    out = run_trials(spec, p, u, y, m, rule=rule, noise=xi, noise_out=xo, decor=("D_in", "D_rec"))
    z = torch.zeros
    ts = TrialState(
        z(B, N), z(B, N_OUT), tt(out.e_hid), tt(out.e_out),
        tt(out.acc_hid) if step else z(N, N_IN + N), tt(out.acc_out) if step else z(N_OUT, N),
        tt(out.nu), T,
    )  # fmt: skip
    if step:
        d_hid, d_out, new_base, _ = rule.end_trial(
            ts, Baseline(tt(out.rbar), tt(out.seen)), norm=normaliser(tt(m), T, B)
        )
        _close(new_base.rbar.numpy(), ref.baseline.rbar.numpy())  # R̄ per network, brian2 `mod`
        assert torch.equal(new_base.seen, ref.baseline.seen)
    else:
        R = -tt(out.loss_sum) / tt(out.n_scored).clamp_min(1.0)
        d_hid, d_out, new_base, _ = rule.end_trial(ts, base, R=R)
        _close(new_base.rbar.numpy(), ref.baseline.rbar.numpy())
    g = ref.result.grads
    assert float(g["W_rec"].abs().max()) > 0
    _close(-d_hid[:, :N_IN].numpy(), g["W_in"].numpy())
    _close(-d_hid[:, N_IN:].numpy(), g["W_rec"].numpy())
    _close(-d_out.numpy(), g["W_out"].numpy())
    _close(out.loss_sum.sum() / out.n_scored.sum(), ref.result.loss)
    for k in ("D_in", "D_rec"):
        _close(out.decor[k][0], ref.result.decor[k][0].numpy())


def test_anp_paired_copies_match_torch_on_shared_noise():
    """Paired clean/noisy copies in one NeuronGroup give the torch ANP estimate (time-local)."""
    spec, p, u, y, m = _setup(decor=True)
    p.pop("D_in")
    spec = spec.model_copy(update={"decorrelate_input": False})
    xi, xo = _torch_draws("gaussian", 0.0, 0.0, 7)
    P, c, tt = to_torch(p, dtype=torch.float64), consts_of(spec), torch.as_tensor
    ref = perturbation_estimate(P, c, NodePerturbation("anp"), tt(u), tt(y), tt(m), "mse",
                                torch.Generator().manual_seed(7), decor=("D_rec",))  # fmt: skip
    out = run_trials(spec, p, u, y, m, mode="anp", noise=xi, noise_out=xo, decor=("D_rec",))
    norm = float(m.sum())
    _close(out.acc_hid[:, :N_IN] / norm, ref.grads["W_in"].numpy())
    _close(out.acc_hid[:, N_IN:] / norm, ref.grads["W_rec"].numpy())
    _close(out.acc_out / norm, ref.grads["W_out"].numpy())
    _close(out.loss_sum.sum() / norm, ref.loss)
    _close(out.loss_sum_noisy.sum() / norm, ref.loss_perturbed)
    _close(out.decor["D_rec"][0], ref.decor["D_rec"][0].numpy())


def test_decorrelation_synapses_reduce_input_correlation_like_torch():
    """Plastic lateral synapses D_in: ΔD = −η offdiag(⟨y yᵀ⟩) D from the brian2 synapse
    statistics decorrelates strongly correlated inputs, step for step as the torch rule."""
    spec, p, _, y, m = _setup(decor=True)
    rng = np.random.default_rng(3)
    mix = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.6, 0.3, 0.74]])
    u = rng.standard_normal((T, B, N_IN)) @ mix.T  # pairwise correlations 0.6-0.9
    rule = ThreeFactor(spec.dt, tau_b=0.01)
    P, c, tt = to_torch(p, dtype=torch.float64), consts_of(spec), torch.as_tensor
    D_b = D_t = tt(p["D_in"])
    corr0 = mean_offdiag_correlation(tt(u.reshape(-1, N_IN)) @ D_b.T)
    for k in range(4):
        out = run_trials(spec, {**p, "D_in": D_b.numpy()}, u, y, m, rule=rule, seed=k,
                         decor=("D_in",))  # fmt: skip
        ref = three_factor_pass(P._replace(D_in=D_t), c, rule, rule.init_baseline(1, P.W_rec),
                                tt(u), tt(y), tt(m), "mse", torch.Generator().manual_seed(k),
                                decor=("D_in",))  # fmt: skip
        yy_b, count = out.decor["D_in"]
        yy_t, count_t = ref.result.decor["D_in"]
        assert count == count_t
        D_b = decorrelation_update(D_b, tt(yy_b), count, 0.3)
        D_t = decorrelation_update(D_t, yy_t, count_t, 0.3)
        _close(D_b.numpy(), D_t.numpy())
    corr = mean_offdiag_correlation(tt(u.reshape(-1, N_IN)) @ D_b.T)
    assert corr < 0.5 * corr0, (corr0, corr)


# -- protocols: backend = "brian2", learning curves, resume ----------------------------------
def _protocol(backend: str, seed: int, steps: int, n_rec: int = 8, lr: float = 2e-2) -> dict:
    return {
        "name": f"tf_{backend}_{seed}",
        "seed": seed,
        "backend": backend,
        "model": {"kind": "rate", "n_in": 2, "n_rec": n_rec, "n_out": 1, "tau": 0.1,
                  "dt": 0.05, "sigma": 0.05, "nonlinearity": "tanh", "weight_init": "normal",
                  "rec_gain": 1.0},
        "task": {"name": "pattern", "dt": 0.05, "n_patterns": 2, "fixation": 0.05,
                 "cue": 0.05, "pattern": 0.6},
        "rule": {"name": "three-factor", "noise": "gaussian", "tau_e": 0.1, "tau_b": 0.05,
                 "tau_r": 3.0, "reward": "trial"},
        "train": {"steps": steps, "batch_size": 8, "optimizer": "adam", "lr": lr,
                  "eval_every": steps, "eval_batch": 16, "checkpoint_every": 2,
                  "threads": 1, "dtype": "float64"},
    }  # fmt: skip


def test_protocol_backend_field_validates():
    from bioplaus.protocol import protocol_from_dict
    from bioplaus.spec import SpecError

    assert protocol_from_dict(_protocol("brian2", 0, 2)).backend == "brian2"
    bad = _protocol("brian2", 0, 2)
    bad["rule"] = {"name": "bptt"}
    with pytest.raises(SpecError, match="backend"):
        protocol_from_dict(bad)


def test_brian2_protocol_resume_is_identical(tmp_path):
    """Checkpoint after 2 updates, resume to 4: the same weights as 4 updates in one go."""
    proto = _protocol("brian2", 0, 4, n_rec=4)
    full = bp.run(proto, out=tmp_path / "full", progress=False)
    part = bp.run({**proto, "train": {**proto["train"], "steps": 2}},
                  out=tmp_path / "part", progress=False)  # fmt: skip
    assert part.status == "completed"
    import json

    cfg = json.loads((tmp_path / "part" / "config.json").read_text())
    cfg["protocol"]["train"]["steps"] = 4
    (tmp_path / "part" / "config.json").write_text(json.dumps(cfg))
    from bioplaus.runs import resume

    res = resume(tmp_path / "part", progress=False)
    for k, v in full.params.items():
        np.testing.assert_array_equal(res.params[k], v)
    assert not np.array_equal(full.params["W_rec"], bp.init_params(
        bp.RateSpec(**proto["model"]), seed=0)["W_rec"])  # fmt: skip


def _final_losses(backend: str, seeds, steps: int, tmp_path) -> np.ndarray:
    out = []
    for s in seeds:
        r = bp.run(_protocol(backend, s, steps), out=tmp_path / f"{backend}{s}", progress=False)
        df = r.metrics
        out.append(df["eval_loss"].to_numpy())
    return np.array(out)  # [seeds, evals]: step 0 and the last step


def _check_curves(b2: np.ndarray, th: np.ndarray, k: float, learns: bool) -> None:
    # same initial weights per seed, same evaluation: identical at step 0
    np.testing.assert_allclose(b2[:, 0], th[:, 0], rtol=1e-9)
    last_b, last_t = b2[:, -1], th[:, -1]
    spread = np.sqrt((last_b.var(ddof=1) + last_t.var(ddof=1)) / 2)
    se = spread * np.sqrt(2 / len(last_b))
    assert abs(last_b.mean() - last_t.mean()) <= k * se + 1e-3, (last_b, last_t)
    if learns:  # both learn: the loss falls on average
        assert last_b.mean() < b2[:, 0].mean() and last_t.mean() < th[:, 0].mean()


def test_three_factor_learning_curves_agree_fast(tmp_path):
    """Online three-factor on a tiny pattern task: brian2 and torch final losses agree within
    run-to-run spread (independent noise realisations), 3 seeds × 6 updates."""
    seeds = (0, 1, 2)
    b2 = _final_losses("brian2", seeds, 6, tmp_path)
    th = _final_losses("torch", seeds, 6, tmp_path)
    _check_curves(b2, th, k=4.0, learns=False)


@pytest.mark.slow
def test_three_factor_learning_curves_agree_slow(tmp_path):
    """As the fast test with 6 seeds × 40 updates (agreement only: this tiny set-up does not
    reliably learn in 40 updates on either back-end, measured on torch)."""
    seeds = tuple(range(6))
    b2 = _final_losses("brian2", seeds, 40, tmp_path)
    th = _final_losses("torch", seeds, 40, tmp_path)
    _check_curves(b2, th, k=3.0, learns=False)
