"""Training loop with the trials simulated on brian2 (``backend = "brian2"`` in a protocol).

:class:`Brian2Trainer` is the torch :class:`~bioplaus.train.trainer.Trainer` with
one thing replaced: a batch of trials runs on brian2 (:func:`.learning.run_trials`), in
continuous time with the rule's traces as brian2 variables, and the clean evaluation runs
on brian2 too (:func:`.rate.simulate_rate`, σ = 0). Everything else is the torch
trainer's: weights, the torch optimizer that applies the estimate (the three-factor
update −ΔW/η as the "gradient", docs/plasticity.md), decorrelation, the reward baseline
R̄ (:class:`~bioplaus.backends.torch.online.OnlineThreeFactor`), checkpoints and resume.

Rules: ``three-factor`` (online, one noisy pass; the update is finished by the same
:class:`~bioplaus.rules.three_factor.ThreeFactor` object the torch back-end uses) and
``anp`` (paired clean/noisy copies, time-local δℓ_t, joint normalisation, K = 1, clean
baseline). The brian2 noise of update k is seeded from (protocol seed, k), so a resumed
run draws the same noise as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch

from ...loss import normaliser
from ...protocol import ProtocolSpec
from ...random import child_seed
from ...rules.three_factor import TrialState
from ...tasks.base import Batch, Task
from ...train.trainer import StepInfo, Trainer, apply_estimate
from ..torch.perturb import PassResult, split_grads
from ..torch.rate import RateParams
from .context import DEFAULT_TARGET
from .learning import run_trials
from .rate import PHI_NUMPY, simulate_rate

BRIAN2_RULES = ("three-factor", "anp")


def check_brian2_protocol(protocol: ProtocolSpec) -> None:
    """Raise ValueError (key: problem) unless ``protocol`` can train on brian2."""
    m, rs = protocol.model, protocol.rule
    if m.kind != "rate":
        raise ValueError(f"backend: 'brian2' trains rate models (got model.kind {m.kind!r})")
    if rs.name not in BRIAN2_RULES:
        raise ValueError(f"backend: 'brian2' trains rules {list(BRIAN2_RULES)} (got {rs.name!r})")
    if m.bias or m.out_bias:
        raise ValueError("backend: 'brian2' learning needs model.bias = out_bias = false")
    if rs.name == "anp" and (
        rs.K != 1 or rs.baseline != "clean" or rs.norm != "joint" or rs.signal not in (None,
                                                                                     "local")
    ):  # fmt: skip
        raise ValueError("backend: 'brian2' ANP is time-local, joint norm, K = 1, clean baseline")
    if not protocol.train.device.startswith("cpu"):
        raise ValueError("train.device: backend 'brian2' runs on the CPU")


def anp_scale(scale: str | float, n_units: int) -> float:
    """The ANP constant c (rules/node_perturbation.py: n, √n or a number)."""
    if scale == "n":
        return float(n_units)
    if scale == "sqrt_n":
        return float(n_units) ** 0.5
    return float(scale)


class Brian2Trainer(Trainer):
    """:class:`Trainer` whose trials and evaluation run on brian2 (runtime target)."""

    target: str = DEFAULT_TARGET

    def __init__(self, protocol: ProtocolSpec, task: Task, params: dict[str, np.ndarray]):
        check_brian2_protocol(protocol)
        if task.loss != "mse":
            raise ValueError(f"task: backend 'brian2' needs an mse task (got {task.loss!r})")
        super().__init__(protocol, task, params)

    def _numpy_params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().double().numpy() for k, v in self.params()._asdict().items()
                if v is not None}  # fmt: skip

    def _estimate(self, batch: Batch, decor: tuple[str, ...]) -> PassResult:
        spec, rs = self.protocol.model, self.protocol.rule
        p_np = self._numpy_params()
        seed = child_seed(self.protocol.seed, "brian2", "noise", str(self.step_count))
        T, B = batch.inputs.shape[:2]
        m = batch.mask
        like = self.weights["W_rec"]
        tens = lambda a: torch.as_tensor(a, device=self.device, dtype=self.dtype)  # noqa: E731
        p_t = RateParams(**{k: tens(v) for k, v in p_np.items()})
        norm = normaliser(None if m is None else torch.as_tensor(m), T, B)
        if rs.name == "anp":
            out = run_trials(
                spec, p_np, batch.inputs, batch.targets, m, mode="anp", sigma=rs.sigma,
                scale=anp_scale(rs.scale, spec.n_rec + spec.n_out), decor=decor, seed=seed,
                target=self.target,
            )  # fmt: skip
            grads = split_grads(p_t, tens(out.acc_hid / norm), tens(out.acc_out / norm))
            loss_p = float(out.loss_sum_noisy.sum()) / norm
        else:
            online = self.online
            rule = online.rule
            if online.base is None:
                online.base = rule.init_baseline(online.n, like)
            base = online.base
            step_reward = rule.reward == "step"
            out = run_trials(
                spec, p_np, batch.inputs, batch.targets, m, mode="three-factor", rule=rule,
                sigma=online.sigma,
                rbar=base.rbar.double().cpu().numpy() if step_reward else None,
                seen=base.seen.double().cpu().numpy() if step_reward else None,
                decor=decor, seed=seed, target=self.target,
            )  # fmt: skip
            N, n_in, n_out = spec.n_rec, spec.n_in, spec.n_out
            z = like.new_zeros
            ts = TrialState(
                z((B, N)), z((B, n_out)),
                tens(out.e_hid), tens(out.e_out),
                tens(out.acc_hid) if step_reward else z((N, n_in + N)),
                tens(out.acc_out) if step_reward else z((n_out, N)),
                tens(out.nu), T,
            )  # fmt: skip
            if step_reward:
                from ...rules.three_factor import Baseline

                base_after = Baseline(tens(out.rbar), torch.as_tensor(out.seen, device=like.device))
                d_hid, d_out, new_base, _ = rule.end_trial(ts, base_after, norm=norm)
            else:
                types_fn = getattr(self.task, "trial_type", None)
                types = None if types_fn is None else torch.as_tensor(types_fn(batch))
                if types is not None and int(types.max()) >= online.n:
                    raise ValueError(f"trial type {int(types.max())} >= n_trial_types={online.n}")
                R = -tens(out.loss_sum) / tens(out.n_scored).clamp_min(1.0)
                d_hid, d_out, new_base, _ = rule.end_trial(ts, base, R=R, types=types)
            online.base = new_base
            sigma = spec.sigma if online.sigma is None else online.sigma
            if not sigma > 0:  # no readout exploration: the readout stays fixed (as torch)
                d_out = torch.zeros_like(d_out)
            grads = split_grads(p_t, -d_hid, -d_out)
            loss_p = float(out.loss_sum.sum()) / norm
        return PassResult(
            grads=grads,
            loss=float(out.loss_sum.sum()) / norm,
            loss_perturbed=loss_p,
            outputs=None,
            decor={k: (tens(yy), c) for k, (yy, c) in out.decor.items()},
        )

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
