"""The one trainer's hooks for a rate network on brian2 (``backend = "brian2"`` in a protocol).

:data:`HOOKS` are the rate network's :class:`~bioplaus.registry.TrainerHooks` with three
things replaced: a batch of trials runs on brian2 (:func:`.anp.run_anp`,
:func:`.three_factor.run_three_factor`), in continuous time with the rule's traces as
brian2 variables; the clean evaluation runs on brian2 too (:func:`.rate.simulate_rate`,
σ = 0); and the protocol is checked against brian2's declaration. The rate network type
names them for its ``"brian2"`` back-end, and :class:`~bioplaus.train.trainer.Trainer`
picks them by ``protocol.backend``. Everything else is the one trainer's: weights, the
torch optimizer that applies the estimate (the three-factor update −ΔW/η as the
"gradient", docs/plasticity.md), decorrelation, the reward baseline R̄ (the rate network's
online handle, :class:`~bioplaus.backends.torch.rate.online.OnlineHandle`), checkpoints and
resume.

Rules: ``three-factor`` (online, one noisy pass; the update is finished by the same
:class:`~bioplaus.rules.three_factor.ThreeFactor` object the torch back-end uses) and
``anp`` (paired clean/noisy copies, time-local δℓ_t, joint normalisation, K = 1, clean
baseline). The brian2 noise of update k is seeded from (protocol seed, k), so a resumed
run draws the same noise as an uninterrupted one.

Layering: this module lives in the trainer layer (``bioplaus/train``), above both
back-ends; the brian2 back-end itself (equations, network, rate, anp, three_factor,
capabilities, context) imports neither torch nor the torch back-end (three_factor.py takes
the rule object of rules/three_factor.py, a rule module, for its options).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..backends.brian2.anp import run_anp
from ..backends.brian2.capabilities import BRIAN2_RULES, check_brian2_protocol
from ..backends.brian2.context import DEFAULT_TARGET
from ..backends.brian2.equations import PHI_NUMPY
from ..backends.brian2.network import Options, TrialOutput, Trials
from ..backends.brian2.rate import simulate_rate
from ..backends.brian2.three_factor import RewardBaseline, run_three_factor
from ..loss import normaliser
from ..networks.rate import HOOKS as RATE_HOOKS
from ..random import child_seed
from ..records import PassResult
from ..rules.base import anp_scale
from ..rules.options import noise_sigma
from ..rules.three_factor import Baseline, TrialState

if TYPE_CHECKING:  # types only: the brian2 back-end imports no task or protocol code
    from ..protocol import ProtocolSpec
    from ..tasks.base import Batch, Task

__all__ = ["BRIAN2_RULES", "HOOKS", "TARGET", "anp_scale", "check_brian2_protocol"]

#: brian2's code-generation target for training runs (a runtime target)
TARGET: str = DEFAULT_TARGET


def _grads(G_hid: torch.Tensor, G_out: torch.Tensor, n_in: int) -> dict[str, torch.Tensor]:
    """[N, n_in + N] and [n_out, N] → W_in, W_rec, W_out (brian2 learning has no biases)."""
    return {"W_in": G_hid[:, :n_in], "W_rec": G_hid[:, n_in:], "W_out": G_out}


def _check(protocol: ProtocolSpec, task: Task) -> None:
    """brian2's declaration (capabilities.py) and an mse task."""
    check_brian2_protocol(protocol)
    if task.loss != "mse":
        raise ValueError(f"task: backend 'brian2' needs an mse task (got {task.loss!r})")


def _numpy_params(t: Any) -> dict[str, np.ndarray]:
    """The trainer's weights and D as float64 arrays, by name (brian2 takes numpy)."""
    named = {**t.weights, **t.decor}
    return {k: v.detach().cpu().double().numpy() for k, v in named.items()}


def _tensor(t: Any, a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, device=t.device, dtype=t.dtype)


def _options(t: Any, decor: tuple[str, ...], sigma: float | None) -> Options:
    """brian2 noise of update k seeded from (protocol seed, k): resume draws the same."""
    seed = child_seed(t.protocol.seed, "brian2", "noise", str(t.step_count))
    return Options(sigma=sigma, decor=decor, seed=seed, target=TARGET)


def _data(t: Any, batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """brian2 takes the task batch as it is: u [T, B, n_in], y, m as numpy arrays."""
    return batch.inputs, batch.targets, batch.mask


def _estimate(
    t: Any, batch: Batch, u: Any, y: Any, m: Any, loss: str, decor: tuple[str, ...]
) -> PassResult:
    """One update's estimate from a batch of trials on brian2: L = Σ m ℓ / Σ m of the clean
    pass, the rule's update as the gradient, ⟨ẑ ẑᵀ⟩ for the D update."""
    spec = t.protocol.model
    trials = Trials.of(spec, batch.inputs, batch.targets, batch.mask)
    m, (T, B) = batch.mask, batch.inputs.shape[:2]
    norm = normaliser(None if m is None else torch.as_tensor(m), T, B)
    out, grads, loss_p = RUNNERS[t.protocol.rule.name](t, batch, trials, decor, norm)
    return PassResult(
        grads=grads,
        loss=float(out.loss_sum.sum()) / norm,
        loss_perturbed=loss_p,
        outputs=None,
        decor={k: (_tensor(t, yy), c) for k, (yy, c) in out.decor.items()},
    )


def _anp(t: Any, batch: Batch, trials: Trials, decor, norm) -> tuple[TrialOutput, dict, float]:
    """Paired ANP on brian2: the estimate Σ δℓ c δx zᵀ/ν / Σ m."""
    spec, rs = t.protocol.model, t.protocol.rule
    c = anp_scale(rs.scale, spec.n_rec + spec.n_out)
    out = run_anp(spec, _numpy_params(t), trials, _options(t, decor, rs.sigma), c)
    grads = _grads(_tensor(t, out.acc_hid / norm), _tensor(t, out.acc_out / norm), spec.n_in)
    return out, grads, float(out.loss_sum_noisy.sum()) / norm


def _three_factor(t: Any, batch: Batch, trials: Trials, decor, norm):
    """Online three-factor trials on brian2, finished by the rule's end_trial (torch)."""
    spec, online = t.protocol.model, t.online
    rule = online.rule
    tt = lambda a: _tensor(t, a)  # noqa: E731
    like = t.weights["W_rec"]
    if online.base is None:
        online.base = rule.init_baseline(online.n, like)
    base, step_reward = online.base, rule.reward == "step"
    numpy = lambda a: a.double().cpu().numpy()  # noqa: E731
    start = RewardBaseline(numpy(base.rbar), numpy(base.seen)) if step_reward else None
    out = run_three_factor(spec, _numpy_params(t), trials, rule,
                           _options(t, decor, online.sigma), start)  # fmt: skip
    N, n_in, n_out, z = spec.n_rec, spec.n_in, spec.n_out, like.new_zeros
    T, B = trials.mask.shape
    ts = TrialState(
        z((B, N)), z((B, n_out)),
        tt(out.e_hid), tt(out.e_out),
        tt(out.acc_hid) if step_reward else z((N, n_in + N)),
        tt(out.acc_out) if step_reward else z((n_out, N)),
        tt(out.nu), T,
    )  # fmt: skip
    if step_reward:
        base_after = Baseline(tt(out.rbar), torch.as_tensor(out.seen, device=like.device))
        d_hid, d_out, new_base, _ = rule.end_trial(ts, base_after, norm=norm)
    else:
        types_fn = getattr(t.task, "trial_type", None)
        types = None if types_fn is None else torch.as_tensor(types_fn(batch))
        if types is not None and int(types.max()) >= online.n:
            raise ValueError(f"trial type {int(types.max())} >= n_trial_types={online.n}")
        R = -tt(out.loss_sum) / tt(out.n_scored).clamp_min(1.0)
        d_hid, d_out, new_base, _ = rule.end_trial(ts, base, R=R, types=types)
    online.base = new_base
    sigma = noise_sigma(online.sigma, spec.sigma)
    if not sigma > 0:  # no readout exploration: the readout stays fixed (as torch)
        d_out = torch.zeros_like(d_out)
    return out, _grads(-d_hid, -d_out, n_in), float(out.loss_sum.sum()) / norm


#: rule name → the brian2 module's runner of a batch of trials, (output, grads, perturbed loss);
#: its names are the rules :data:`~bioplaus.backends.brian2.capabilities.CAPABILITIES` declares
#: (a brian2 rule is a module under backends/brian2, a runner here and its name there)
RUNNERS: dict[str, Any] = {"anp": _anp, "three-factor": _three_factor}


def _outputs(t: Any, u: np.ndarray) -> torch.Tensor:
    """Clean outputs o = W_out D_rec φ(x) with x from brian2 (σ = 0) → [T, B, n_out]."""
    spec = t.protocol.model.model_copy(update={"sigma": 0.0})
    p = _numpy_params(t)
    x = simulate_rate(spec, u, p, target=TARGET)
    r = PHI_NUMPY[spec.nonlinearity](x)
    if p.get("D_rec") is not None:
        r = r @ p["D_rec"].T
    return torch.as_tensor(r @ p["W_out"].T)


#: the rate network's trainer hooks with the trials and the evaluation on brian2
HOOKS = dataclasses.replace(
    RATE_HOOKS, estimate=_estimate, outputs=_outputs, data=_data, alignment=None, check=_check
)
