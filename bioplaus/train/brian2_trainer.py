"""Training loop with the trials simulated on brian2 (``backend = "brian2"`` in a protocol).

:class:`Brian2Trainer` is the one :class:`~bioplaus.train.trainer.Trainer` with
one thing replaced: a batch of trials runs on brian2 (:func:`.anp.run_anp`,
:func:`.three_factor.run_three_factor`), in continuous time with the rule's traces as
brian2 variables, and the clean evaluation runs on brian2 too (:func:`.rate.simulate_rate`,
σ = 0). Everything else is the torch trainer's: weights, the torch optimizer that applies
the estimate (the three-factor update −ΔW/η as the "gradient", docs/plasticity.md),
decorrelation, the reward baseline R̄
(:class:`~bioplaus.backends.torch.online.OnlineThreeFactor`), checkpoints and resume.

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

from typing import TYPE_CHECKING

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
from ..random import child_seed
from ..records import PassResult
from ..rules.base import anp_scale
from ..rules.options import noise_sigma
from ..rules.three_factor import Baseline, TrialState
from .trainer import StepInfo, Trainer, apply_estimate

if TYPE_CHECKING:  # types only: the brian2 back-end imports no task or protocol code
    from ..protocol import ProtocolSpec
    from ..tasks.base import Batch, Task

__all__ = ["BRIAN2_RULES", "Brian2Trainer", "anp_scale", "check_brian2_protocol"]


def _grads(G_hid: torch.Tensor, G_out: torch.Tensor, n_in: int) -> dict[str, torch.Tensor]:
    """[N, n_in + N] and [n_out, N] → W_in, W_rec, W_out (brian2 learning has no biases)."""
    return {"W_in": G_hid[:, :n_in], "W_rec": G_hid[:, n_in:], "W_out": G_out}


class Brian2Trainer(Trainer):
    """:class:`Trainer` whose trials and evaluation run on brian2 (runtime target)."""

    target: str = DEFAULT_TARGET

    def __init__(self, protocol: ProtocolSpec, task: Task, params: dict[str, np.ndarray]):
        check_brian2_protocol(protocol)
        if task.loss != "mse":
            raise ValueError(f"task: backend 'brian2' needs an mse task (got {task.loss!r})")
        super().__init__(protocol, task, params)

    def _numpy_params(self) -> dict[str, np.ndarray]:
        named = {**self.weights, **self.decor}
        return {k: v.detach().cpu().double().numpy() for k, v in named.items()}

    def _t(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=self.device, dtype=self.dtype)

    def _options(self, decor: tuple[str, ...], sigma: float | None) -> Options:
        """brian2 noise of update k seeded from (protocol seed, k): resume draws the same."""
        seed = child_seed(self.protocol.seed, "brian2", "noise", str(self.step_count))
        return Options(sigma=sigma, decor=decor, seed=seed, target=self.target)

    def _estimate(self, batch: Batch, decor: tuple[str, ...]) -> PassResult:
        spec = self.protocol.model
        trials = Trials.of(spec, batch.inputs, batch.targets, batch.mask)
        m, (T, B) = batch.mask, batch.inputs.shape[:2]
        norm = normaliser(None if m is None else torch.as_tensor(m), T, B)
        if self.protocol.rule.name == "anp":
            out, grads, loss_p = self._anp(trials, decor, norm)
        else:
            out, grads, loss_p = self._three_factor(batch, trials, decor, norm)
        return PassResult(
            grads=grads,
            loss=float(out.loss_sum.sum()) / norm,
            loss_perturbed=loss_p,
            outputs=None,
            decor={k: (self._t(yy), c) for k, (yy, c) in out.decor.items()},
        )

    def _anp(self, trials: Trials, decor, norm) -> tuple[TrialOutput, dict, float]:
        """Paired ANP on brian2: the estimate Σ δℓ c δx zᵀ/ν / Σ m."""
        spec, rs = self.protocol.model, self.protocol.rule
        c = anp_scale(rs.scale, spec.n_rec + spec.n_out)
        out = run_anp(spec, self._numpy_params(), trials, self._options(decor, rs.sigma), c)
        t = self._t
        grads = _grads(t(out.acc_hid / norm), t(out.acc_out / norm), spec.n_in)
        return out, grads, float(out.loss_sum_noisy.sum()) / norm

    def _three_factor(self, batch: Batch, trials: Trials, decor, norm):
        """Online three-factor trials on brian2, finished by the rule's end_trial (torch)."""
        spec, online = self.protocol.model, self.online
        rule, t = online.rule, self._t
        like = self.weights["W_rec"]
        if online.base is None:
            online.base = rule.init_baseline(online.n, like)
        base, step_reward = online.base, rule.reward == "step"
        numpy = lambda a: a.double().cpu().numpy()  # noqa: E731
        start = RewardBaseline(numpy(base.rbar), numpy(base.seen)) if step_reward else None
        out = run_three_factor(spec, self._numpy_params(), trials, rule,
                               self._options(decor, online.sigma), start)  # fmt: skip
        N, n_in, n_out, z = spec.n_rec, spec.n_in, spec.n_out, like.new_zeros
        T, B = trials.mask.shape
        ts = TrialState(
            z((B, N)), z((B, n_out)),
            t(out.e_hid), t(out.e_out),
            t(out.acc_hid) if step_reward else z((N, n_in + N)),
            t(out.acc_out) if step_reward else z((n_out, N)),
            t(out.nu), T,
        )  # fmt: skip
        if step_reward:
            base_after = Baseline(t(out.rbar), torch.as_tensor(out.seen, device=like.device))
            d_hid, d_out, new_base, _ = rule.end_trial(ts, base_after, norm=norm)
        else:
            types_fn = getattr(self.task, "trial_type", None)
            types = None if types_fn is None else torch.as_tensor(types_fn(batch))
            if types is not None and int(types.max()) >= online.n:
                raise ValueError(f"trial type {int(types.max())} >= n_trial_types={online.n}")
            R = -t(out.loss_sum) / t(out.n_scored).clamp_min(1.0)
            d_hid, d_out, new_base, _ = rule.end_trial(ts, base, R=R, types=types)
        online.base = new_base
        sigma = noise_sigma(online.sigma, spec.sigma)
        if not sigma > 0:  # no readout exploration: the readout stays fixed (as torch)
            d_out = torch.zeros_like(d_out)
        return out, _grads(-d_hid, -d_out, n_in), float(out.loss_sum.sum()) / norm

    # -- one update (the torch trainer's, with the estimate from brian2) -----------------
    def step(self) -> StepInfo:
        tr = self.protocol.train
        batch = self.task.sample(tr.batch_size, self.rng_task, split="train")
        decor_keys = tuple(self.decor) if tr.lr_decor > 0 else ()
        res = self._estimate(batch, decor_keys)
        return apply_estimate(self, res)

    # -- evaluation on brian2 (σ = 0) ----------------------------------------------------
    def outputs(self, batch: Batch) -> np.ndarray:
        """Clean outputs o = W_out D_rec φ(x) with x from brian2 → numpy [T, B, n_out]."""
        spec = self.protocol.model.model_copy(update={"sigma": 0.0})
        p = self._numpy_params()
        x = simulate_rate(spec, batch.inputs, p, target=self.target)
        r = PHI_NUMPY[spec.nonlinearity](x)
        if p.get("D_rec") is not None:
            r = r @ p["D_rec"].T
        return r @ p["W_out"].T
