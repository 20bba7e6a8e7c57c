"""Training loop for feed-forward models (:class:`~bioplaus.spec.MLPSpec`) on torch.

Same contract as :class:`~bioplaus.train.trainer.Trainer` (``step``, ``evaluate``,
``state_dict``/``load_state_dict``, ``params_numpy``), so :mod:`bioplaus.runs` drives both.
One update, in the multi-layer seed paper's order (algorithms.md §2, R2 ``train_step``):

  1. a batch from the task (T = 1 sequences; the trainer takes ``inputs[0]`` → [B, n_in]);
  2. the rule's estimate of ∂L at the current weights and D_l (exact gradient for bp);
  3. D_l ← D_l − η_D offdiag(⟨ẑ_l ẑ_lᵀ⟩) D_l on every layer (clean / baseline pass);
  4. the optimizer steps W_l, b_l with the estimate as their gradient.

With ``rule.alignment`` every evaluation also logs the angle (degrees) between the rule's
estimate and the exact gradient on the fixed training batch: ``align_layer{l}`` and
``align_all`` (a fresh noise stream, so logging does not change the training run).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..analysis.alignment import angles
from ..backends.torch.mlp import (
    MLPParams,
    mlp_consts,
    mlp_gradient,
    mlp_perturbation_estimate,
    mlp_to_numpy,
    mlp_to_torch,
    predict,
)
from ..backends.torch.precision import precision_scope
from ..loss import step_loss
from ..protocol import ProtocolSpec
from ..random import numpy_rng
from ..rules import make_rule
from ..tasks.base import Batch, Task
from .trainer import (
    DTYPES,
    DivergedError,
    StepInfo,
    apply_estimate,
    base_state,
    guard,
    load_base_state,
    optimizer_and_streams,
)


def _static(a: np.ndarray) -> np.ndarray:
    """[1, B, n] (a T = 1 task batch) → [B, n]."""
    a = np.asarray(a)
    if a.ndim == 3:
        if a.shape[0] != 1:
            raise ValueError(
                f"a feed-forward model needs static samples (T = 1), got T = {a.shape[0]}"
            )
        return a[0]
    return a


class MLPTrainer:
    """Weights, optimizer and generators of one feed-forward run."""

    def __init__(self, protocol: ProtocolSpec, task: Task, params: dict[str, np.ndarray]):
        self.protocol = protocol
        self.task = task
        spec = protocol.model
        if task.loss != spec.loss:
            raise ValueError(
                f"model.output: {spec.output!r} uses loss {spec.loss!r} but task "
                f"{task.name!r} is scored with {task.loss!r}"
            )
        tr = protocol.train
        if tr.threads is not None:
            torch.set_num_threads(tr.threads)
        self.device = torch.device(tr.device)
        self.dtype = DTYPES[tr.dtype]
        self.consts = mlp_consts(spec)
        self.n_layers = spec.n_layers
        p = mlp_to_torch(params, spec.n_layers, self.device, self.dtype)
        self.weights: dict[str, torch.Tensor] = {}
        for l in range(self.n_layers):
            self.weights[f"W{l}"] = p.W[l].clone().requires_grad_(True)
            if p.b[l] is not None:
                self.weights[f"b{l}"] = p.b[l].clone().requires_grad_(True)
        self.decor = {f"D{l}": p.D[l].clone() for l in range(self.n_layers) if p.D[l] is not None}
        optimizer_and_streams(self, protocol)
        seed = protocol.seed
        rs = protocol.rule
        if "mlp" not in rs.entry.networks:
            raise ValueError(f"rule {rs.name!r} needs a recurrent model")
        self.rule = None if rs.is_gradient else make_rule(rs, network="mlp")
        self.step_count = 0
        self.eval_batch = task.sample(tr.eval_batch, numpy_rng(seed, "task", "eval"), split="test")
        self.train_eval_batch = task.sample(
            tr.eval_batch, numpy_rng(seed, "task", "train_eval"), split="train"
        )

    # -- parameters -------------------------------------------------------------------------
    def params(self) -> MLPParams:
        L = range(self.n_layers)
        w = self.weights
        return MLPParams(
            [w[f"W{l}"].detach() for l in L],
            [w[f"b{l}"].detach() if f"b{l}" in w else None for l in L],
            [self.decor.get(f"D{l}") for l in L],
        )

    def params_numpy(self) -> dict[str, np.ndarray]:
        return mlp_to_numpy(self.params())

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(_static(a), device=self.device, dtype=self.dtype)

    def _estimate(self, x, y, generator, decor: bool):
        rs = self.protocol.rule
        if self.rule is None:
            return mlp_gradient(self.params(), self.consts, x, y, decor=decor)
        return mlp_perturbation_estimate(
            self.params(),
            self.consts,
            self.rule,
            x,
            y,
            generator,
            sigma=rs.sigma,
            K=rs.K,
            baseline=rs.baseline,
            decor=decor,
        )

    # -- one update -------------------------------------------------------------------------
    def step(self) -> StepInfo:
        tr = self.protocol.train
        batch = self.task.sample(tr.batch_size, self.rng_task, split="train")
        x, y = self._tensor(batch.inputs), self._tensor(batch.targets)
        decor = bool(self.decor) and tr.lr_decor > 0
        with precision_scope(tr.precision, self.device):  # the estimate only (precision.py)
            res = self._estimate(x, y, self.gen_noise, decor)
        return apply_estimate(self, res)

    def _guard(self) -> None:
        guard(self)

    # -- evaluation -------------------------------------------------------------------------
    def outputs(self, batch: Batch) -> np.ndarray:
        """Clean outputs on ``batch`` → numpy [1, B, n_out] (the task's T = 1 layout)."""
        o = predict(self.params(), self.consts, self._tensor(batch.inputs))
        return o.cpu().double().numpy()[None]

    def alignment(self) -> dict[str, float]:
        """Angles (degrees) between the rule's estimate and the exact gradient on the fixed
        training batch: align_layer{l}, align_all."""
        b = self.train_eval_batch
        x, y = self._tensor(b.inputs), self._tensor(b.targets)
        g = mlp_gradient(self.params(), self.consts, x, y).grads
        e = self._estimate(x, y, self.gen_align, False).grads
        a = angles(
            {k: v.cpu().double().numpy() for k, v in e.items()},
            {k: v.cpu().double().numpy() for k, v in g.items()},
        )
        return {f"align_{k}": v for k, v in a.items() if k.startswith("layer") or k == "all"}

    def evaluate(self) -> dict[str, float]:
        """Loss and task metrics of the clean network on the held-out batch (``eval_*``)
        and the fixed training batch (``train_*``); alignment when the rule asks."""
        metrics: dict[str, float] = {}
        for prefix, b in (("eval", self.eval_batch), ("train", self.train_eval_batch)):
            o = self.outputs(b)
            L = step_loss(
                self.task.loss, torch.as_tensor(o), torch.as_tensor(np.asarray(b.targets))
            ).mean()
            metrics[f"{prefix}_loss"] = float(L)
            metrics.update({f"{prefix}_{k}": float(v) for k, v in self.task.metrics(o, b).items()})
        if not math.isfinite(metrics["eval_loss"]):
            raise DivergedError(f"non-finite evaluation loss at step {self.step_count}")
        if self.protocol.rule.alignment and self.rule is not None:
            metrics.update(self.alignment())
        return metrics

    # -- checkpoint -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**base_state(self), "gen_align": self.gen_align.get_state()}

    def load_state_dict(self, sd: dict) -> None:
        load_base_state(self, sd)
        if "gen_align" in sd:
            self.gen_align.set_state(sd["gen_align"])
